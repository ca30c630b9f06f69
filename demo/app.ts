/**
 * Builds the demo's request handler from options (no environment, no listening), so tests can run
 * it in-process and `server.ts` can run it for real.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { withSessions } from '../src/adapters/node.js';
import { CoatcheckError, createSessions } from '../src/index.js';
import type { AnyStore } from '../src/stores/types.js';
import type { DemoData, DemoSessions } from './actions.js';
import { apiRoutes } from './api.js';
import { sendHtml, sendJson, sendText } from './http.js';
import { bareErrorPage } from './pages.js';
import { webRoutes } from './web.js';

export interface DemoAppOptions {
  store: AnyStore;
  /** Shown in the page footer, e.g. the STORE URL without credentials. Default: the store's name. */
  storeLabel?: string;
  idleTimeout?: number;
  absoluteTimeout?: number;
  cookieSecure?: boolean | 'auto';
  trustProxy?: boolean;
  /** Largest JSON or form body accepted, in bytes. Default 16 KiB. */
  bodyLimit?: number;
  /** How often expired sessions are swept, in ms (0: never). Default 10 minutes. */
  sweepInterval?: number;
  log?: Pick<Console, 'error' | 'warn'>;
}

export interface DemoApp {
  handler: RequestListener;
  sessions: DemoSessions;
  /** Stops the sweeper and closes the store. */
  close(): Promise<void>;
}

const STYLE = readFileSync(new URL('./style.css', import.meta.url), 'utf8');

export function createDemoApp(options: DemoAppOptions): DemoApp {
  const log = options.log ?? console;
  const trustProxy = options.trustProxy ?? false;
  const bodyLimit = options.bodyLimit ?? 16 * 1024;
  const sessions = createSessions<DemoData>({
    store: options.store,
    ...(options.idleTimeout !== undefined && { idleTimeout: options.idleTimeout }),
    ...(options.absoluteTimeout !== undefined && { absoluteTimeout: options.absoluteTimeout }),
    cookie: { secure: options.cookieSecure ?? 'auto' },
    // The library's default, spelled out because the demo shows it off: language survives sign-in/out.
    persistentFieldsOnLogin: ['language'],
    persistentFieldsOnLogout: ['language'],
    trustProxy,
  });
  /** What a failed session's status means to the visitor (the statuses `CoatcheckError`s carry). */
  const failures: Record<number, string> = {
    409: 'This session was ended by another request meanwhile.',
    413: `That would make the session larger than its size limit of ${sessions.options.maxDataSize} bytes; nothing was saved.`,
    503: 'The session store is not answering; please try again shortly.',
  };
  sessions.events.on('storeError', ({ operation, error }) => log.error(`session store failed during ${operation}:`, error));

  const api = apiRoutes({ sessions, trustProxy, bodyLimit });
  const web = webRoutes({ sessions, storeName: options.storeLabel ?? options.store.name, trustProxy, formLimit: bodyLimit });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const method = req.method ?? 'GET';
    // Requests that never touch the session cost no store call and get no cookie.
    if (path === '/healthz') return sendText(res, 200, 'ok', { 'Cache-Control': 'no-store' });
    if (path === '/style.css') return sendText(res, 200, STYLE, { 'Content-Type': 'text/css; charset=utf-8', 'Cache-Control': 'public, max-age=300' });
    if (path === '/api' || path.startsWith('/api/')) return api(req, res, path);
    if ((method === 'GET' || method === 'HEAD') && (await web.page(req, res, path))) return;
    if (method === 'POST' && (await web.post(req, res, path))) return;
    sendHtml(res, 404, bareErrorPage(404, 'There is no page here.'));
  }

  /**
   * A request whose session failed: the library's errors carry their status (store down → 503,
   * ended meanwhile → 409, over `maxDataSize` when saved → 413); anything else is a bug → 500.
   */
  function onError(error: unknown, req: IncomingMessage, res: ServerResponse): void {
    // The connection went away mid-request (the client hung up, or a shutdown's grace period
    // ran out): there is no one to answer, and it is no bug.
    if (req.destroyed && (error as NodeJS.ErrnoException | null)?.code === 'ECONNRESET') return;
    const status = error instanceof CoatcheckError && error.status in failures ? error.status : 500;
    if (status === 500) log.error('request failed:', error);
    // The cookie store's 413 is the browser's 4 KB cookie limit, not maxDataSize.
    const message =
      error instanceof CoatcheckError && error.code === 'ERR_COOKIE_TOO_LARGE'
        ? 'That would make the session cookie larger than the 4 KB a browser keeps; nothing was saved.'
        : (failures[status] ?? 'Internal error.');
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    if ((req.url ?? '').startsWith('/api')) sendJson(res, status, { error: message });
    else sendHtml(res, status, bareErrorPage(status, message));
  }

  const sweepInterval = options.sweepInterval ?? 10 * 60_000;
  const sweeper =
    sweepInterval > 0
      ? setInterval(() => sessions.clearExpired().catch((error: unknown) => log.warn('sweeping expired sessions failed:', error)), sweepInterval)
      : null;
  sweeper?.unref();

  return {
    handler: withSessions(sessions, route, { onError }),
    sessions,
    async close() {
      if (sweeper) clearInterval(sweeper);
      await sessions.close();
    },
  };
}
