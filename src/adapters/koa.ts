/**
 * Koa adapter (tested on Koa 3; it uses nothing Koa 2 lacks). `ctx.session` is the request's
 * session handle, loaded lazily: no store call for requests that never use it. After the
 * downstream middleware finishes, the session is committed once with `ctx.status` and its
 * Set-Cookie appended to the app's own (`ctx.cookies.set()` included). Everything downstream
 * runs inside the session's context, so `currentSession()` works there.
 *
 * With `ctx.respond = false` the app answers on `ctx.res` itself, so Koa's status and headers
 * are not the response's: once the session is used, `ctx.res` is hooked as in the node:http
 * adapter, and the session is committed with the raw response's status just before its head
 * goes out (an asynchronous store write holds the app's `writeHead`/`write`/`end` meanwhile).
 *
 * Proxies: a request counts as HTTPS when Koa says so (`ctx.secure`, which follows `app.proxy`)
 * or, with coatcheck's `trustProxy: true`, when X-Forwarded-Proto says `https`. The client IP is
 * `ctx.ip` unless coatcheck's `trustProxy` is true (then the left-most X-Forwarded-For entry).
 * @module coatcheck/koa
 * @example
 * ```ts
 * import Koa from 'koa';
 * import { createSessions } from 'coatcheck';
 * import { memoryStore } from 'coatcheck/stores/memory';
 * import { koaSessions } from 'coatcheck/koa';
 *
 * const sessions = createSessions({ store: memoryStore() });
 * const app = new Koa();
 * app.use(koaSessions(sessions));
 * app.use(async (ctx) => {
 *   const session = await ctx.session.load();
 *   session.set('visits', (session.get('visits', 0) as number) + 1);
 *   ctx.body = `visit ${session.get('visits')}`;
 * });
 * app.listen(3000);
 * ```
 */
import { STATUS_CODES } from 'node:http';
import type { Context, Middleware, Next } from 'koa';
import { runWithSession } from '../core/context.js';
// CoatcheckSession: for the augmentation below, where a bare `Session` may name the framework's.
import type { CommitResult, Session, Session as CoatcheckSession } from '../core/session.js';
import type { Sessions } from '../core/sessions.js';
import { ConfigError } from '../errors.js';
import type { CsrfRequest } from '../security/csrf.js';
import { isPromiseLike } from '../stores/types.js';
import type { RegisteredData, SessionData } from '../types.js';
import { discardBody } from './fetch-internal.js';
import type { NodeAdapterOptions } from './node.js';
import { attachedSession, attachSession, type ClientFacts } from './node-internal.js';
import { cacheControlWithCookie, checkAdapterOptions, clientIp, csrfRequestOf, defaultFailure, failureResponse, isHttps, mountedAgain, requestHost, SESSION_CACHE_CONTROL, type StreamWatch, varyWithCookie, watchStream, webBodyUnsendable } from './shared.js';

// On ExtendableContext, which every Koa context type includes: on DefaultContext it would be
// missing from the contexts of apps that give Koa a context type of their own.
declare module 'koa' {
  interface ExtendableContext {
    /** The request's coatcheck session (lazy: `await ctx.session.load()` before reading it). */
    session: CoatcheckSession<RegisteredData>;
  }
}

/**
 * The request's session, loaded (one store read if the request carries a session cookie).
 * @example
 * <!-- snippet: with koa -->
 * ```ts
 * app.use(async (ctx) => {
 *   ctx.body = { user: (await getSession(ctx)).userId };
 * });
 * ```
 */
export function getSession<T extends SessionData = RegisteredData>(ctx: { session: Session<RegisteredData> }): Promise<Session<T>> {
  const session = ctx?.session as unknown as Session<T> | null | undefined;
  // Middleware that runs before koaSessions (or an app without it): say so rather than fail on `undefined.load`.
  if (!session) return Promise.reject(new ConfigError(KOA_NOT_MOUNTED));
  return session.load();
}

const KOA_NOT_MOUNTED = 'koaSessions: this request has no session: app.use(koaSessions(sessions)) before the middleware and routes that use it';

/**
 * What `verifyCsrf` needs from a Koa request, with Koa's own proxy rules: the protocol is
 * `ctx.secure` and the host `ctx.host` (both follow `app.proxy`). `trustProxy: true` (coatcheck's
 * setting) believes X-Forwarded-Proto / -Host from any peer. Pass `formToken` when a form field holds it.
 * @example
 * <!-- snippet: with coatcheck, koa, sessions -->
 * ```ts
 * const check = await verifyCsrf(await getSession(ctx), csrfRequest(ctx));
 * if (!check.ok) ctx.throw(check.status, check.reason);
 * ```
 */
