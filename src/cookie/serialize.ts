/**
 * Builds a `Set-Cookie` header value. Strict: anything that could inject attributes (`;`, control
 * characters, non-token names) throws a TypeError naming the field, because it is a programming
 * or configuration error, never client input.
 */

export interface CookieAttributes {
  /** Seconds; omitted for a browser-session cookie. 0 deletes the cookie. */
  maxAge?: number;
  domain?: string;
  path?: string;
  secure?: boolean;
  httpOnly?: boolean;
  sameSite?: 'lax' | 'strict' | 'none';
  partitioned?: boolean;
}

/** RFC 6265 cookie-name is an RFC 7230 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** cookie-octet: printable ASCII except space, DQUOTE, comma, semicolon and backslash. */
const COOKIE_VALUE = /^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*$/;
/** Attribute values: printable ASCII except semicolon. */
const ATTRIBUTE_VALUE = /^[\x20-\x3A\x3C-\x7E]+$/;

export function isValidCookieName(name: string): boolean {
  return TOKEN.test(name);
}

/** A Domain or Path attribute value that cannot inject another attribute. */
export function isValidAttributeValue(value: string): boolean {
  return ATTRIBUTE_VALUE.test(value);
}

export function isValidCookieValue(value: string): boolean {
  return COOKIE_VALUE.test(value);
}

export function serializeSetCookie(name: string, value: string, attributes: CookieAttributes = {}): string {
  if (!TOKEN.test(name)) throw new TypeError(`cookie name is invalid: ${JSON.stringify(name)}`);
  if (!COOKIE_VALUE.test(value)) throw new TypeError(`cookie value is invalid for ${name}`);
  let out = `${name}=${value}`;
  if (attributes.maxAge !== undefined) {
    if (!Number.isInteger(attributes.maxAge)) throw new TypeError(`option maxAge is invalid: ${attributes.maxAge}`);
    out += `; Max-Age=${Math.max(0, attributes.maxAge)}`;
  }
  if (attributes.domain !== undefined) {
    if (!ATTRIBUTE_VALUE.test(attributes.domain)) throw new TypeError(`option domain is invalid: ${JSON.stringify(attributes.domain)}`);
    out += `; Domain=${attributes.domain}`;
  }
  if (attributes.path !== undefined) {
    if (!ATTRIBUTE_VALUE.test(attributes.path)) throw new TypeError(`option path is invalid: ${JSON.stringify(attributes.path)}`);
    out += `; Path=${attributes.path}`;
  }
  if (attributes.httpOnly) out += '; HttpOnly';
  if (attributes.secure) out += '; Secure';
  if (attributes.sameSite) out += `; SameSite=${attributes.sameSite[0]!.toUpperCase()}${attributes.sameSite.slice(1)}`;
  if (attributes.partitioned) out += '; Partitioned';
  return out;
}
