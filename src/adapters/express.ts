/**
 * Express adapter (Express 5 and 4). `req.session` is the request's session handle, loaded lazily:
 * no store call for requests that never use it. The response is committed exactly once, just
 * before its headers go out (the node:http adapter's interception), and Set-Cookie is appended to
 * the app's own cookies (`res.cookie()` included).
 *
 * Proxies: a request counts as HTTPS when Express says so (`req.secure`, which follows
 * `app.set('trust proxy', …)`) or, with coatcheck's `trustProxy: true`, when X-Forwarded-Proto
 * says `https`. The client IP is `req.ip` unless coatcheck's `trustProxy` is true (then the
 * left-most X-Forwarded-For entry, as in every other adapter). Either setting alone is enough;
 * prefer Express's, which can name the proxies it trusts.
 * @module coatcheck/express
 * @example
 * ```ts
 * import express from 'express';
 * import { createSessions } from 'coatcheck';
 * import { memoryStore } from 'coatcheck/stores/memory';
 * import { expressSessions } from 'coatcheck/express';
 *
 * const sessions = createSessions({ store: memoryStore() });
 * const app = express();
 * app.use(expressSessions(sessions));
 * app.get('/', async (req, res) => {
 *   const session = await req.session.load();
 *   session.set('visits', (session.get('visits', 0) as number) + 1);
 *   res.send(`visit ${session.get('visits')}`);
 * });
 * app.listen(3000);
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { findCookie } from '../cookie/parse.js';
import { runWithSession } from '../core/context.js';
import { cookieNameFor, isSecureFor } from '../core/options.js';
// CoatcheckSession: for the augmentation below, where a bare `Session` may name the framework's.
import type { RequestInfo, Session, Session as CoatcheckSession } from '../core/session.js';
import type { Sessions } from '../core/sessions.js';
import { ConfigError } from '../errors.js';
import type { CsrfRequest } from '../security/csrf.js';
import type { RegisteredData, SessionData } from '../types.js';
import type { NodeAdapterOptions } from './node.js';
import { attachedSession, attachSession } from './node-internal.js';
import { checkAdapterOptions, clientIp, csrfRequestOf, isHttps, mountedAgain, requestHost } from './shared.js';

export { getSession, sessionHandle } from './node.js';

declare global {
  // Express's own typing hook: every `req` in the app gets a typed `session`.
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The request's coatcheck session (lazy: `await req.session.load()` before reading it). */
      session: CoatcheckSession<RegisteredData>;
    }
  }
}

/**
 * `Req` / `Res` are what `onError` receives: Express's own request and response at run time.
 * Annotate its parameters (`(error, req: express.Request, res: express.Response) => …`) to use
 * Express's methods there; coatcheck's types do not depend on `@types/express`.
 */
export interface ExpressSessionsOptions<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse>
  extends NodeAdapterOptions<Req, Res> {
  /**
   * Load the session before calling `next()` when the request carries a session cookie, so
   * handlers can read `req.session` synchronously (express-session's model). A store failure
   * then goes to `next(err)` (a CoatcheckError with `status` 503, which Express's default error
   * handler answers with). Requests without the cookie still cost nothing. Default false.
   */
  eager?: boolean | undefined;
  /**
   * Give `req` and `res` a shape V8 can cache (see `shareShape`): Express swaps their prototypes
   * on every request, which leaves each with a hidden class of its own, so every property access
   * on them, in coatcheck and in the rest of the app, takes V8's slow path. Costs one property
   * delete and re-add per object (`req.res`, `res.req`); values and attributes are unchanged.
   * Default true.
   */
  shareShapes?: boolean | undefined;
}

/** The slice of an Express request the adapter reads (Express 4 and 5 both have it). */
interface ExpressRequest extends IncomingMessage {
  session: Session<RegisteredData>;
  secure?: boolean;
  ip?: string | undefined;
}

