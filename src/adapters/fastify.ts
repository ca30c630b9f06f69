/**
 * Fastify 5 plugin. `request.session` is the request's session handle, opened in `onRequest`
 * at no cost (loaded only when used); the session is committed once in `onSend`, before the
 * headers go out, and its Set-Cookie is appended to the app's cookies (with or without
 * `@fastify/cookie`, or set on `reply.raw`). The plugin is not encapsulated: it serves the
 * instance it is registered on and that instance's children, so register it on the root.
 *
 * The commit runs at the plugin's place among the shared `onSend` hooks (Fastify runs them in
 * registration order): add `onSend` hooks that may fail or change the status to 5xx before
 * registering the plugin, so that the commit sees their outcome and saves nothing on a 5xx.
 * (Committing from a route-level hook instead, which Fastify runs last, cost 14-19 % of a
 * session route's throughput in an A/B, for the route's config lookup and the extra hook.)
 *
 * `currentSession()` works in hooks registered after the plugin and in route handlers, also
 * after a body was parsed: the plugin enters the session's context in `onRequest` and again in
 * `preValidation`. (Fastify 5.12 carries the context across body parsing itself; the second
 * entry covers a release that resumes after parsing from the socket's context instead.)
 * Code running in `onRequest`/`preParsing` hooks registered before the plugin, or outside the
 * request lifecycle (`reply.hijack()`, `onResponse`), has no session context. A route that
 * answers on `reply.raw` itself is committed before that head goes out (the raw response is
 * hooked once the session is used).
 *
 * Proxies: a request counts as HTTPS when Fastify says so (`request.protocol`, which follows
 * Fastify's `trustProxy` option) or, with coatcheck's `trustProxy: true`, when
 * X-Forwarded-Proto says `https`. The client IP is `request.ip` unless coatcheck's `trustProxy`
 * is true (then the left-most X-Forwarded-For entry).
 * @module coatcheck/fastify
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import { createSessions } from 'coatcheck';
 * import { memoryStore } from 'coatcheck/stores/memory';
 * import { fastifySessions } from 'coatcheck/fastify';
 *
 * const sessions = createSessions({ store: memoryStore() });
 * const app = Fastify();
 * await app.register(fastifySessions, { sessions });
 * app.get('/', async (request) => {
 *   const session = await request.session.load();
 *   session.set('visits', (session.get('visits', 0) as number) + 1);
 *   return { visits: session.get('visits') };
 * });
 * await app.listen({ port: 3000 });
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyPluginCallback, FastifyReply, FastifyRequest, RawServerBase } from 'fastify';
import { runWithSession } from '../core/context.js';
// CoatcheckSession: for the augmentation below, where a bare `Session` may name the framework's.
import type { CommitResult, Session, Session as CoatcheckSession } from '../core/session.js';
import type { Sessions } from '../core/sessions.js';
import { ConfigError } from '../errors.js';
import type { CsrfRequest } from '../security/csrf.js';
import { type Awaitable, isPromiseLike } from '../stores/types.js';
import type { RegisteredData, SessionData } from '../types.js';
import type { NodeAdapterOptions } from './node.js';
import { attachSession, type ClientFacts, committedElsewhere, readAsSent } from './node-internal.js';
import { cacheControlWithCookie, checkAdapterOptions, clientIp, csrfRequestOf, defaultFailure, FAILED_ANSWER_HEADERS, isHttps, requestHost, SESSION_CACHE_CONTROL, type StreamWatch, ignoreStreamError, varyWithCookie, watchStream } from './shared.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's coatcheck session (lazy: `await request.session.load()` before reading it). */
    session: CoatcheckSession<RegisteredData>;
  }
}

/**
 * A Fastify request of any server kind (HTTP/1, HTTPS, HTTP/2) and any route types: the helpers
 * read only what every one of them has.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyFastifyRequest = FastifyRequest<any, RawServerBase, any, any, any, any, any>;

export interface FastifySessionsOptions {
  /** What `createSessions()` returned. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  sessions: Sessions<any>;
}

/**
 * The request's session, loaded (one store read if the request carries a session cookie).
 * @example
 * <!-- snippet: with fastify -->
 * ```ts
 * app.get('/me', async (request) => ({ user: (await getSession(request)).userId }));
 * ```
 */
export function getSession<T extends SessionData = RegisteredData>(request: AnyFastifyRequest): Promise<Session<T>> {
  const session = request?.session as unknown as Session<T> | null | undefined;
  // A route outside the context the plugin was registered in (a child instance): say so
  // rather than fail on `undefined.load`.
  if (!session) return Promise.reject(new ConfigError(NOT_REGISTERED));
  return session.load();
}

