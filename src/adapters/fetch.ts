/**
 * Fetch adapter: `(Request) => Response` handlers (Next.js route handlers, Hono, Bun/Deno-style
 * servers, `@hono/node-server`...). Lazy load, one commit after the handler, Set-Cookie appended.
 * @module coatcheck/fetch
 * @example
 * ```ts
 * import { createSessions } from 'coatcheck';
 * import { memoryStore } from 'coatcheck/stores/memory';
 * import { withSessions, getSession } from 'coatcheck/fetch';
 *
 * const sessions = createSessions({ store: memoryStore() });
 * export const handler = withSessions(sessions, async (request) => {
 *   const session = await getSession(request);
 *   session.set('visits', (session.get('visits', 0) as number) + 1);
 *   return new Response(`visit ${session.get('visits')}`);
 * });
 * ```
 */
import { runWithSession } from '../core/context.js';
import type { CommitResult, Session } from '../core/session.js';
import type { Sessions } from '../core/sessions.js';
import { ConfigError, NoContextError } from '../errors.js';
import type { RegisteredData, SessionData } from '../types.js';
import { checkAdapterOptions, clientIp, defaultFailure, failureResponse, isHttps, mountedAgain, SESSION_CACHE_CONTROL, varyWithCookie } from './shared.js';

export interface FetchAdapterOptions<Rest extends unknown[]> {
  /** The client's address, which a Request does not carry (e.g. from the server's socket info). */
  getClientIp?: (request: Request, ...rest: Rest) => string | null | undefined;
  /** Builds the response for a failed session (store down → 503...). */
  onError?: (error: unknown, request: Request) => Response | Promise<Response>;
}

/** Where the session hangs on the request: a symbol property is far cheaper than a WeakMap. */
const SESSION = Symbol.for('coatcheck.session');
type WithSession = Request & { [SESSION]?: object };

/** The request's session, loaded. */
export function getSession<T extends SessionData = RegisteredData>(request: Request): Promise<Session<T>> {
  return sessionHandle<T>(request).load();
}

/** The request's session handle without loading it. */
export function sessionHandle<T extends SessionData = RegisteredData>(request: Request): Session<T> {
  const session = (request as WithSession)[SESSION];
  if (!session) throw new NoContextError();
  return session as unknown as Session<T>;
}

/**
 * Opens a session for a Fetch request (framework adapters built on Fetch use this). `encrypted`:
 * whether the connection itself is TLS, when the adapter can see it; otherwise the request URL's
 * scheme decides, as the host runtime built it.
 */
export function openFetchSession<T extends SessionData>(sessions: Sessions<T>, request: Request, ip?: string | null, encrypted?: boolean): Session<T> {
  const trustProxy = sessions.options.trustProxy;
  // Parsing the URL costs a little: only a cookie with a Path of its own needs the request's.
  const scoped = sessions.options.cookie.path !== '/';
  const session = sessions.open(() => {
    const headers = request.headers;
    return {
      cookieHeader: headers.get('cookie'),
      https: isHttps(encrypted ?? request.url.startsWith('https:'), headers.get('x-forwarded-proto'), trustProxy),
      ip: clientIp(ip, headers.get('x-forwarded-for'), trustProxy),
      userAgent: headers.get('user-agent'),
      path: scoped ? new URL(request.url).pathname : null,
    };
  });
  (request as WithSession)[SESSION] = session;
  return session;
}

/**
 * The session an adapter mounted earlier opened on this request with the same `sessions`, if any
 * (that mount commits it); throws a ConfigError when another engine's session is there.
 */
export function reopenedFetchSession(sessions: { readonly options: object }, request: Request, adapter: string): Session<RegisteredData> | undefined {
  const existing = (request as WithSession)[SESSION];
  if (!mountedAgain(existing, sessions, adapter)) return undefined;
  return existing as unknown as Session<RegisteredData>;
}