type NextFunction = (error?: unknown) => void;

/**
 * Express middleware giving each request a session at `req.session`; `currentSession()` works
 * in everything that runs after it.
 * @example
 * <!-- snippet: with express, sessions -->
 * ```ts
 * app.use(expressSessions(sessions, { eager: true }));
 * app.get('/cart', (req, res) => {
 *   res.json(req.session.get('cart', [])); // loaded already: eager
 * });
 * ```
 */
export function expressSessions<
  T extends SessionData = RegisteredData,
  Req extends IncomingMessage = IncomingMessage,
  Res extends ServerResponse = ServerResponse,
>(sessions: Sessions<T>, options: ExpressSessionsOptions<Req, Res> = {}) {
  if (!sessions || typeof sessions.open !== 'function') throw new ConfigError('expressSessions(sessions): pass the object createSessions() returned');
  checkAdapterOptions('expressSessions', options, { eager: 'boolean', shareShapes: 'boolean', onError: 'function' });
  const eager = options.eager ?? false;
  const shareShapes = options.shareShapes ?? true;
  const trustProxy = sessions.options.trustProxy;
  const contextual = sessions.options.context;

  return function coatcheckExpress(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    const request = req as ExpressRequest;
    // Mounted twice (app and router): the first session stays the only one. Another engine's
    // session on the request is a setup mistake, reported through Express's error handling.
    const existing = attachedSession(req);
    if (existing) {
      let again: boolean;
      try {
        again = mountedAgain(existing, sessions, 'expressSessions');
      } catch (error) {
        next(error);
        return;
      }
      if (again) {
        // The request's one session, wherever it was opened (an outer Express mount, or node's
        // withSessions around the app): this mount's handlers find it at req.session all the same.
        const reused = existing as unknown as Session<RegisteredData>;
        request.session = reused;
        if (eager && !reused.loaded && carriesSessionCookie(sessions, httpsOf(request, trustProxy), req.headers.cookie)) loadThenNext(reused, next, contextual);
        else nextInContext(reused, next, contextual);
        return;
      }
    }
    if (shareShapes) {
      // Before our own properties go on: each would otherwise copy the object's whole map.
      shareShape(req, 'res');
      shareShape(res, 'req');
    }
    // Hand over the protocol and IP that also honour Express's own `trust proxy` setting, each
    // read only when needed: req.secure / req.ip evaluate proxy trust on every read (~2 µs each),
    // and the IP only matters when a session is created, sealed or bound to it.
    let https: boolean | undefined;
    const httpsOnce = () => (https ??= httpsOf(request, trustProxy));
    const session = attachSession(sessions, req, res, options as NodeAdapterOptions, { https: httpsOnce, ip: () => ipOf(request, trustProxy) }) as unknown as Session<RegisteredData>;
    request.session = session;

    if (!eager || !carriesSessionCookie(sessions, httpsOnce(), req.headers.cookie)) {
      nextInContext(session, next, contextual);
      return;
    }
    loadThenNext(session, next, contextual);
  };
}

/** Runs the rest of the chain in the session's context. */
function nextInContext(session: Session<RegisteredData>, next: NextFunction, contextual: boolean): void {
  runWithSession(session, () => next(), contextual);
}

/** `eager`: loads the session, then goes on; a store failure goes to `next(err)`. */
function loadThenNext(session: Session<RegisteredData>, next: NextFunction, contextual: boolean): void {
  const loading = session.load();
  if (session.loaded) {
    // A synchronous store has loaded it already: no microtask between here and the route.
    nextInContext(session, next, contextual);
    return;
  }
  loading.then(
    () => nextInContext(session, next, contextual),
    (error: unknown) => runWithSession(session, () => next(error), contextual),
  );
}