/**
 * What `verifyCsrf` needs from a Fastify request, with Fastify's own proxy rules: the protocol is
 * `request.protocol` and the host `request.host` (both follow Fastify's `trustProxy`).
 * `trustProxy: true` (coatcheck's setting) believes X-Forwarded-Proto / -Host from any peer.
 * Pass `formToken` when a form field holds it.
 * @example
 * <!-- snippet: with coatcheck, fastify -->
 * ```ts
 * app.post('/do', async (request, reply) => {
 *   const check = await verifyCsrf(await getSession(request), csrfRequest(request));
 *   if (!check.ok) return reply.code(check.status).send(check.reason);
 *   return 'done';
 * });
 * ```
 */
export function csrfRequest(request: AnyFastifyRequest, options: { trustProxy?: boolean | undefined; formToken?: string | null | undefined } = {}): CsrfRequest {
  const trustProxy = options.trustProxy ?? false;
  const lookup = (name: string) => single(request.headers[name]);
  const https = request.protocol === 'https' || isHttps(false, lookup('x-forwarded-proto'), trustProxy);
  const host = trustProxy ? requestHost(lookup, true) : request.host || requestHost(lookup, false);
  return csrfRequestOf(request.method, lookup, https, host, request.url, options.formToken);
}

const NOT_REGISTERED =
  'fastifySessions: this request has no session: its route is outside the instance the plugin was registered on. Register it on the root instance (await app.register(fastifySessions, { sessions }))';

const plugin: FastifyPluginCallback<FastifySessionsOptions> = (fastify, options, done) => {
  const sessions = options?.sessions;
  if (!sessions || typeof sessions.open !== 'function') {
    done(new ConfigError('fastifySessions: register it with { sessions } (what createSessions() returned)'));
    return;
  }
  try {
    // Fastify's own register options (prefix, logLevel, logSerializers) arrive in the same object.
    checkAdapterOptions('fastifySessions', options, { sessions: 'object', prefix: 'string', logLevel: 'string', logSerializers: 'object' });
  } catch (error) {
    done(error as Error);
    return;
  }
  if (fastify.hasRequestDecorator('session')) {
    // Registered twice (the plugin is not encapsulated: a second registration would open a second
    // session per request), or beside @fastify/session: say so instead of Fastify's decorator error.
    done(new ConfigError('fastifySessions: request.session is taken already: register the plugin once, on the root instance (and not beside @fastify/session)'));
    return;
  }
  const trustProxy = sessions.options.trustProxy;
  const contextual = sessions.options.context;
  // `null` keeps the request shape stable (Fastify's decorator rule); each request gets its own.
  fastify.decorateRequest('session', null as unknown as Session<RegisteredData>);

  fastify.addHook('onRequest', (request, reply, next) => {
    // Read only if the session is used. The raw response is hooked only then too (as in the Koa
    // adapter): it commits the session when the route answers on `reply.raw` itself (after
    // `reply.hijack()`, or without it), where `onSend` never runs; otherwise the commit in
    // `onSend` has been made by the time Fastify writes, and the hook lets the reply through.
    // Not marked on the raw request: a route may hand it to another engine's node or Express
    // adapter (after `reply.hijack()`), which would refuse a request holding our session.
    const session = attachSession(sessions, request.raw as IncomingMessage, reply.raw as ServerResponse, NO_OPTIONS, new FastifyClient(request, trustProxy), false) as unknown as Session<RegisteredData>;
    request.session = session;
    runWithSession(session, next, contextual);
  });

  // After body parsing the lifecycle may resume from the socket's context, not ours: re-enter it.
  fastify.addHook('preValidation', (request, _reply, next) => {
    if (request.session && contextual) runWithSession(request.session, next);
    else next();
  });

  fastify.addHook('onSend', commitOnSend);

  done();
};

const NO_OPTIONS: NodeAdapterOptions = {};

/** Protocol and client IP as Fastify decides them (its `trustProxy`), read only when the session needs them. */
class FastifyClient implements ClientFacts {
  constructor(
    private readonly request: FastifyRequest,
    private readonly trustProxy: boolean,
  ) {}

  https(): boolean {
    return this.request.protocol === 'https' || isHttps(false, single(this.request.headers['x-forwarded-proto']), this.trustProxy);
  }

  ip(): string | null {
    return this.trustProxy ? clientIp(this.request.ip, single(this.request.headers['x-forwarded-for']), true) : this.request.ip;
  }
}

