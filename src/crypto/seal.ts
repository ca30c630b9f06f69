/**
 * Authenticated encryption of small payloads (a whole session in a cookie, a one-time ticket).
 *
 * Token format, ASCII only, safe in a cookie value without quoting or encoding:
 *
 * ```
 * v1.<keyId>.<base64url(iv[12] | ciphertext | tag[16])>
 * ```
 *
 * - Cipher: AES-256-GCM, always. The token has no algorithm field; `v1` fixes the whole scheme, so
 *   there is nothing for an attacker to downgrade.
 * - Key: derived from the ring's key `keyId` with HKDF-SHA256 for the `purpose` label (see keyring).
 * - IV: 96 random bits per token. Tag: 128 bits.
 * - Additional authenticated data: the version, key id, purpose and the caller's `aad`, each
 *   length-prefixed, so a token cannot be moved to another purpose, key id or cookie name. An
 *   omitted `aad` is the same as `''`.
 * - base64url must be canonical (no padding, no stray bits), so the text of a valid token has
 *   exactly one spelling.
 *
 * `unseal` treats the token as hostile: anything that is not a valid token for this ring, purpose
 * and aad gives `null`, never an exception. Only programming errors throw (`ConfigError`): a ring
 * not made by `createKeyRing`, an invalid purpose label, a non-string `aad` or plaintext.
 *
 * Exported from `coatcheck/crypto`.
 *
 * @module coatcheck/crypto
 * @example
 * ```ts
 * import { createKeyRing, seal, unseal } from 'coatcheck/crypto';
 *
 * const ring = createKeyRing([process.env.SESSION_SECRET!]);
 * const token = seal(ring, 'coatcheck/cookie-store/v1', JSON.stringify({ user: 42 }), 'sid');
 * const opened = unseal(ring, 'coatcheck/cookie-store/v1', token, 'sid');
 * if (opened) {
 *   const data = JSON.parse(opened.plaintext.toString('utf8'));
 *   if (opened.stale) {
 *     // sealed with an older key: re-seal with the current one
 *   }
 * }
 * ```
 */
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import * as v8 from 'node:v8';
import { ConfigError, SessionTooLargeError } from '../errors.js';
import { derivedKey, isKeyRing, type KeyRing } from './keyring.js';

/** Format tag, first segment of every token. A new scheme gets a new tag; old tags stop opening. */
export const SEAL_VERSION = 'v1';

/**
 * Longest token `unseal` looks at (and `seal` produces), in characters. Cookies are capped near 4 KiB
 * anyway; the cap keeps hostile input from costing more than a few microseconds.
 */
export const MAX_SEALED_LENGTH = 16 * 1024;

const ALGORITHM = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID_SHAPE = /^[A-Za-z0-9_-]{1,32}$/;
const BASE64URL_SHAPE = /^[A-Za-z0-9_-]+$/;
/** Domain label at the start of the AAD, so these bytes cannot be confused with any other MAC input. */
const AAD_LABEL = 'coatcheck/seal';

/** What {@link unseal} returns for a valid token. */
export interface Unsealed {
  /** The decrypted bytes (`.toString('utf8')` for a string plaintext). */
  plaintext: Buffer;
  /** Id of the ring key that opened the token. */
  keyId: string;
  /** True if that key is not the ring's current key: the caller should re-seal and re-issue. */
  stale: boolean;
}

/**
 * Encrypts and authenticates `plaintext` with the ring's current key, for `purpose`.
 *
 * @param ring From `createKeyRing`.
 * @param purpose Purpose label, e.g. `'coatcheck/cookie-store/v1'`; the same label must be given to
 *   {@link unseal}.
 * @param plaintext A string (encoded as UTF-8; lone surrogates become U+FFFD) or bytes.
 * @param aad Extra context bound into the token without being stored in it, e.g. the cookie name;
 *   the same value must be given to {@link unseal}. Default `''`.
 * @returns `v1.<keyId>.<base64url(iv|ciphertext|tag)>`, at most {@link MAX_SEALED_LENGTH} characters.
 * @throws {ConfigError} on misuse (not a ring, bad purpose, non-string aad, plaintext of another type).
 * @throws {SessionTooLargeError} if the token would exceed {@link MAX_SEALED_LENGTH}: `unseal` would
 *   refuse it, so it is not produced.
 * @example
 * <!-- snippet: with crypto -->
 * ```ts
 * const token = seal(ring, 'coatcheck/cookie-store/v1', '{"cart":[1,2]}', '__Host-sid');
 * ```
 */
