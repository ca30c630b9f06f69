/**
 * node:http adapter. Loads lazily (no store call for requests that never touch the session),
 * commits exactly once before the headers go out — with `res.end`, `res.write` streaming or an
 * explicit `res.writeHead` — and appends Set-Cookie without clobbering the app's cookies.
 * @module coatcheck/node
 * @example
 * ```ts
 * import http from 'node:http';
 * import { createSessions } from 'coatcheck';
 * import { memoryStore } from 'coatcheck/stores/memory';
 * import { withSessions, getSession } from 'coatcheck/node';
 *
 * const sessions = createSessions({ store: memoryStore() });
 * http.createServer(withSessions(sessions, async (req, res) => {
 *   const session = await getSession(req);
 *   session.set('visits', (session.get('visits', 0) as number) + 1);
 *   res.end(`visit ${session.get('visits')}`);
 * })).listen(3000);
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { runWithSession } from '../core/context.js';
import type { Session } from '../core/session.js';
import type { Sessions } from '../core/sessions.js';
import { ConfigError } from '../errors.js';
import type { CsrfRequest } from '../security/csrf.js';
import type { RegisteredData, SessionData } from '../types.js';
import { attachedSession, attachSession, failRequest, header } from './node-internal.js';
import { checkAdapterOptions, csrfRequestOf, isHttps, mountedAgain, requestHost } from './shared.js';

/** A request of `node:http`, or of `node:http2`'s compatibility API (`http2.createServer(handler)`). */
export type NodeRequest = IncomingMessage | Http2ServerRequest;
/** A response of `node:http`, or of `node:http2`'s compatibility API. */
export type NodeResponse = ServerResponse | Http2ServerResponse;

export interface NodeAdapterOptions<Req extends NodeRequest = IncomingMessage, Res extends NodeResponse = ServerResponse> {
  /**
   * Answers a request whose session failed (store down → 503, ended elsewhere → 409, a bug → 500).
   * Default: a short plain-text answer. It gets the response with status 500 and `Cache-Control:
   * no-store`, without the failed answer's Content-Type, Content-Length, cookies, validators or
   * Location (headers set with `setHeader()`, such as CORS or HSTS, stay; those given to `writeHead()` go with the failed answer). Also told when a commit fails once nothing can replace the
   * response (its head had gone out, or Node's own `end` was sending its body): the connection is
   * closed by then (`res.destroyed`), whatever it writes is dropped; use that call to log. Told
   * too, after the fact, of an error the handler throws once it has ended its response: that
   * response goes out as the handler wrote it, and whatever this writes is dropped. (Without
   * `onError`, the first such error is a process warning, `COATCHECK_ERROR_AFTER_END`.)
   */
  onError?: ((error: unknown, req: Req, res: Res) => void) | undefined;
}

/**
 * The request's session, loaded (one store read if the request carries a session cookie).
 * Rejects (never throws) with a ConfigError when no adapter opened a session for this request.
 */
export function getSession<T extends SessionData = RegisteredData>(req: NodeRequest): Promise<Session<T>> {
  const session = attachedSession(req) as unknown as Session<T> | undefined;
  if (!session) return Promise.reject(new ConfigError(NODE_NOT_MOUNTED));
  return session.load();
}

const NODE_NOT_MOUNTED =
  'this request has no session: no coatcheck adapter runs in front of this handler (app.use(expressSessions(sessions)) before the routes that use it, or withSessions(sessions, handler) from coatcheck/node around the handler)';

/**
 * The request's session handle without loading it (no store call): `await handle.load()` before
 * reading data from a request that carries a session cookie. Throws a ConfigError where no adapter
 * opened a session for this request.
 */
export function sessionHandle<T extends SessionData = RegisteredData>(req: NodeRequest): Session<T> {
  const session = attachedSession(req);
  if (!session) throw new ConfigError(NODE_NOT_MOUNTED);
  return session as unknown as Session<T>;
}

/**
 * Wraps a node:http handler so each request gets a session (also via `currentSession()`). Works
 * as well with `node:http2`'s compatibility API (`http2.createServer` / `createSecureServer`).
 */
export function withSessions<T extends SessionData, Req extends NodeRequest = IncomingMessage, Res extends NodeResponse = ServerResponse>(
  sessions: Sessions<T>,
  handler: (req: Req, res: Res) => unknown,
  options: NodeAdapterOptions<Req, Res> = {},
): (req: Req, res: Res) => Promise<void> {
  if (!sessions || typeof sessions.open !== 'function') throw new ConfigError('withSessions(sessions, handler): pass the object createSessions() returned');
  if (typeof handler !== 'function') throw new ConfigError('withSessions(sessions, handler): handler must be a function');
  checkAdapterOptions('withSessions', options as object, { onError: 'function' });
  // An HTTP/2 compatibility request and response behave as node:http's where the hook reaches in
  // (the differences are handled where they arise): one code path, typed as node:http's.
  const app = handler as unknown as (req: IncomingMessage, res: ServerResponse) => unknown;
  const hookOptions = options as unknown as NodeAdapterOptions;
  const contextual = sessions.options.context;
  const serve = (session: object, req: IncomingMessage, res: ServerResponse): Promise<void> =>
    runWithSession(
      session,
      () => {
        // One promise for the handler's outcome, not an async wrapper's extra ones per request.
        let outcome: unknown;
        try {
          outcome = app(req, res);
        } catch (error) {
          failRequest(error, req, res, hookOptions);
          return Promise.resolve();
        }
        return Promise.resolve(outcome).then(undefined, (error: unknown) => failRequest(error, req, res, hookOptions));
      },
      contextual,
    );
  const coatcheckHandler = (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const existing = attachedSession(req);
    if (existing !== undefined) {
      // Mounted again on this request (a wrapped handler called from a wrapped one, or inside the
      // Express adapter): the session already attached is the request's one.
      try {
        mountedAgain(existing, sessions, 'withSessions');
      } catch (error) {
        failRequest(error, req, res, hookOptions);
        return Promise.resolve();
      }
      return serve(existing, req, res);
    }
    return serve(attachSession(sessions, req, res, hookOptions), req, res);
  };
  return coatcheckHandler as unknown as (req: Req, res: Res) => Promise<void>;
}

/**
 * What `verifyCsrf` needs from a node request: method, the absolute URL the client used (its
 * origin is what the Origin header must match; behind a trusted proxy, X-Forwarded-Proto/-Host
 * decide it) and header lookup. Pass `formToken` when the app parsed a form field.
 * @example
 * <!-- snippet: with coatcheck, node, sessions, session -->
 * ```ts
 * const check = await verifyCsrf(session, csrfRequest(req, { trustProxy: sessions.options.trustProxy }));
 * ```
 */
export function csrfRequest(req: NodeRequest, options: { trustProxy?: boolean | undefined; formToken?: string | null | undefined } = {}): CsrfRequest {
  const trustProxy = options.trustProxy ?? false;
  const https = isHttps(Boolean((req.socket as { encrypted?: boolean }).encrypted), header(req, 'x-forwarded-proto'), trustProxy);
  const lookup = (name: string) => header(req, name);
  return csrfRequestOf(req.method, lookup, https, requestHost(lookup, trustProxy), req.url ?? '/', options.formToken);
}
