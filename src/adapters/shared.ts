/**
 * What every adapter does the same way: reading client facts from a request, the headers a
 * session response gets, and the response for a failed commit.
 */
import { CoatcheckError, ConfigError } from '../errors.js';
import { refuseUnknownOptions } from '../core/known-options.js';
import { Session } from '../core/session.js';
import type { CsrfRequest } from '../security/csrf.js';

/**
 * The first entry of a comma-separated header such as X-Forwarded-For, trimmed (`''` when it is
 * empty). Reads up to the first comma: the client controls the rest, which may be kilobytes long.
 */
export function firstListEntry(value: string): string {
  const comma = value.indexOf(',');
  return (comma === -1 ? value : value.slice(0, comma)).trim();
}

/** The client's IP: the socket's, or with `trustProxy` the left-most X-Forwarded-For entry. */
export function clientIp(remote: string | null | undefined, forwardedFor: string | null | undefined, trustProxy: boolean): string | null {
  if (trustProxy && forwardedFor) {
    const first = firstListEntry(forwardedFor);
    if (first) return first;
  }
  return remote ?? null;
}

/** Whether the request arrived over HTTPS, trusting X-Forwarded-Proto only behind a trusted proxy. */
export function isHttps(encrypted: boolean, forwardedProto: string | null | undefined, trustProxy: boolean): boolean {
  if (trustProxy && forwardedProto) return firstListEntry(forwardedProto).toLowerCase() === 'https';
  return encrypted;
}

/**
 * The host the client asked for: the first X-Forwarded-Host entry when a proxy is believed, else
 * Host, else HTTP/2's :authority pseudo-header (which may come without a Host).
 */
export function requestHost(header: (name: string) => string | undefined, forwardedHostTrusted: boolean): string {
  const forwarded = forwardedHostTrusted ? header('x-forwarded-host') : undefined;
  return (forwarded && firstListEntry(forwarded)) || header('host') || header(':authority') || 'localhost';
}

/** The object `verifyCsrf` takes, from what an adapter decided. `header` looks up a lower-case name. */
export function csrfRequestOf(
  method: string | undefined,
  header: (name: string) => string | undefined,
  https: boolean,
  host: string,
  path: string,
  formToken: string | null | undefined,
): CsrfRequest {
  return {
    method: method ?? 'GET',
    url: `${https ? 'https' : 'http'}://${host}${path}`,
    header: (name) => header(name.toLowerCase()),
    ...(formToken !== undefined && { formToken }),
  };
}

/**
 * Adds `Cookie` to a Vary header value unless it is already there (or `*`). Takes the value as
 * node holds it too: an array after `setHeader('Vary', [...])` or Express/Koa `append`, or a number.
 */
export function varyWithCookie(current: string | number | readonly string[] | null | undefined): string {
  const text = typeof current === 'string' ? current : Array.isArray(current) ? current.join(', ') : current == null ? '' : String(current);
  if (!text) return 'Cookie';
  const parts = text.split(',').map((part) => part.trim().toLowerCase());
  return parts.includes('cookie') || parts.includes('*') ? text : `${text}, Cookie`;
}

/** Cache-Control for a response that read or set the session, unless the app chose its own. */
export const SESSION_CACHE_CONTROL = 'private';

/**
 * The Cache-Control of a response that carries the session's Set-Cookie. `Vary: Cookie` does not
 * protect a new session's cookie: every cookieless first visitor sends the same (empty) Cookie
 * header, so a shared cache that may store the response (`public`, `s-maxage`, or neither a bare
 * `private` nor `no-store`; `private="field"` lets it store the rest) would hand one session id to
 * all of them. `public` and `s-maxage` are dropped and `private` is added unless a bare `private`
 * or `no-store` is there; the app's other directives stay as written. Returns `current` itself
 * when it needs no change (the common case: two regex tests, no allocation),
 * `SESSION_CACHE_CONTROL` when there is none.
 */
export function cacheControlWithCookie(current: string | number | readonly string[] | null | undefined): string {
  const text = typeof current === 'string' ? current : Array.isArray(current) ? current.join(', ') : current == null ? '' : String(current);
  if (!text) return SESSION_CACHE_CONTROL;
  // Fast path, by directive name (`x-private` is none of these); quoted values, which may hold
  // commas and directive names, take the slow path.
  if (!text.includes('"') && CLOSED_TO_SHARED.test(text) && !OPEN_TO_SHARED.test(text)) return text;
  const kept: string[] = [];
  let closed = false;
  for (const directive of cacheDirectives(text)) {
    const equals = directive.indexOf('=');
    const name = (equals === -1 ? directive : directive.slice(0, equals)).trim().toLowerCase();
    if (name === 'public' || name === 's-maxage') continue;
    if ((name === 'private' && equals === -1) || name === 'no-store') closed = true;
    kept.push(directive);
  }
  if (!closed) kept.unshift(SESSION_CACHE_CONTROL);
  return kept.join(', ');
}