export function csrfRequest(ctx: Context, options: { trustProxy?: boolean | undefined; formToken?: string | null | undefined } = {}): CsrfRequest {
  const trustProxy = options.trustProxy ?? false;
  const lookup = (name: string) => ctx.get(name) || undefined;
  const https = ctx.secure || isHttps(false, lookup('x-forwarded-proto'), trustProxy);
  const host = trustProxy ? requestHost(lookup, true) : ctx.host || requestHost(lookup, false);
  return csrfRequestOf(ctx.method, lookup, https, host, ctx.originalUrl, options.formToken);
}

/**
 * Koa middleware giving each request a session at `ctx.session`. Mount it before the routes
 * (and after an error-rendering middleware, if the app has one).
 *
 * A store failure while committing replaces the response with 503 (409 when the session was
 * ended elsewhere meanwhile) and a short text body, without the session cookie. An error thrown
 * downstream passes through: with a 4xx status the session is still saved and its cookie
 * reaches Koa's error handler (which applies `err.headers`) for that call only, never left on the
 * thrown error; with a 5xx nothing is saved.
 * @example
 * <!-- snippet: with koa, sessions, app-values -->
 * ```ts
 * app.use(koaSessions(sessions));
 * router.post('/login', async (ctx) => {
 *   await (await ctx.session.load()).login(user.id);
 *   ctx.redirect('/');
 * });
 * ```
 */
export function koaSessions<T extends SessionData = RegisteredData>(sessions: Sessions<T>, options?: KoaSessionsOptions): Middleware {
  if (!sessions || typeof sessions.open !== 'function') throw new ConfigError('koaSessions(sessions): pass the object createSessions() returned');
  // None yet: an option meant for another adapter (eager, onError) would be ignored without a word.
  checkAdapterOptions('koaSessions', options, {});
  const trustProxy = sessions.options.trustProxy;

  return async function coatcheckKoa(ctx: Context, next: Next): Promise<void> {
    // Mounted again downstream (app-wide and on a router): the session already opened is the
    // request's one, and the mount that opened it commits it. Another engine's throws.
    // The session sits on ctx.req (attachSession), where nothing else puts one: no property on ctx.
    const existing = attachedSession(ctx.req);
    if (mountedAgain(existing, sessions, 'koaSessions')) {
      // Opened by an outer Koa mount, or by node's withSessions around the app: ctx.session all the same.
      const reused = existing as unknown as Session<RegisteredData>;
      ctx.session = reused;
      await runWithSession(reused, next, sessions.options.context);
      return;
    }
    // Read only if the session is used. The raw response is hooked only then too: it commits the
    // session when the app answers on ctx.res itself (ctx.respond = false); otherwise the commit
    // below has been made by the time Koa writes, and the hook lets Koa's response through.
    const session = attachSession(sessions, ctx.req, ctx.res, NO_OPTIONS, new KoaClient(ctx, trustProxy)) as unknown as Session<RegisteredData>;
    ctx.session = session;
    try {
      await runWithSession(session, next, sessions.options.context);
    } catch (error) {
      await commitAfterThrow(ctx, session, error);
      throw error;
    }
    // The app answers on ctx.res itself: ctx.status is Koa's default, not the response's, and the
    // head may be out already. The hook on ctx.res commits (or has committed) with the real one.
    // So does a head already out (ctx.flushHeaders() before a stream): Koa would silently drop
    // headers and status set now, where the hook closes the connection on a failed save and warns
    // of a cookie it could not send.
    if (ctx.respond === false || ctx.headerSent) return;
    if (webBodyUnsendable(ctx.body)) {
      // A Response or ReadableStream body already read or locked: Koa's answer will fail (a 500),
      // so nothing is saved, as for any 5xx.
      session.closeUnsaved();
      return;
    }
    let result: CommitResult | null;
    let watch: StreamWatch | null = null;
    try {
      const outcome = session.commitNow(ctx.status);
      if (isPromiseLike(outcome)) {
        // Koa listens for a Node stream body's 'error' only once it pipes it, after the chain.
        watch = watchStream(ctx.body);
        result = await outcome;
      } else result = outcome;
    } catch (error) {
      if (!streamFailed(ctx, watch)) fail(ctx, error);
      return;
    }
    if (!streamFailed(ctx, watch) && result) decorate(ctx, result);
  };
}