/** Commits the session; callback style: with a synchronous store (or nothing to write) the reply goes on in this tick. */
function commitOnSend(request: FastifyRequest, reply: FastifyReply, payload: unknown, next: (error?: Error | null, payload?: unknown) => void): void {
  const session = request.session as Session<RegisteredData> | null;
  if (!session) {
    next(null, payload);
    return;
  }
  /** Header names a returned Response put on the reply: a failure answer drops them again. */
  let applied: string[] | null = null;
  if (payload instanceof ReadableStream && payload.locked) {
    // Fastify would fail to send it only after the commit had saved the session.
    next(new ConfigError('the ReadableStream sent with reply.send() is locked by a reader'));
    return;
  }
  if (isWebResponse(payload)) {
    // Fastify applies a Response's status and headers only after every onSend hook: the commit
    // would judge the wrong status, and its Vary / Cache-Control be overwritten. Applied here
    // first, as Fastify would; its body goes on as the payload.
    if (payload.bodyUsed || payload.body?.locked === true) {
      next(new ConfigError('the Response returned to Fastify has a body that was already read (or is locked by a reader)'));
      return;
    }
    reply.code(payload.status);
    applied = [];
    payload.headers.forEach((value, name) => {
      (applied as string[]).push(name);
      reply.header(name, value);
    });
    payload = payload.body;
  }
  // The raw response's hook (installed if the session was used) has nothing left to hold.
  committedElsewhere(reply.raw as ServerResponse, session);
  let outcome: Awaitable<CommitResult | null>;
  try {
    outcome = session.commitNow(reply.statusCode);
  } catch (error) {
    next(null, failureReply(reply, payload, error, applied));
    return;
  }
  if (!isPromiseLike(outcome)) {
    // A stream body that fails from here on is Fastify's to answer (it pipes it with its own
    // 'error' listener). A missing file fails only after this synchronous commit has saved the
    // session: Fastify's 500 then carries the cookie set here, which matches the saved record.
    next(null, withSessionHeaders(reply, payload, outcome));
    return;
  }
  // Fastify listens for a Node stream body's 'error' only once it pipes it, after this hook.
  const watch = watchStream(payload);
  const release = readAsSent(reply.raw as ServerResponse);
  outcome.then(
    (result) => {
      release();
      settle(request, () => goOn(watch, next, () => withSessionHeaders(reply, payload, result)), next);
    },
    (error: unknown) => {
      release();
      settle(request, () => goOn(watch, next, () => failureReply(reply, payload, error, applied)), next);
    },
  );
}


/**
 * The asynchronous commit has settled: the reply goes on as `reply()` makes it, unless a stream
 * body failed meanwhile. That goes down Fastify's own error path (its 500, as for a stream that
 * fails while Fastify pipes it), without the session's headers; the write already made stands.
 */
function goOn(watch: StreamWatch | null, next: (error?: Error | null, payload?: unknown) => void, reply: () => unknown): void {
  const failure = watch === null ? null : watch.end();
  if (failure !== null) next(failure);
  else next(null, reply());
}

/**
 * Fastify plugin: `await app.register(fastifySessions, { sessions })`.
 * @example
 * <!-- snippet: with fastify, sessions, app-values -->
 * ```ts
 * await app.register(fastifySessions, { sessions });
 * app.post('/login', async (request) => {
 *   const session = await request.session.load();
 *   await session.login(userId);
 *   return { ok: true };
 * });
 * ```
 */
export const fastifySessions: FastifyPluginCallback<FastifySessionsOptions> = Object.assign(plugin, {
  // What fastify-plugin would set, without depending on it: the plugin's hooks and decorations
  // apply to the app that registers it, not to a child context, and Fastify checks the version.
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'coatcheck',
  [Symbol.for('plugin-meta')]: { fastify: '5.x', name: 'coatcheck' },
});

export default fastifySessions;

/**
 * Finishes an asynchronous onSend. If that throws, the request must still end: through Fastify's
 * error path while the reply can still be sent, else (the route already answered by another
 * path, e.g. `reply.send()` without `return reply`) it is only logged: a throw here would be an
 * unhandled rejection.
 */
function settle(request: FastifyRequest, finish: () => void, next: (error?: Error | null) => void): void {
  try {
    finish();
  } catch (error) {
    try {
      next(error instanceof Error ? error : new Error(String(error)));
    } catch (late) {
      request.log.error({ err: late }, 'coatcheck: the reply was sent before the session was committed');
    }
  }
}