/** A bare `private` or `no-store` directive; `public` or `s-maxage` (with or without a value). */
const CLOSED_TO_SHARED = /(?:^|,)\s*(?:private|no-store)\s*(?:,|$)/i;
const OPEN_TO_SHARED = /(?:^|,)\s*(?:public|s-maxage)\s*(?:[=,]|$)/i;

/** Cache-Control's directives, split at commas outside quoted strings, trimmed, empty ones left out. */
function cacheDirectives(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i <= text.length; i++) {
    const char = text[i];
    if (char === '\\' && quoted) i++;
    else if (char === '"') quoted = !quoted;
    else if ((char === ',' && !quoted) || i === text.length) {
      const directive = text.slice(start, i).trim();
      if (directive) out.push(directive);
      start = i + 1;
    }
  }
  return out;
}

/**
 * Whether `existing`, the session an adapter mounted earlier attached to this request, was opened
 * with the same `sessions`: then it is the request's one (no second session, cookie or commit).
 * Another engine's session is refused: the request's one session slot (`req.session`, the
 * commit, `currentSession()`) cannot serve two engines, and reusing it would put the second
 * engine's logins into the first one's session.
 */
export function mountedAgain(existing: object | undefined, sessions: { readonly options: object }, adapter: string): boolean {
  if (existing === undefined) return false;
  if (!Session.openedWith(existing, sessions.options)) {
    throw new ConfigError(
      `${adapter}: this request already has a session from another createSessions() instance (a second engine mounted on a path under the first). ` +
        'A request carries one engine\'s session: mount each engine on its own routes, or use one engine',
    );
  }
  return true;
}

interface NodeStream {
  pipe: unknown;
  on(event: 'error', listener: (error: unknown) => void): unknown;
  removeListener(event: 'error', listener: (error: unknown) => void): unknown;
  destroy(): unknown;
  readonly errored?: unknown;
}

/**
 * Holds a Node stream body's 'error' while an asynchronous commit holds the framework's send
 * (Fastify's `onSend`, Koa's middleware): the framework listens only once it pipes the stream,
 * so a failure meanwhile (a file that does not exist) would be an unhandled 'error' event, which
 * ends the process. Made only for a stream body that meets a pending commit.
 */
export class StreamWatch {
  #failure: unknown = undefined;
  readonly #onError = (error: unknown): void => {
    if (this.#failure === undefined) this.#failure = error ?? new Error('the response body stream failed');
  };