/**
 * Whether the stream body failed while the commit was pending. Then it is answered as Koa answers
 * a body stream's failure (`ctx.onerror`: a 500, every header cleared, so no session cookie); the
 * commit's write, already made, stands.
 */
function streamFailed(ctx: Context, watch: StreamWatch | null): boolean {
  const failure = watch === null ? null : watch.end();
  if (failure === null) return false;
  ctx.onerror(failure);
  return true;
}

const NO_OPTIONS: NodeAdapterOptions = {};

/** koaSessions takes no options yet (everything is configured in createSessions); any name is refused. */
export type KoaSessionsOptions = Record<string, never>;

/** Protocol and client IP as Koa decides them (`app.proxy`), read only when the session needs them. */
class KoaClient implements ClientFacts {
  constructor(
    private readonly ctx: Context,
    private readonly trustProxy: boolean,
  ) {}

  https(): boolean {
    return this.ctx.secure || isHttps(false, this.ctx.get('x-forwarded-proto'), this.trustProxy);
  }

  ip(): string | null {
    return this.trustProxy ? clientIp(this.ctx.ip, this.ctx.get('x-forwarded-for'), true) : this.ctx.ip;
  }
}

function decorate(ctx: Context, result: CommitResult): void {
  if (result.setCookie.length > 0) {
    // A response that hands out a session is not for a shared cache, whatever the app set (shared.ts).
    const current = ctx.response.get('Cache-Control') as Parameters<typeof cacheControlWithCookie>[0];
    const safe = cacheControlWithCookie(current);
    if (safe !== current) ctx.set('Cache-Control', safe);
  } else if (!ctx.response.get('Cache-Control')) ctx.set('Cache-Control', SESSION_CACHE_CONTROL);
  ctx.set('Vary', varyWithCookie(ctx.response.get('Vary') as Parameters<typeof varyWithCookie>[0]));
  if (result.setCookie.length > 0) ctx.append('Set-Cookie', result.setCookie);
}

/** Replaces the response with the short failure answer; the app's cookies assumed success. */
function fail(ctx: Context, error: unknown): void {
  const { status, body } = defaultFailure(error);
  const previous: unknown = ctx.body;
  for (const name of ['Set-Cookie', 'Content-Disposition', 'Content-Encoding', 'ETag', 'Last-Modified', 'Location']) ctx.remove(name);
  ctx.status = status;
  ctx.type = 'text/plain; charset=utf-8';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = body;
  releaseBody(previous);
}

/**
 * Releases the source of a body that will not be sent: a Node stream is destroyed; Koa 3 also
 * takes a web ReadableStream or a Response (cancelled, as the Fetch and Hono adapters do). A Blob
 * holds nothing to release.
 */
function releaseBody(body: unknown): void {
  if (typeof body !== 'object' || body === null) return;
  const stream = body as { pipe?: unknown; destroy?: () => void };
  if (typeof stream.pipe === 'function' && typeof stream.destroy === 'function') stream.destroy();
  else if (body instanceof ReadableStream) body.cancel().catch(() => undefined);
  else if (body instanceof Response) discardBody(body);
}

/**
 * A downstream error is on its way to the app's error handler. A 4xx is an ordinary answer, so
 * the session is saved and its headers are set on the response (kept by error-handling
 * middleware upstream that renders the error itself). Koa's own `ctx.onerror` clears the
 * response's headers and then applies `err.headers`, so this request's `ctx.onerror` lends the
 * error the session headers for that one synchronous call and takes them back after it. The
 * thrown object reaches upstream middleware as it was thrown (identity, own properties, private
 * fields), and no request's cookie stays on it: an app may throw one instance again and again.
 * A 5xx saves nothing.
 */
async function commitAfterThrow(ctx: Context, session: Session<RegisteredData>, error: unknown): Promise<void> {
  const status = koaErrorStatus(error);
  let result: CommitResult | null;
  try {
    result = await session.commit(status);
  } catch (failure) {
    // A store failure: that error wins, and Koa's own handler answers it as `fail` would.
    answerAsFailure(ctx, failure);
    throw failure;
  }
  if (!result || status >= 500) return;
  decorate(ctx, result);
  const vary = ctx.response.get('Vary');
  const cacheControl = ctx.response.get('Cache-Control');
  const koaOnerror = ctx.onerror;
  // Whatever error reaches this request's onerror gets them: an upstream middleware may throw a
  // wrapper of the one thrown here. Not one Koa answers with a 5xx (no cookie on a failure).
  ctx.onerror = function onerrorWithSession(this: Context, err: Error) {
    if (err !== error && koaErrorStatus(err) >= 500) return koaOnerror.call(this, err);
    // Not enumerable: an 'error' listener that logs the error's own properties must not log the
    // session token. A frozen error: the record is saved, the cookie cannot travel.
    return lending(err, { headers: withSessionHeaders((err as { headers?: unknown }).headers, result, vary, cacheControl) }, () => koaOnerror.call(this, err));
  };
}

