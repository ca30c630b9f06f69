/**
 * The Fetch adapter's machinery, shared with the Hono and Koa adapters: opening a Request's
 * session, and putting a commit's headers on a Response. Not a package entry point (no `exports`
 * subpath reaches it): what apps use is `coatcheck/fetch`.
 * @module
 */
import { type CommitResult, Session } from '../core/session.js';
import type { Sessions } from '../core/sessions.js';
import { ConfigError } from '../errors.js';
import type { RegisteredData, SessionData } from '../types.js';
import { cacheControlWithCookie, clientIp, defaultFailure, isHttps, mountedAgain, SESSION_CACHE_CONTROL, varyWithCookie, webBodyUnsendable } from './shared.js';

/** Where the session hangs on the request: a symbol property is far cheaper than a WeakMap. */
const SESSION = Symbol.for('coatcheck.session');
type WithSession = Request & { [SESSION]?: object };

/** The session a wrapper opened for this request, if any. */
export function fetchSessionOf(request: Request): object | undefined {
  return (request as WithSession | undefined)?.[SESSION];
}

/**
 * Opens a session for a Fetch request (framework adapters built on Fetch use this). `encrypted`:
 * whether the connection itself is TLS, when the adapter can see it; otherwise the request URL's
 * scheme decides, as the host runtime built it.
 */
export function openFetchSession<T extends SessionData>(
  sessions: Sessions<T>,
  request: Request,
  /** The app's way to the client address: called only if the session is used (it may throw off its runtime). */
  ip?: () => string | null | undefined,
  encrypted?: boolean,
  missingAddress?: string,
): Session<T> {
  const trustProxy = sessions.options.trustProxy;
  // Parsing the URL costs a little: only a cookie with a Path of its own needs the request's.
  const scoped = sessions.options.cookie.path !== '/';
  const session = sessions.open(() => {
    const headers = request.headers;
    return {
      cookieHeader: headers.get('cookie'),
      https: isHttps(encrypted ?? request.url.startsWith('https:'), headers.get('x-forwarded-proto'), trustProxy),
      ip: addressOrRefuse(clientIp(ip?.(), headers.get('x-forwarded-for'), trustProxy), missingAddress),
      userAgent: headers.get('user-agent'),
      path: scoped ? new URL(request.url).pathname : null,
    };
  });
  (request as WithSession)[SESSION] = session;
  return session;
}

/**
 * Whether a response is one no server can send and no copy can be made of: `Response.error()`
 * (type 'error') and opaque responses have status 0, and `new Response(body, it)` throws a
 * RangeError; so does a response whose body was read or is locked (a TypeError). The adapters save nothing for it, as for a 5xx, and pass it on untouched.
 */
export function unsendable(response: Response): boolean {
  // A body already read or locked: `new Response(body, it)` throws, and no server can send it.
  return response.status === 0 || webBodyUnsendable(response);
}

/**
 * With `binding.ip` and no way to learn the client's address, a request is refused where its
 * session is first used (binding to no address would bind nothing); requests that never use it
 * are not.
 */
function addressOrRefuse(address: string | null, missing: string | undefined): string | null {
  if (address === null && missing !== undefined) throw new ConfigError(missing);
  return address;
}

/**
 * The session an adapter mounted earlier opened on this request with the same `sessions`, if any
 * (that mount commits it); throws a ConfigError when another engine's session is there.
 */
export function reopenedFetchSession(sessions: { readonly options: object }, request: Request, adapter: string): Session<RegisteredData> | undefined {
  const existing = (request as WithSession)[SESSION];
  // Answered already: the same Request handled again (a gateway trying another app on a 404)
  // gets a session of its own. Until then getSession(request) still finds the first one (a
  // streamed body, an onError reading it).
  if (existing !== undefined && Session.finished(existing)) return undefined;
  if (!mountedAgain(existing, sessions, adapter)) return undefined;
  return existing as unknown as Session<RegisteredData>;
}

