/**
 * The session's Set-Cookie headers, built from the resolved cookie options in one place: the
 * cookie that carries the token, the one that clears it, and the one that clears the plain-HTTP
 * cookie after an HTTPS upgrade.
 */
import { serializeSetCookie } from '../cookie/serialize.js';
import { CookieTooLargeError } from '../errors.js';
import { cookieNameFor, isSecureFor, type ResolvedCookie } from './options.js';

/** The browser limit for one cookie (name, value and attributes). */
export const MAX_SET_COOKIE_BYTES = 4096;

function build(cookie: ResolvedCookie, name: string, value: string, secure: boolean, maxAge: number | undefined): string {
  return serializeSetCookie(name, value, {
    ...(maxAge !== undefined && { maxAge }),
    ...(cookie.domain !== undefined && { domain: cookie.domain }),
    path: cookie.path,
    httpOnly: cookie.httpOnly,
    secure,
    // SameSite=None and Partitioned are only valid on Secure cookies.
    sameSite: !secure && cookie.sameSite === 'none' ? 'lax' : cookie.sameSite,
    partitioned: secure && cookie.partitioned,
  });
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
