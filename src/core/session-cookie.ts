/**
 * The session's Set-Cookie headers, built from the resolved cookie options in one place: the
 * cookie that carries the token, the one that clears it, and the one that clears the plain-HTTP
 * cookie after an HTTPS upgrade.
 */
import { isValidCookieValue, serializeSetCookie } from '../cookie/serialize.js';
import { CookieTooLargeError } from '../errors.js';
import { cookieNameFor, isSecureFor, type ResolvedCookie } from './options.js';

/** The browser limit for one cookie (name, value and attributes). */
export const MAX_SET_COOKIE_BYTES = 4096;

interface Template {
  name: string;
  /** Everything after Max-Age: the attributes that never change for this cookie and protocol. */
  suffix: string;
}

/** Templates per resolved cookie options and Secure flag: the attributes are validated once. */
const templates = new WeakMap<ResolvedCookie, { plain?: Template; secure?: Template }>();

function template(cookie: ResolvedCookie, name: string, secure: boolean): Template {
  let cached = templates.get(cookie);
  if (!cached) templates.set(cookie, (cached = {}));
  const slot = secure ? 'secure' : 'plain';
  const hit = cached[slot];
  if (hit && hit.name === name) return hit;
  const attributes = serializeSetCookie(name, '', {
    ...(cookie.domain !== undefined && { domain: cookie.domain }),
    path: cookie.path,
    httpOnly: cookie.httpOnly,
    secure,
    // SameSite=None and Partitioned are only valid on Secure cookies.
    sameSite: !secure && cookie.sameSite === 'none' ? 'lax' : cookie.sameSite,
    partitioned: secure && cookie.partitioned,
  });
  return (cached[slot] = { name, suffix: attributes.slice(name.length + 1) });
}

function build(cookie: ResolvedCookie, name: string, value: string, secure: boolean, maxAge: number | undefined): string {
  if (!isValidCookieValue(value)) throw new TypeError(`cookie value is invalid for ${name}`);
  const { suffix } = template(cookie, name, secure);
  // Same layout as serializeSetCookie: name=value, then Max-Age, then the fixed attributes.
  return maxAge === undefined ? `${name}=${value}${suffix}` : `${name}=${value}; Max-Age=${Math.max(0, Math.floor(maxAge))}${suffix}`;
}

/** The cookie carrying `value`; `maxAge` undefined makes it a browser-session cookie. */
export function sessionCookie(cookie: ResolvedCookie, https: boolean, value: string, maxAge: number | undefined): string {
  const secure = isSecureFor(cookie, https);
  const header = build(cookie, cookieNameFor(cookie, secure), value, secure, maxAge);
  // Browsers silently drop cookies over 4096 bytes: fail loudly instead of losing the session.
  const size = Buffer.byteLength(header);
  if (size > MAX_SET_COOKIE_BYTES) throw new CookieTooLargeError(size, MAX_SET_COOKIE_BYTES);
  return header;
}

/** Expires the session cookie in the browser. */
export function clearedSessionCookie(cookie: ResolvedCookie, https: boolean): string {
  const secure = isSecureFor(cookie, https);
  return build(cookie, cookieNameFor(cookie, secure), '', secure, 0);
}

/** Expires the plain-HTTP cookie once its session has moved to the HTTPS one. */
export function clearedPlainHttpCookie(cookie: ResolvedCookie): string {
  return build(cookie, cookie.name, '', false, 0);
}

/**
 * Expires cookies of the session's name under other scopes, for a request that carried two: after
 * a change of `cookie.domain` or `cookie.path`, the browser keeps the old cookie beside the new
 * one, and clearing only the configured one would leave the user without a session on every
 * request. The default scope (host-only, `Path=/`) and each of `cookie.previousScopes`, except the
 * configured scope itself (the caller clears that one as usual).
 */
export function clearedOtherScopeCookies(cookie: ResolvedCookie, https: boolean): string[] {
  const secure = isSecureFor(cookie, https);
  const name = cookieNameFor(cookie, secure);
  const out: string[] = [];
  // A __Host- cookie exists only host-only at Path=/: no other scope can hold one.
  if (name.startsWith('__Host-')) return out;
  const seen = new Set([`${cookie.domain?.replace(/^\./, '').toLowerCase() ?? ''} ${cookie.path}`]);
  for (const { domain, path } of [{ domain: undefined, path: '/' }, ...cookie.previousScopes]) {
    const scope = `${domain ?? ''} ${path}`;
    if (seen.has(scope)) continue;
    seen.add(scope);
    out.push(
      serializeSetCookie(name, '', {
        maxAge: 0,
        path,
        ...(domain !== undefined && { domain }),
        httpOnly: cookie.httpOnly,
        secure,
        // As the session cookie's own clear: SameSite=None and Partitioned only on Secure cookies.
        sameSite: !secure && cookie.sameSite === 'none' ? 'lax' : cookie.sameSite,
        partitioned: secure && cookie.partitioned,
      }),
    );
  }
  return out;
}