export function seal(ring: KeyRing, purpose: string, plaintext: string | Uint8Array, aad?: string): string {
  if (!isKeyRing(ring)) throw new ConfigError('seal: expected a key ring made by createKeyRing()');
  const keyId = ring.currentId;
  const key = derivedKey(ring, purpose, keyId) as Buffer; // the current id is always in the ring
  const aadBytes = buildAad(keyId, purpose, checkAad(aad, 'seal'));
  let data: Uint8Array;
  if (typeof plaintext === 'string') data = Buffer.from(plaintext, 'utf8');
  else if (plaintext instanceof Uint8Array) data = plaintext;
  else throw new ConfigError('seal: plaintext must be a string or a Uint8Array');

  const prefixLength = SEAL_VERSION.length + 1 + keyId.length + 1;
  const maxPlaintext = Math.floor(((MAX_SEALED_LENGTH - prefixLength) * 3) / 4) - IV_BYTES - TAG_BYTES;
  if (data.length > maxPlaintext) throw new SessionTooLargeError(data.length, maxPlaintext);

  const iv = nextIv();
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aadBytes);
  const body = Buffer.concat([iv, cipher.update(data), cipher.final(), cipher.getAuthTag()]);
  return `${SEAL_VERSION}.${keyId}.${body.toString('base64url')}`;
}

/**
 * Opens a token made by {@link seal} with any key of the ring.
 *
 * Never throws because of `token`: a non-string, an over-long, malformed, truncated or tampered
 * token, another version, an unknown key id, another purpose or another aad all give `null`.
 *
 * @param ring From `createKeyRing`; may hold older keys, which still open their tokens.
 * @param purpose The purpose label the token was sealed for.
 * @param token Untrusted input, typically a cookie value.
 * @param aad The aad the token was sealed with. Default `''`.
 * @returns `{ plaintext, keyId, stale }`, or null.
 * @throws {ConfigError} only on misuse: not a ring, bad purpose, non-string aad.
 * @example
 * <!-- snippet: with crypto, app-values -->
 * ```ts
 * const opened = unseal(ring, 'coatcheck/cookie-store/v1', cookieValue, '__Host-sid');
 * if (opened === null) {
 *   // no session: treat as anonymous
 * }
 * ```
 */
export function unseal(ring: KeyRing, purpose: string, token: unknown, aad?: string): Unsealed | null {
  if (!isKeyRing(ring)) throw new ConfigError('unseal: expected a key ring made by createKeyRing()');
  const context = checkAad(aad, 'unseal');
  // Validates the purpose even when the token is junk, so misuse shows up on the first request.
  derivedKey(ring, purpose);
  if (typeof token !== 'string' || token.length > MAX_SEALED_LENGTH) return null;

  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  if (first < 0 || second < 0 || token.indexOf('.', second + 1) >= 0) return null;
  if (token.slice(0, first) !== SEAL_VERSION) return null;
  const keyId = token.slice(first + 1, second);
  const encoded = token.slice(second + 1);
  if (!KEY_ID_SHAPE.test(keyId) || !BASE64URL_SHAPE.test(encoded)) return null;

  const key = derivedKey(ring, purpose, keyId);
  if (key === null) return null;
  // Node's decoder ignores stray trailing bits; demanding the canonical spelling means a changed
  // character can never decode to the same bytes.
  if (!isCanonicalBase64url(encoded)) return null;
  const body = Buffer.from(encoded, 'base64url');
  if (body.length < IV_BYTES + TAG_BYTES) return null;

  try {
    const decipher = createDecipheriv(ALGORITHM, key, body.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(buildAad(keyId, purpose, context));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    const head = decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES));
    const plaintext = Buffer.concat([head, decipher.final()]); // final() throws if the tag is wrong
    return { plaintext, keyId, stale: keyId !== ring.currentId };
  } catch {
    return null;
  }
}

