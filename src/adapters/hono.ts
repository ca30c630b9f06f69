/**
 * Hono 4 middleware. `c.get('session')` is the request's session handle, loaded lazily: no store
 * call for requests that never use it. After the handler, the session is committed once with the
 * response's status. `Vary` and `Cache-Control` are set on `c.res`; a Set-Cookie goes on a copy of
 * it (sharing its body, appended to the app's own cookies), so a Response the app reuses never
 * carries one user's cookie to another.
 * Runs anywhere Hono runs on Node (`@hono/node-server`, `app.request()`, `app.fetch`); the
 * handler and everything it awaits see the session through `currentSession()`.
 *
 * Proxies: Hono has no proxy setting of its own, so coatcheck's `trustProxy` decides whether
 * X-Forwarded-Proto / X-Forwarded-For are believed, as in the Fetch adapter. Without it, HTTPS
 * is read from the connection on `@hono/node-server`, and from the request URL's scheme elsewhere.
 * @module coatcheck/hono
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * import { serve } from '@hono/node-server';
 * import { createSessions } from 'coatcheck';
 * import { memoryStore } from 'coatcheck/stores/memory';
 * import { honoSessions } from 'coatcheck/hono';
 *
 * const sessions = createSessions({ store: memoryStore() });
 * const app = new Hono();
 * app.use(honoSessions(sessions));
 * app.get('/', async (c) => {
 *   const session = await c.get('session').load();
 *   session.set('visits', (session.get('visits', 0) as number) + 1);
 *   return c.text(`visit ${session.get('visits')}`);
 * });
 * serve({ fetch: app.fetch, port: 3000 });
 * ```
 */
import type { Context, MiddlewareHandler } from 'hono';
import { runWithSession } from '../core/context.js';
// CoatcheckSession: for the augmentation below, where a bare `Session` may name the framework's.
import type { CommitResult, Session, Session as CoatcheckSession } from '../core/session.js';
import type { Sessions } from '../core/sessions.js';
import { CoatcheckError, ConfigError } from '../errors.js';
import type { RegisteredData, SessionData } from '../types.js';
import { applyCommit, discardBody, failureToResponse, openFetchSession, reopenedFetchSession, SECOND_SESSION, secondSessionCookie, unsendable } from './fetch-internal.js';
import { checkAdapterOptions, failureResponse } from './shared.js';

declare module 'hono' {
  interface ContextVariableMap {
    /** The request's coatcheck session (lazy: `await c.get('session').load()` before reading it). */
    session: CoatcheckSession<RegisteredData>;
  }
}

export interface HonoSessionsOptions {
  /**
   * The client's address, which a Fetch request does not carry. Default: the socket address
   * `@hono/node-server` passes in `c.env` (what its `getConnInfo` reads), else none. On other
   * runtimes pass e.g. `(c) => getConnInfo(c).remote.address` from the runtime's conninfo helper:
   * with `binding.ip` on, a request the default cannot find an address for is refused with a
   * ConfigError (binding to no address would bind nothing).
   */
  getClientIp?: ((c: Context) => string | null | undefined) | undefined;
  /** Builds the response for a failed session (store down → 503, ended elsewhere → 409). */
  onError?: ((error: unknown, c: Context) => Response | Promise<Response>) | undefined;
}

/**
 * The request's session, loaded (one store read if the request carries a session cookie).
 * @example
 * <!-- snippet: with hono -->
 * ```ts
 * app.get('/me', async (c) => c.json({ user: (await getSession(c)).userId }));
 * ```
 */
export function getSession<T extends SessionData = RegisteredData>(c: Context): Promise<Session<T>> {
  // No context at all, or something that is not one (`c.req`): the same rejection.
  const session = (typeof c?.get === 'function' ? c.get('session') : undefined) as unknown as Session<T> | null | undefined;
  // A route registered before app.use(honoSessions(…)), or outside its path: say so rather than fail on `undefined.load`.
  if (!session) return Promise.reject(new ConfigError(HONO_NOT_MOUNTED));
  return session.load();
}

const HONO_NOT_MOUNTED =
  "honoSessions: this request has no session: app.use(honoSessions(sessions)) before the routes that use it (Hono runs middleware in registration order), on a path that covers them";

const IP_BINDING_NO_ADDRESS = 'honoSessions: binding.ip needs the client address, and getClientIp(c) gave none for this request';

const IP_BINDING_WITHOUT_ADDRESS =
  'honoSessions: binding.ip needs the client address, and this request has none from @hono/node-server: pass getClientIp(c), e.g. (c) => getConnInfo(c).remote.address from your runtime\'s conninfo helper';

/**
 * Hono middleware giving each request a session at `c.get('session')` (also `c.var.session`).
 *
 * A store failure (503) or a session ended elsewhere (409) while committing becomes the short
 * failure response, without the session cookie. A coatcheck error thrown by the handler, which
 * Hono's error handler turns into a 500, is answered with its own status (503, 409, 413, 401); a
 * 4xx saves the session's changes and carries its cookie. A response the app's own `onError`
 * built with another status is left alone.
 * @example
 * <!-- snippet: with hono, sessions -->
 * ```ts
 * import { getConnInfo } from '@hono/node-server/conninfo';
 * app.use(honoSessions(sessions, { getClientIp: (c) => getConnInfo(c).remote.address }));
 * app.post('/logout', async (c) => {
 *   await (await c.get('session').load()).logout();
 *   return c.redirect('/');
 * });
 * ```
 */