/**
 * Express gives `req` and `res` its app's prototype (`Object.setPrototypeOf`) and then adds
 * properties. In V8 (measured on Node 20) every property added after such a swap creates a new
 * hidden class, so each request's objects have one of their own: every property access on them
 * misses V8's inline caches, and each property added copies the whole map (about 3 µs each on a
 * response). Deleting and re-adding one property that is not the newest moves the object to
 * dictionary mode, whose hidden class such objects share (V8 finds it in a small cache; in about
 * one process in thirty another entry evicts it and one of the two objects keeps a class per
 * request, which still makes its property additions cheap). Bare Express with coatcheck mounted
 * served 26–45 % more requests per second (docs/benchmarks.md). The property keeps its value and
 * attributes; only its place in key order changes (it goes last).
 */
function shareShape(target: object, key: string): void {
  const descriptor = Object.getOwnPropertyDescriptor(target, key);
  if (descriptor === undefined || !descriptor.configurable || !('value' in descriptor)) return;
  delete (target as Record<string, unknown>)[key];
  Object.defineProperty(target, key, descriptor);
}

/** The slice of an Express request `csrfRequest` reads. */
interface ExpressCsrfRequest extends IncomingMessage {
  secure?: boolean | undefined;
  originalUrl?: string | undefined;
  app?: { get(setting: string): unknown } | undefined;
}

/**
 * What `verifyCsrf` needs from an Express request, with Express's own proxy rules: the protocol
 * is `req.secure` (which follows `app.set('trust proxy', …)`), and X-Forwarded-Host is believed
 * when Express trusts the peer. `trustProxy: true` (coatcheck's setting) believes both from any
 * peer, as `csrfRequest` from `coatcheck/node` does. Pass `formToken` when the form field holds it.
 * @example
 * <!-- snippet: with coatcheck, express, session, handler -->
 * ```ts
 * import { csrfRequest } from 'coatcheck/express';
 * const check = await verifyCsrf(session, csrfRequest(req, { formToken: req.body?.csrf_token ?? null }));
 * if (!check.ok) return res.status(check.status).send(check.reason);
 * ```
 */
export function csrfRequest(req: ExpressCsrfRequest, options: { trustProxy?: boolean | undefined; formToken?: string | null | undefined } = {}): CsrfRequest {
  const trustProxy = options.trustProxy ?? false;
  const https = req.secure === true || isHttps(Boolean((req.socket as { encrypted?: boolean }).encrypted), header(req, 'x-forwarded-proto'), trustProxy);
  const trusts = req.app?.get('trust proxy fn');
  const forwardedHostTrusted = trustProxy || (typeof trusts === 'function' && Boolean((trusts as (address: string | undefined, hop: number) => unknown)(req.socket.remoteAddress, 0)));
  const lookup = (name: string) => header(req, name);
  return csrfRequestOf(req.method, lookup, https, requestHost(lookup, forwardedHostTrusted), req.originalUrl ?? req.url ?? '/', options.formToken);
}

function httpsOf(req: ExpressRequest, trustProxy: boolean): boolean {
  const encrypted = Boolean((req.socket as { encrypted?: boolean }).encrypted);
  return req.secure === true || isHttps(encrypted, header(req, 'x-forwarded-proto'), trustProxy);
}

function ipOf(req: ExpressRequest, trustProxy: boolean): string | null {
  return trustProxy ? clientIp(req.socket.remoteAddress, header(req, 'x-forwarded-for'), true) : (req.ip ?? req.socket.remoteAddress ?? null);
}

function carriesSessionCookie(sessions: { options: Sessions['options'] }, https: boolean, cookieHeader: RequestInfo['cookieHeader']): boolean {
  const { cookie } = sessions.options;
  const name = cookieNameFor(cookie, isSecureFor(cookie, https));
  // On HTTPS the session also picks up a cookie issued over plain HTTP (under the bare name).
  return findCookie(cookieHeader, name).kind !== 'absent' || (name !== cookie.name && findCookie(cookieHeader, cookie.name).kind !== 'absent');
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