/**
 * Whether `response` already carries another session's cookie where `result` sets this one's: a
 * second session of the same engine answered inside this request (a handler given a new Request
 * object, as Hono's `app.mount()` gives one, opens its own). The browser would keep one of the two,
 * silently losing the other session's login or data, so the adapters refuse (SECOND_SESSION).
 * Only a cookie a session makes counts: the same name, Path and Domain as this one's, a
 * session-shaped value (a token, or a sealed cookie-store value) other than this one's, not
 * expired. An app clearing the cookie itself, copying it, or setting one under another scope is
 * left alone; so is this session's own clearing cookie.
 */
export function secondSessionCookie(response: Response, result: CommitResult): boolean {
  if (result.setCookie.length === 0 || !response.headers.has('set-cookie')) return false;
  const ours = result.setCookie.map(cookieParts).filter((cookie) => cookie.live);
  if (ours.length === 0) return false;
  return response.headers.getSetCookie().some((cookie) => {
    const other = cookieParts(cookie);
    if (!other.live || !SESSION_VALUE.test(other.value)) return false;
    return ours.some((mine) => mine.name === other.name && mine.path === other.path && mine.domain === other.domain && mine.value !== other.value);
  });
}

/** A session cookie's value: a token (43 base64url characters) or a sealed `v1.` cookie-store value. */
const SESSION_VALUE = /^(?:[A-Za-z0-9_-]{43}|v1\.[A-Za-z0-9._-]{20,})$/;

/**
 * A Set-Cookie's name, value and scope, close to how a browser reads them (RFC 6265): Max-Age wins
 * over Expires, an empty or invalid one is ignored, an empty Domain is none. A missing Path is
 * compared as such (a browser would use the request's directory, which is not known here): such a
 * cookie is not counted, which can only miss a second session, never refuse a response.
 */
function cookieParts(cookie: string): { name: string; value: string; path: string | null; domain: string | null; live: boolean } {
  const [pair = '', ...attributes] = cookie.split(';');
  const equals = pair.indexOf('=');
  let path: string | null = null;
  let domain: string | null = null;
  let maxAge: number | null = null;
  let expires: number | null = null;
  for (const attribute of attributes) {
    const at = attribute.indexOf('=');
    const key = (at === -1 ? attribute : attribute.slice(0, at)).trim().toLowerCase();
    const val = at === -1 ? '' : attribute.slice(at + 1).trim();
    if (key === 'path') path = val;
    else if (key === 'domain' && val !== '') domain = val.replace(/^\./, '').toLowerCase();
    else if (key === 'max-age' && /^-?\d+$/.test(val)) maxAge = Number(val);
    else if (key === 'expires') expires = Date.parse(val);
  }
  const value = pair.slice(equals + 1).trim();
  const expired = maxAge !== null ? maxAge <= 0 : expires !== null && expires <= Date.now();
  return { name: pair.slice(0, equals).trim(), value, path, domain, live: value !== '' && !expired };
}

export const SECOND_SESSION =
  'this response already carries the session cookie from a second session of the same request: a handler was given a new Request object ' +
  '(Hono\'s app.mount() builds one), so it could not find the session opened for the original. Mount it with { replaceRequest: false }, which hands on the original Request';

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
  if (result.setCookie.length > 0) {
    // A shared cache must not keep a response that hands out a session (shared.ts).
    const current = headers.get('cache-control');
    const safe = cacheControlWithCookie(current);
    if (safe !== current) headers.set('Cache-Control', safe);
  } else if (!headers.has('cache-control')) headers.set('Cache-Control', SESSION_CACHE_CONTROL);
  headers.set('Vary', varyWithCookie(headers.get('vary')));
  for (const cookie of result.setCookie) headers.append('Set-Cookie', cookie);
}

/** The default answer when a session fails (503 for a store outage). */
export function failureToResponse(error: unknown): Response {
  const { status, body } = defaultFailure(error);
  return new Response(body, { status, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' } });
}