export function honoSessions<T extends SessionData = RegisteredData>(sessions: Sessions<T>, options: HonoSessionsOptions = {}): MiddlewareHandler {
  if (!sessions || typeof sessions.open !== 'function') throw new ConfigError('honoSessions(sessions): pass the object createSessions() returned');
  checkAdapterOptions('honoSessions', options, { getClientIp: 'function', onError: 'function' });
  const getClientIp = options.getClientIp ?? nodeServerIp;
  // As the Fetch adapter: refused where the session is first used, never on other requests.
  const missingAddress = !sessions.options.binding.ip ? undefined : options.getClientIp ? IP_BINDING_NO_ADDRESS : IP_BINDING_WITHOUT_ADDRESS;
  const contextual = sessions.options.context;

  return async function coatcheckHono(c, next) {
    // Mounted again (app-wide and on a path, or inside a Fetch adapter's wrapper): the session
    // already opened is the request's one, and the mount that opened it commits it.
    const reopened = reopenedFetchSession(sessions, c.req.raw, 'honoSessions');
    if (reopened) {
      c.set('session', reopened);
      await runWithSession(reopened, next, contextual);
      // The outer mount commits, seeing only this app's answer: Hono's error handler made a thrown
      // coatcheck error a 500. Answer it with its own status, so a 4xx is saved with its cookie.
      if (c.res.status === 500 && isSessionFailure(c.error)) {
        discardBody(c.res);
        replace(c, await failure(c.error, c, options));
      }
      return;
    }
    const request = c.req.raw;
    const session = openFetchSession(sessions, request, () => getClientIp(c), nodeServerEncrypted(c), missingAddress) as unknown as Session<RegisteredData>;
    c.set('session', session);
    await runWithSession(session, next, contextual);

    // Hono's default error handler answers every thrown error with a 500; ours carry their own
    // status (503 store down, 409 ended elsewhere, 413 too large, 401 sign in again).
    if (c.res.status === 500 && isSessionFailure(c.error)) {
      const status = c.error.status;
      let result: CommitResult | null = null;
      try {
        // A 4xx is an answer: saved, as an app's own 4xx would be. A 5xx saves nothing.
        result = await session.commit(status < 500 ? status : 500);
      } catch (error) {
        discardBody(c.res);
        replace(c, await failure(error, c, options));
        return;
      }
      discardBody(c.res);
      const answer = await failure(c.error, c, options);
      replace(c, status < 500 ? applyCommit(answer, result) : answer);
      return;
    }
    if (unsendable(c.res)) {
      // Response.error(): a failure, as a 5xx is. Nothing is saved, and no copy of it can be made.
      session.closeUnsaved();
      return;
    }
    let result: CommitResult | null;
    try {
      result = await session.commit(c.res.status);
    } catch (error) {
      // The app's body (a stream() callback, a file) is never sent: release its source.
      discardBody(c.res);
      replace(c, await failure(error, c, options));
      return;
    }
    if (result === null) return;
    if (secondSessionCookie(c.res, result)) {
      discardBody(c.res);
      replace(c, await failure(new ConfigError(`honoSessions: ${SECOND_SESSION}`), c, options));
      return;
    }
    const response = applyCommit(c.res, result);
    if (response !== c.res) replace(c, response);
  };
}

function isSessionFailure(error: unknown): error is CoatcheckError {
  return error instanceof CoatcheckError && failureResponse(error).status !== 500;
}

function failure(error: unknown, c: Context, options: HonoSessionsOptions): Response | Promise<Response> {
  return options.onError ? options.onError(error, c) : failureToResponse(error);
}

/**
 * Assigning `c.res` copies the old response's headers onto the new one (Set-Cookie included);
 * clearing it first makes the new response the whole answer.
 */
function replace(c: Context, response: Response): void {
  c.res = undefined;
  c.res = response;
}

/** @hono/node-server's bindings: `{ incoming, outgoing }` (or nested under `server`). */
function nodeServerSocket(c: Context): NodeSocket | undefined {
  const env = c.env as { incoming?: NodeSocketHolder; server?: { incoming?: NodeSocketHolder } } | undefined;
  return (env?.server?.incoming ?? env?.incoming)?.socket;
}

function nodeServerIp(c: Context): string | null {
  const address = nodeServerSocket(c)?.remoteAddress;
  return typeof address === 'string' ? address : null;
}

/**
 * TLS or not, from the connection itself when @hono/node-server exposes it: it builds the request
 * URL from the request line, and a client may send an absolute `https://…` target over plain HTTP.
 */
function nodeServerEncrypted(c: Context): boolean | undefined {
  const socket = nodeServerSocket(c);
  return socket === undefined ? undefined : socket.encrypted === true;
}

interface NodeSocket {
  remoteAddress?: unknown;
  encrypted?: unknown;
}

interface NodeSocketHolder {
  socket?: NodeSocket;
}