/** Adds the committed session's headers to the reply; the payload goes on unchanged. */
function withSessionHeaders(reply: FastifyReply, payload: unknown, result: CommitResult | null): unknown {
  if (result === null) return payload;
  if (result.setCookie.length > 0) {
    // A reply that hands out a session is not for a shared cache, whatever the route set (shared.ts).
    const current = reply.getHeader('cache-control') as Parameters<typeof cacheControlWithCookie>[0];
    const safe = cacheControlWithCookie(current);
    if (safe !== current) reply.header('cache-control', safe);
  } else if (!reply.hasHeader('cache-control')) reply.header('cache-control', SESSION_CACHE_CONTROL);
  reply.header('vary', varyWithCookie(reply.getHeader('vary') as Parameters<typeof varyWithCookie>[0]));
  // Fastify appends to an existing set-cookie header rather than replacing it.
  if (result.setCookie.length > 0) reply.header('set-cookie', [...takeRawCookies(reply), ...result.setCookie]);
  return payload;
}

/**
 * Cookies set on `reply.raw` (Express-style middleware does): Fastify's writeHead headers replace
 * the raw response's, so once the reply has a set-cookie they would be lost. They move into the
 * reply's header instead, leaving the raw response so that they are not sent twice.
 */
function takeRawCookies(reply: FastifyReply): string[] {
  const raw = reply.raw;
  const value = raw.getHeader('set-cookie');
  if (value === undefined || raw.headersSent) return [];
  raw.removeHeader('set-cookie');
  return Array.isArray(value) ? value : [String(value)];
}


/** Replaces the reply with the short failure answer (503 store down, 409 session gone). */
function failureReply(reply: FastifyReply, payload: unknown, error: unknown, applied: readonly string[] | null = null): string {
  const { status, body } = defaultFailure(error);
  destroyStream(payload);
  // The app's response (and the cookies it set for it) assumed a saved session; drop them, and
  // the framing of its body (a chunked Transfer-Encoding beside our Content-Length is invalid).
  for (const name of FAILED_ANSWER_HEADERS) reply.removeHeader(name);
  // Everything a returned Response brought: it described that response, not this one.
  if (applied !== null) for (const name of applied) reply.removeHeader(name);
  takeRawCookies(reply);
  dropCookiesAtHead(reply.raw);
  reply.code(status);
  reply.header('content-type', 'text/plain; charset=utf-8');
  reply.header('cache-control', 'no-store');
  return body;
}

const WRITE_HEAD = Symbol('coatcheck.writeHead');
type HeadHeld = ServerResponse & { [WRITE_HEAD]?: ServerResponse['writeHead'] };

/**
 * The failure reply's head goes out without Set-Cookie: `onSend` hooks after ours may add cookies
 * back (@fastify/cookie registered after the plugin serialises `reply.setCookie()` there). Only
 * failed replies get this wrapper; Fastify sends the head with `raw.writeHead(status, headers)`.
 */
function dropCookiesAtHead(raw: HeadHeld): void {
  if (raw[WRITE_HEAD] !== undefined) return;
  raw[WRITE_HEAD] = raw.writeHead;
  raw.writeHead = writeHeadWithoutCookies as ServerResponse['writeHead'];
}

function writeHeadWithoutCookies(this: HeadHeld, ...args: unknown[]): ServerResponse {
  for (const arg of args) {
    if (typeof arg !== 'object' || arg === null || Array.isArray(arg)) continue;
    for (const name of Object.keys(arg)) if (name.toLowerCase() === 'set-cookie') delete (arg as Record<string, unknown>)[name];
  }
  this.removeHeader('set-cookie');
  return (this[WRITE_HEAD] as (...a: unknown[]) => ServerResponse).apply(this, args);
}

function isWebResponse(payload: unknown): payload is Response {
  return payload !== null && typeof payload === 'object' && Object.prototype.toString.call(payload) === '[object Response]';
}

/** Releases the source of a payload that will not be sent: a Node stream, or a web stream. */
function destroyStream(payload: unknown): void {
  const stream = payload as { pipe?: unknown; destroy?: () => void; on?: (event: 'error', listener: () => void) => unknown } | null;
  if (stream && typeof stream.pipe === 'function' && typeof stream.destroy === 'function') {
    // A file still opening fails after this (ENOENT): with no listener, that ends the process.
    if (typeof stream.on === 'function') stream.on('error', ignoreStreamError);
    stream.destroy();
  }
  else if (payload instanceof ReadableStream) payload.cancel().catch(() => {});
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