/** Releases a response body that will not be sent (its stream's source: a file, a cursor...). */
export function discardBody(response: Response): void {
  try {
    response.body?.cancel().catch(() => undefined);
  } catch {
    // Nothing to release.
  }
}

/**
 * The response with the session's headers. A Set-Cookie goes on a copy sharing the app's body
 * stream, never on the app's own object: a Response can be returned again and again (a module
 * constant `new Response(null, { status: 204 })`, or a lightweight one `@hono/node-server`
 * re-sends from its cached body), so one user's cookie added to it would go to every later
 * request, and nothing visible on a Response proves it fresh. `Vary` and `Cache-Control` are
 * the same for every user, so they are set in place, as Hono's own middleware does: copying
 * costs a lot on `@hono/node-server` (it leaves its fast path; measured about 50 → 123 µs of CPU per
 * request), and most session responses carry no cookie. Immutable headers (`Response.redirect()`,
 * a `fetch` result) are copied too.
 */
export function applyCommit(response: Response, result: CommitResult | null): Response {
  if (result === null) return response;
  if (result.setCookie.length === 0) {
    try {
      decorate(response.headers, result);
      return response;
    } catch {
      // Immutable headers: copy below.
    }
  }
  const copy = new Response(response.body, response);
  decorate(copy.headers, result);
  return copy;
}

function decorate(headers: Headers, result: CommitResult): void {
  if (!headers.has('cache-control')) headers.set('Cache-Control', SESSION_CACHE_CONTROL);
  headers.set('Vary', varyWithCookie(headers.get('vary')));
  for (const cookie of result.setCookie) headers.append('Set-Cookie', cookie);
}

/** The default answer when a session fails (503 for a store outage). */
export function failureToResponse(error: unknown): Response {
  const { status, body } = defaultFailure(error);
  return new Response(body, { status, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' } });
}

const IP_BINDING_WITHOUT_ADDRESS = 'withSessions: binding.ip needs the client address, which a Request does not carry: pass getClientIp(request, ...rest)';

/** Wraps a Fetch handler so each request gets a session (also via `currentSession()`). */
export function withSessions<T extends SessionData, Rest extends unknown[]>(
  sessions: Sessions<T>,
  handler: (request: Request, ...rest: Rest) => Response | Promise<Response>,
  options: FetchAdapterOptions<Rest> = {},
): (request: Request, ...rest: Rest) => Promise<Response> {
  if (!sessions || typeof sessions.open !== 'function') throw new ConfigError('withSessions(sessions, handler): pass the object createSessions() returned');
  if (typeof handler !== 'function') throw new ConfigError('withSessions(sessions, handler): handler must be a function');
  checkAdapterOptions('withSessions', options, { getClientIp: 'function', onError: 'function' });
  // A Request does not carry the client's address: IP binding without it would bind nothing.
  // Refused where this mount opens the session; mounted inside another one, it reuses that
  // mount's session (and its address).
  const addressMissing = sessions.options.binding.ip && !options.getClientIp;
  return async function coatcheckFetch(request: Request, ...rest: Rest): Promise<Response> {
    // Wrapped twice (a wrapped handler called from a wrapped one, or inside Hono's middleware):
    // the outer mount's session is the request's one, and that mount commits it.
    const reopened = reopenedFetchSession(sessions, request, 'withSessions');
    if (reopened) return runWithSession(reopened, () => handler(request, ...rest), sessions.options.context);
    if (addressMissing) throw new ConfigError(IP_BINDING_WITHOUT_ADDRESS);
    const session = openFetchSession(sessions, request, options.getClientIp?.(request, ...rest));
    let response: Response;
    try {
      response = await runWithSession(session, () => handler(request, ...rest), sessions.options.context);
    } catch (error) {
      if (failureResponse(error).status === 500) throw error;
      return options.onError ? options.onError(error, request) : failureToResponse(error);
    }
    try {
      return applyCommit(response, await session.commit(response.status));
    } catch (error) {
      discardBody(response);
      return options.onError ? options.onError(error, request) : failureToResponse(error);
    }
  };
}
