/**
 * Finds one cookie in a `Cookie` request header. Lenient and total: it never throws, whatever the
 * header holds. Names are compared byte for byte with no decoding, so `__%48ost-sid` or
 * `"__Host-sid"` can never pass for `__Host-sid` (prefix spoofing).
 */

/** Longest cookie value considered at all; anything longer is ignored as malformed. */
export const MAX_COOKIE_VALUE = 4096;

export type CookieLookup =
  | { kind: 'absent' }
  | { kind: 'found'; value: string }
  /** The name appears with two different values (e.g. a cookie tossed in from a sibling path). */
  | { kind: 'ambiguous' };

export function findCookie(header: string | null | undefined, name: string): CookieLookup {
  if (!header || header.indexOf(name) === -1) return { kind: 'absent' };
  let found: string | undefined;
  let start = 0;
  const length = header.length;
  while (start < length) {
    let end = header.indexOf(';', start);
    if (end === -1) end = length;
    const eq = header.indexOf('=', start);
    if (eq !== -1 && eq < end) {
      const key = header.slice(start, eq).trim();
      if (key === name) {
        let value = header.slice(eq + 1, end).trim();
        if (value.length >= 2 && value.charCodeAt(0) === 34 && value.charCodeAt(value.length - 1) === 34) {
          value = value.slice(1, -1);
        }
        if (value.length <= MAX_COOKIE_VALUE) {
          if (found !== undefined && found !== value) return { kind: 'ambiguous' };
          found = value;
        }
      }
    }
    start = end + 1;
  }
  return found === undefined ? { kind: 'absent' } : { kind: 'found', value: found };
}
