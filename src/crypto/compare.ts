/**
 * Comparing secrets and making new ones.
 *
 * Exported from `coatcheck/crypto`.
 *
 * @module coatcheck/crypto
 * @example
 * <!-- snippet: with app-values -->
 * ```ts
 * import { constantTimeEqual, randomToken } from 'coatcheck/crypto';
 *
 * const csrf = randomToken();            // 43 characters, 256 bits
 * constantTimeEqual(submitted, csrf);    // never `submitted === csrf`
 * ```
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../errors.js';

/** Fewest random bytes {@link randomToken} will make: 128 bits, the usual floor for a secret token. */
export const MIN_TOKEN_BYTES = 16;
/** Most random bytes {@link randomToken} will make in one call; far beyond any token's needs. */
export const MAX_TOKEN_BYTES = 1024;

/**
 * Compares two secrets without leaking, through timing, where they first differ.
 *
 * Both strings are hashed with SHA-256 and the digests compared with `crypto.timingSafeEqual`: the
 * digests always have the same length, so strings of different lengths compare (false) instead of
 * throwing, and the comparison's time does not depend on the contents. Hashing takes time
 * proportional to each input's length, which is not secret. Strings are hashed as UTF-16 code units,
 * so even strings with lone surrogates compare exactly. Non-strings (e.g. a missing header) give false.
 *
 * @example
 * <!-- snippet: with crypto, node, session, app-values -->
 * ```ts
 * if (!constantTimeEqual(String(req.headers['x-csrf-token'] ?? ''), session.csrfToken())) reject();
 * ```
 */
export function constantTimeEqual(a: string, b: string): boolean {
  if (typeof a !== 'string' || typeof b !== 'string') return false;
  return timingSafeEqual(digest(a), digest(b));
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf16le').digest();
}

/**
 * A new random token from the CSPRNG, base64url without padding.
 *
 * @param bytes Random bytes to draw, an integer from {@link MIN_TOKEN_BYTES} to {@link MAX_TOKEN_BYTES}.
 *   Default 32 (256 bits, 43 characters).
 * @throws {ConfigError} if `bytes` is out of range or not an integer.
 * @example
 * <!-- snippet: with crypto -->
 * ```ts
 * randomToken();   // 'Qm9vdHN0cmFw...' (43 characters)
 * randomToken(16); // 22 characters
 * ```
 */
export function randomToken(bytes = 32): string {
  if (!Number.isInteger(bytes) || bytes < MIN_TOKEN_BYTES || bytes > MAX_TOKEN_BYTES) {
    throw new ConfigError(`randomToken: bytes must be an integer from ${MIN_TOKEN_BYTES} to ${MAX_TOKEN_BYTES}`);
  }
  return randomBytes(bytes).toString('base64url');
}