/**
 * The commit after a thrown error failed, and its failure is thrown on. Should it reach Koa's own
 * `ctx.onerror`, that answers it as a failed commit is answered elsewhere (`fail`): the short
 * text body, `Cache-Control: no-store` (Koa clears every other header, cookies included), where
 * Koa would send "Service Unavailable" with the session hook's `Cache-Control: private`. The
 * error carries them for that one call only (its `stack` and `cause` still name the store's
 * failure). An unexpected error (500) is left to Koa.
 */
function answerAsFailure(ctx: Context, failure: unknown): void {
  const { status, body } = failureResponse(failure);
  if (status === 500) return;
  const koaOnerror = ctx.onerror;
  ctx.onerror = function onerrorWithFailure(this: Context, err: Error) {
    if (err !== failure) return koaOnerror.call(this, err);
    return lending(err, { headers: { 'Cache-Control': 'no-store' }, status, expose: true, message: body }, () => koaOnerror.call(this, err));
  };
}

/**
 * Calls `call` with `values` lent to `target` as own, non-enumerable properties, and puts the
 * previous ones back after it. A target that refuses them (frozen) is called as it is.
 */
function lending<R>(target: object, values: Record<string, unknown>, call: () => R): R {
  const names = Object.keys(values);
  const before = names.map((name) => Object.getOwnPropertyDescriptor(target, name));
  let lent = 0;
  try {
    for (; lent < names.length; lent++) {
      Object.defineProperty(target, names[lent] as string, { value: values[names[lent] as string], writable: true, enumerable: false, configurable: true });
    }
  } catch {
    restore(target, names, before, lent);
    return call();
  }
  try {
    return call();
  } finally {
    restore(target, names, before, lent);
  }
}

function restore(target: object, names: readonly string[], before: readonly (PropertyDescriptor | undefined)[], count: number): void {
  for (let i = 0; i < count; i++) {
    const descriptor = before[i];
    if (descriptor) Object.defineProperty(target, names[i] as string, descriptor);
    else delete (target as Record<string, unknown>)[names[i] as string];
  }
}

/** An error's own `headers` with the session's Set-Cookie, Vary and Cache-Control added. */
function withSessionHeaders(own: unknown, result: CommitResult, vary: unknown, cacheControl: unknown): Record<string, unknown> {
  const headers: Record<string, unknown> = typeof own === 'object' && own !== null ? { ...own } : {};
  if (result.setCookie.length > 0) {
    const key = keyOf(headers, 'set-cookie') ?? 'Set-Cookie';
    const existing = headers[key];
    headers[key] = [...(existing === undefined ? [] : Array.isArray(existing) ? existing : [existing]), ...result.setCookie];
  }
  const varyKey = keyOf(headers, 'vary');
  if (varyKey === undefined) headers['Vary'] = vary;
  else headers[varyKey] = varyWithCookie(headers[varyKey] as Parameters<typeof varyWithCookie>[0]);
  const cacheKey = keyOf(headers, 'cache-control');
  if (cacheKey === undefined) headers['Cache-Control'] = cacheControl;
  else if (result.setCookie.length > 0) headers[cacheKey] = cacheControlWithCookie(headers[cacheKey] as Parameters<typeof cacheControlWithCookie>[0]);
  return headers;
}

/**
 * The status Koa's own `ctx.onerror` answers a thrown value with: a value that is not an Error is
 * a 500, and `status` / `statusCode` counts only if it is a known 4xx or 5xx
 * (Koa answers an unknown code such as 499 with a 500, so nothing may be saved for it).
 */
function koaErrorStatus(error: unknown): number {
  if (!(error instanceof Error) && Object.prototype.toString.call(error) !== '[object Error]') return 500;
  const raw = error as { status?: unknown; statusCode?: unknown };
  // (Koa 2 also answered an ENOENT with a 404; Koa 3 answers it with a 500, as here: nothing saved.)
  const candidate = raw.status || raw.statusCode;
  return typeof candidate === 'number' && candidate >= 400 && candidate < 600 && STATUS_CODES[candidate] !== undefined ? candidate : 500;
}

function keyOf(headers: Record<string, unknown>, name: string): string | undefined {
  return Object.keys(headers).find((key) => key.toLowerCase() === name);
}
