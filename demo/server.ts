/**
 * `npm start`: the demo on http://localhost:3000 with sessions in ./data/sessions.db (SQLite).
 * Configuration by environment: PORT, HOST, STORE, IDLE_TIMEOUT, ABSOLUTE_TIMEOUT, SECRET,
 * COOKIE_SECURE, TRUST_PROXY (see docs/demo.md).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../src/errors.js';
import { storeFromUrl } from '../src/stores/from-url.js';
import { createDemoApp } from './app.js';
import { EnvError, readConfig, reason, storeDisplay } from './config.js';
import { resolveSecret } from './secret.js';

const DATA_DIR = './data';

/**
 * Opens the store; a URL or option the library refuses (ConfigError), or a file or connection
 * that can't be set up (an error with a system `code`, e.g. EACCES), is a bad STORE.
 */
async function openStore(url: string, display: string, secret: string) {
  try {
    return await storeFromUrl(url, { secrets: [secret] });
  } catch (error) {
    const named = error instanceof ConfigError || (error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string');
    if (named) throw new EnvError(`STORE ${JSON.stringify(display)} could not be opened: ${reason(error as Error)}`);
    throw error;
  }
}

async function main(): Promise<void> {
  const config = readConfig(process.env);
  // The library's masking: the userinfo password and secret-looking query parameters (?password=).
  const storeLabel = storeDisplay(config.storeUrl);
  const secret = resolveSecret(config.secret, DATA_DIR);
  if (secret.source === 'generated') {
    console.warn(`warning: SECRET is not set; generated a development secret in ${secret.path}. Set SECRET in production.`);
  }
  const store = await openStore(config.storeUrl, storeLabel, secret.secret);
  const app = createDemoApp({
    store,
    storeLabel,
    ...(config.idleTimeout !== undefined && { idleTimeout: config.idleTimeout }),
    ...(config.absoluteTimeout !== undefined && { absoluteTimeout: config.absoluteTimeout }),
    cookieSecure: config.cookieSecure,
    trustProxy: config.trustProxy,
  });
  const server = createServer(app.handler);
  // Bound slow clients: a request must arrive completely within 30 s.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  console.log(`coatcheck demo listening on http://${host}:${port} (sessions: ${storeLabel})`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: shutting down`);
    server.close();
    server.closeIdleConnections();
    // Keep-alive connections get a moment to finish; then exit regardless.
    setTimeout(() => process.exit(0), 2_000).unref();
    server.once('close', () => {
      app.close().then(
        () => process.exit(0),
        (error: unknown) => {
          console.error('closing the store failed:', error);
          process.exit(1);
        },
      );
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((error: unknown) => {
  console.error(error instanceof EnvError ? `configuration error: ${error.message}` : error);
  process.exit(1);
});
