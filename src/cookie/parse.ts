/**
 * Finds one cookie in a `Cookie` request header. Lenient and total: it never throws, whatever the
 * header holds. Names are compared byte for byte with no decoding, so `__%48ost-sid` or
 * `"__Host-sid"` can never pass for `__Host-sid` (prefix spoofing). Only spaces and tabs around a
 * name or value are skipped (RFC 6265's whitespace): `String#trim` would also drop a no-break
 * space, which a browser sends as part of the name, so a planted `\xa0__Host-sid` cookie (one
 * without the prefix's guarantees) would pass for the real one.
 */

/** Longest cookie value considered at all; anything longer is ignored as malformed. */
export const MAX_COOKIE_VALUE = 4096;

export type CookieLookup =
  | { kind: 'absent' }
  | { kind: 'found'; value: string }
  /** The name appears with two different values (e.g. a cookie tossed in from a sibling path). */
  | { kind: 'ambiguous' };

const ABSENT: CookieLookup = Object.freeze({ kind: 'absent' });
const EQUALS = 61;
const QUOTE = 34;

/** Space or horizontal tab. */
function isBlank(code: number): boolean {
  return code === 32 || code === 9;
}

export function findCookie(header: string | null | undefined, name: string): CookieLookup {
  if (!header || header.indexOf(name) === -1) return ABSENT;
  let found: string | undefined;
  let start = 0;
  const length = header.length;
  while (start < length) {
    let end = header.indexOf(';', start);
    if (end === -1) end = length;
    // The `=` of this pair only: searching on past `end` made a header of many pairs without
    // one quadratic.
    let eq = start;
    while (eq < end && header.charCodeAt(eq) !== EQUALS) eq++;
    if (eq < end) {
      let keyStart = start;
      let keyEnd = eq;
      while (keyStart < keyEnd && isBlank(header.charCodeAt(keyStart))) keyStart++;
      while (keyEnd > keyStart && isBlank(header.charCodeAt(keyEnd - 1))) keyEnd--;
      if (keyEnd - keyStart === name.length && header.startsWith(name, keyStart)) {
        let valueStart = eq + 1;
        let valueEnd = end;
        while (valueStart < valueEnd && isBlank(header.charCodeAt(valueStart))) valueStart++;
        while (valueEnd > valueStart && isBlank(header.charCodeAt(valueEnd - 1))) valueEnd--;
        if (valueEnd - valueStart >= 2 && header.charCodeAt(valueStart) === QUOTE && header.charCodeAt(valueEnd - 1) === QUOTE) {
          valueStart++;
          valueEnd--;
        }
        if (valueEnd - valueStart <= MAX_COOKIE_VALUE) {
          const value = header.slice(valueStart, valueEnd);
          if (found !== undefined && found !== value) return { kind: 'ambiguous' };
          found = value;
        }
      }
    }
    start = end + 1;
  }
  return found === undefined ? ABSENT : { kind: 'found', value: found };
}