  constructor(private readonly stream: NodeStream) {
    stream.on('error', this.#onError);
  }

  /**
   * Stops listening (before the framework takes the stream over). Returns the stream's failure, if
   * it failed meanwhile, and then destroys it: it will not be sent; else null.
   */
  end(): Error | null {
    this.stream.removeListener('error', this.#onError);
    const failure = this.#failure ?? this.stream.errored;
    if (failure === undefined || failure === null) return null;
    // Listened to for good: a second 'error' after destroy() must not end the process either.
    this.stream.on('error', ignoreStreamError);
    this.stream.destroy();
    return failure instanceof Error ? failure : new Error(String(failure));
  }
}

/**
 * Headers that frame or describe the answer that failed, not the failure answer that replaces it:
 * a held Content-Length would cut a longer error body short (or keep the client waiting for the
 * rest of a shorter one), and its cookie, validators or redirect would apply to the error. The
 * rest (CORS, HSTS, CSP, …) stays: a cross-origin client must still be able to read the error.
 */
export const FAILED_ANSWER_HEADERS: readonly string[] = Object.freeze([
  'set-cookie', 'content-length', 'content-encoding', 'content-disposition', 'etag', 'last-modified', 'location', 'transfer-encoding', 'trailer', 'content-range',
]);

/** An 'error' listener that only keeps a destroyed stream's late failure from ending the process. */
export function ignoreStreamError(): void {}

/**
 * Whether a web body can no longer be sent: a `Response` whose body was read or is held by a
 * reader, or a locked `ReadableStream`. Answering with it fails (a 500 from the server or the
 * framework), so the adapters save nothing for it, as for any 5xx.
 */
export function webBodyUnsendable(body: unknown): boolean {
  if (typeof body !== 'object' || body === null) return false;
  if (body instanceof Response) {
    if (Object.prototype.hasOwnProperty.call(body.constructor, Symbol.hasInstance)) return standInUnsendable(body);
    return body.bodyUsed || body.body?.locked === true;
  }
  return body instanceof ReadableStream && body.locked;
}

/**
 * `@hono/node-server` puts a stand-in `Response` class in place (it has a `Symbol.hasInstance` of
 * its own). Reading `body` or `bodyUsed` of one builds the full Response and takes the server off
 * its fast path, so it is asked only once built (kept under a symbol named `responseCache`); an
 * unbuilt one holds its body as given (under `cache`): a stream of the app's may be locked.
 */
function standInUnsendable(response: Response): boolean {
  for (const symbol of Object.getOwnPropertySymbols(response)) {
    if (symbol.description === 'responseCache') return response.bodyUsed || response.body?.locked === true;
    if (symbol.description === 'cache') {
      const held = (response as unknown as Record<symbol, unknown>)[symbol];
      const source = Array.isArray(held) ? (held[1] as unknown) : null;
      return source instanceof ReadableStream && source.locked;
    }
  }
  return false;
}

/** A watch on `body` if it is a Node stream (what Fastify and Koa pipe), else null. */
export function watchStream(body: unknown): StreamWatch | null {
  if (typeof body !== 'object' || body === null) return null;
  const stream = body as Partial<NodeStream>;
  if (typeof stream.pipe !== 'function' || typeof stream.on !== 'function' || typeof stream.removeListener !== 'function' || typeof stream.destroy !== 'function') return null;
  return new StreamWatch(stream as NodeStream);
}

/**
 * The answer an adapter sends by default for a failed session. A 500 is an unexpected error (a
 * bug, not an outage), which nothing else would show: it is written to stderr, as a framework's
 * default error handler does. Outages (503), conflicts (409) and size limits (413) say what they
 * are in the answer and in the `storeError` event.
 */
export function defaultFailure(error: unknown): { status: number; body: string } {
  const answer = failureResponse(error);
  // The stack only, as Express and Koa print it: inspecting the whole error would print every
  // property hung on it (an HTTP client's request config with its Authorization header, say).
  if (answer.status === 500) console.error(`coatcheck: a request failed with an unexpected error; answered 500:\n${error instanceof Error ? (error.stack ?? String(error)) : String(error)}`);
  return answer;
}

export function failureResponse(error: unknown): { status: number; body: string } {
  if (error instanceof CoatcheckError) {
    if (error.status === 503) return { status: 503, body: 'Service Unavailable: the session store is not answering' };
    if (error.code === 'ERR_TOO_MANY_SESSIONS') return { status: 409, body: 'Conflict: this account has too many active sessions; sign out on another device first' };
    if (error.status === 409) return { status: 409, body: 'Conflict: this session was ended by another request' };
    if (error.status === 413) return { status: 413, body: 'Payload Too Large: the session would exceed its size limit' };
    if (error.status === 401) return { status: 401, body: 'Unauthorized: sign in again to continue' };
  }
  return { status: 500, body: 'Internal Server Error' };
}

/**
 * Checks an adapter's options at setup: every name is one the adapter knows (a misspelled
 * `onErorr` would otherwise leave the app on the default it did not choose, as createSessions
 * refuses), and each named option, when given, has the expected type (`undefined` means "use the
 * default"). Misuse throws here, never on a request.
 */
export function checkAdapterOptions(adapter: string, options: object | undefined, expected: Record<string, 'boolean' | 'function' | 'object' | 'string'>): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw new ConfigError(`${adapter}: options must be an object`);
  const known = Object.keys(expected);
  if (known.length === 0) {
    const first = Object.keys(options)[0];
    if (first !== undefined) throw new ConfigError(`${adapter}: unknown option ${first}: it takes no options (everything is configured in createSessions())`);
    return;
  }
  try {
    refuseUnknownOptions('', options, known);
  } catch (error) {
    // The core's message, said by the adapter that was given the option.
    if (error instanceof ConfigError) throw new ConfigError(`${adapter}: ${error.message.replace(/^coatcheck: /, '')}`);
    throw error;
  }
  for (const [name, type] of Object.entries(expected)) {
    const value = (options as Record<string, unknown>)[name];
    if (value !== undefined && (typeof value !== type || value === null)) {
      throw new ConfigError(`${adapter}: option ${name} must be a${type === 'object' ? 'n' : ''} ${type}, got ${value === null ? 'null' : typeof value}`);
    }
  }
}
