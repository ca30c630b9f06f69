/**
 * `npm start`: the demo on http://localhost:3000 with sessions in ./data/sessions.db (SQLite).
 * Configuration by environment: PORT, HOST, STORE, IDLE_TIMEOUT, ABSOLUTE_TIMEOUT, SECRET,
 * COOKIE_SECURE, TRUST_PROXY (see docs/demo.md).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { storeFromUrl } from '../src/stores/from-url.js';
import { createDemoApp } from './app.js';
import { EnvError, readConfig } from './config.js';
import { resolveSecret } from './secret.js';

const DATA_DIR = './data';

/** The STORE URL without a password, for logs and the page footer. */
function redact(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]*):[^@]*@/i, '$1:***@');
}

async function main(): Promise<void> {
  const config = readConfig(process.env);
  const secret = resolveSecret(config.secret, DATA_DIR);
  if (secret.source === 'generated') {
    console.warn(`warning: SECRET is not set; generated a development secret in ${secret.path}. Set SECRET in production.`);
  }
  const store = await storeFromUrl(config.storeUrl, { secrets: [secret.secret] });
  const app = createDemoApp({
    store,
    storeLabel: redact(config.storeUrl),
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
  console.log(`coatcheck demo listening on http://${host}:${port} (sessions: ${redact(config.storeUrl)})`);

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
