/**
 * `npm start`: the demo on http://localhost:3000 with sessions in ./data/sessions.db (SQLite).
 * Configuration by environment: PORT, HOST, STORE, IDLE_TIMEOUT, ABSOLUTE_TIMEOUT, SECRET,
 * COOKIE_SECURE, TRUST_PROXY, SHUTDOWN_GRACE (see docs/demo.md).
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../src/errors.js';
import { parseStoreUrl, storeFromUrl } from '../src/stores/from-url.js';
import { createDemoApp, type DemoApp } from './app.js';
import { EnvError, readConfig, reason, storeDisplay } from './config.js';
import { resolveSecret } from './secret.js';

const DATA_DIR = './data';

/**
 * Opens the store; a URL or option the library refuses (ConfigError), or a file or connection
 * that can't be set up (an error with a system `code`, e.g. EACCES), is a bad STORE.
 */
async function openStore(url: string, display: string, secret: string | null) {
  try {
    return await storeFromUrl(url, secret === null ? {} : { secrets: [secret] });
  } catch (error) {
    const named = error instanceof ConfigError || (error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string');
    if (named) throw new EnvError(`STORE ${JSON.stringify(display)} could not be opened: ${reason(error as Error)}`);
    throw error;
  }
}

/** Whether the store URL names the cookie store, which seals sessions with the secret. */
function usesSecret(url: string): boolean {
  try {
    return parseStoreUrl(url).kind === 'cookie';
  } catch {
    return false; // a bad URL: openStore says why
  }
}

/**
 * How long closing the store may take once the requests are done: the library waits up to its
 * `storeTimeout` (5 s) for store calls in flight, then the store's own close.
 */
const STORE_CLOSE_LIMIT_MS = 8_000;
/** setTimeout's largest delay; a larger one would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Graceful shutdown on SIGTERM (what process supervisors send) and SIGINT (Ctrl-C):
 *
 * 1. Stop accepting connections; close the idle keep-alive ones now, and every other one as soon
 *    as its request is answered (those answers say `Connection: close`).
 * 2. Once the last connection is gone, close the sessions (the store: after the requests, so no
 *    write is cut off), and exit 0.
 * 3. If requests are still running when `graceMs` is over, or on a second signal, cut their
 *    connections, still close the store, and exit 1: the supervisor's log shows it wasn't clean.
 *    A third signal, or a store that takes over STORE_CLOSE_LIMIT_MS to close, exits 1 at once.
 */
function gracefulShutdown(server: Server, app: DemoApp, graceMs: number): (signal: string) => void {
  /** Responses not finished yet: the requests in flight. */
  const running = new Set<ServerResponse>();
  let stopping = false;
  let forced = false;
  /** Whether a forced shutdown cut requests; then the exit status is 1. */
  let cut = false;

  // Registered before the app's handler, so it sees each response before anything is sent.
  server.on('request', (_req, res: ServerResponse) => {
    running.add(res);
    if (stopping && !res.headersSent) res.setHeader('Connection', 'close');
    res.once('close', () => {
      running.delete(res);
      // Also for an answer that went out as keep-alive (e.g. its headers were sent before the signal).
      if (stopping) server.closeIdleConnections();
    });
  });

  const requests = () => `${running.size} request${running.size === 1 ? '' : 's'} in flight`;

  let closing: Promise<never> | undefined;
  const closeStoreAndExit = (): Promise<never> =>
    (closing ??= (async () => {
      const limit = setTimeout(() => {
        console.error(`the session store did not close within ${STORE_CLOSE_LIMIT_MS / 1000} s; exiting`);
        process.exit(1);
      }, STORE_CLOSE_LIMIT_MS);
      let failed = false;
      try {
        await app.close();
        console.log('session store closed');
      } catch (error) {
        console.error('closing the session store failed:', error);
        failed = true;
      }
      clearTimeout(limit);
      // Read now: a second signal while the store was closing counts too.
      process.exit(cut || failed ? 1 : 0);
    })());

  const force = (why: string) => {
    if (forced) {
      console.error(`${why}: exiting now`);
      process.exit(1);
    }
    forced = true;
    // With nothing in flight (e.g. one Ctrl-C delivered twice, by the terminal and by npm) nothing
    // is lost: the shutdown carries on as it was, and exits 0.
    cut = running.size > 0;
    if (cut) console.error(`${why}: cutting ${requests()}`);
    server.closeAllConnections();
    void closeStoreAndExit();
  };

  let graceTimer: NodeJS.Timeout | undefined;
  return function stop(signal: string): void {
    if (stopping) return force(`${signal} again`);
    stopping = true;
    const grace = Math.min(graceMs, MAX_TIMER_MS);
    console.log(`${signal}: shutting down; no new connections, up to ${grace / 1000} s for ${requests()}`);
    for (const res of running) if (!res.headersSent) res.setHeader('Connection', 'close');
    graceTimer = setTimeout(() => force(`the grace period of ${grace / 1000} s is over`), grace);
    // Calls back once every connection has closed: the requests are done (or were cut).
    server.close(() => {
      clearTimeout(graceTimer);
      void closeStoreAndExit();
    });
    server.closeIdleConnections();
  };
}

async function main(): Promise<void> {
  const config = readConfig(process.env);
  // The library's masking: the userinfo password and secret-looking query parameters (?password=).
  const storeLabel = storeDisplay(config.storeUrl);
  // Only the cookie store seals with it: no secret file (nor warning) for the others. A SECRET
  // that is set is checked all the same, so a bad one is found before it is needed.
  const secret = usesSecret(config.storeUrl) || config.secret !== undefined ? resolveSecret(config.secret, DATA_DIR) : null;
  if (secret?.source === 'generated') {
    console.warn(`warning: SECRET is not set; generated a development secret in ${secret.path}. Set SECRET in production.`);
  }
  const store = await openStore(config.storeUrl, storeLabel, secret?.secret ?? null);
  const app = createDemoApp({
    store,
    storeLabel,
    ...(config.idleTimeout !== undefined && { idleTimeout: config.idleTimeout }),
    ...(config.absoluteTimeout !== undefined && { absoluteTimeout: config.absoluteTimeout }),
    cookieSecure: config.cookieSecure,
    trustProxy: config.trustProxy,
  });
  const server = createServer();
  const shutDown = gracefulShutdown(server, app, config.shutdownGrace * 1000);
  server.on('request', app.handler);
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

  process.on('SIGINT', () => shutDown('SIGINT'));
  process.on('SIGTERM', () => shutDown('SIGTERM'));
}

main().catch((error: unknown) => {
  console.error(error instanceof EnvError ? `configuration error: ${error.message}` : error);
  process.exit(1);
});