/** Random IVs are drawn from a pooled CSPRNG buffer: one randomFillSync per 256 tokens, not one per token. */
const IV_POOL = Buffer.allocUnsafe(IV_BYTES * 256);
let ivOffset = IV_POOL.length;

/**
 * Empties the IV pool, so the next seal refills it from the CSPRNG. A startup snapshot
 * (`node --build-snapshot`) copies this module's state into the blob: a pool filled while the
 * snapshot was built would hand every process started from it the same IVs (with AES-GCM, the
 * same keystream, and the authentication key given away). Each such process empties it first.
 */
function discardIvPool(): void {
  IV_POOL.fill(0);
  ivOffset = IV_POOL.length;
}

// Optional chaining: other runtimes' node:v8 may lack startupSnapshot.
if (v8.startupSnapshot?.isBuildingSnapshot?.()) v8.startupSnapshot.addDeserializeCallback(discardIvPool);

function nextIv(): Buffer {
  if (ivOffset === IV_POOL.length) {
    randomFillSync(IV_POOL);
    ivOffset = 0;
  }
  // A view is enough: createCipheriv copies the IV and Buffer.concat copies it into the token
  // before the pool is ever refilled (all synchronous).
  const iv = IV_POOL.subarray(ivOffset, ivOffset + IV_BYTES);
  ivOffset += IV_BYTES;
  return iv;
}

const BASE64URL_VALUES = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * True when `encoded` (already known to use only the base64url alphabet) is the one unpadded
 * spelling of its bytes: no impossible length, and no set bits past the last whole byte.
 */
function isCanonicalBase64url(encoded: string): boolean {
  const tail = encoded.length % 4;
  if (tail === 0) return true;
  if (tail === 1) return false;
  const last = BASE64URL_VALUES.indexOf(encoded[encoded.length - 1] as string);
  // 2 chars carry 1 byte (4 spare bits), 3 chars carry 2 bytes (2 spare bits).
  return (last & (tail === 2 ? 0b1111 : 0b11)) === 0;
}

/** AAD bytes per (key id, purpose, aad): a few combinations per app, so a small bounded cache. */
const AAD_CACHE = new Map<string, Buffer>();
const AAD_CACHE_LIMIT = 64;

function checkAad(aad: unknown, where: string): string {
  if (aad === undefined) return '';
  if (typeof aad !== 'string') throw new ConfigError(`${where}: aad must be a string when given`);
  return aad;
}

/**
 * `label | version | keyId | purpose | aad`, each as a 4-byte big-endian length then its UTF-16LE
 * code units. Length prefixes keep field boundaries unambiguous; UTF-16LE is lossless for any JS
 * string (UTF-8 would map distinct lone surrogates to the same U+FFFD).
 */
function buildAad(keyId: string, purpose: string, aad: string): Buffer {
  // The two leading lengths make the key unambiguous: different triples never share it.
  const cacheKey = `${keyId.length}:${purpose.length}:${keyId}${purpose}${aad}`;
  const cached = AAD_CACHE.get(cacheKey);
  if (cached) return cached;
  const built = encodeAad(keyId, purpose, aad);
  if (AAD_CACHE.size < AAD_CACHE_LIMIT) AAD_CACHE.set(cacheKey, built);
  return built;
}

function encodeAad(keyId: string, purpose: string, aad: string): Buffer {
  const parts = [AAD_LABEL, SEAL_VERSION, keyId, purpose, aad].map((part) => Buffer.from(part, 'utf16le'));
  const out = Buffer.allocUnsafe(parts.reduce((sum, part) => sum + 4 + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    offset = out.writeUInt32BE(part.length, offset);
    offset += part.copy(out, offset);
  }
  return out;
}
