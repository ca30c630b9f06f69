/**
 * Key rings: the application's secrets, newest first, from which every per-purpose key is derived.
 *
 * - The **first** entry is the current key: it seals and signs. **Every** entry opens and verifies,
 *   so rotating is "prepend a new secret, keep the old one until its tokens have expired, then drop it".
 * - Each secret must be at least {@link MIN_SECRET_BYTES} bytes (UTF-8 bytes for strings). There is no
 *   default secret and nothing is ever derived from an empty or missing one.
 * - Key ids: an entry `{ id, secret }` uses its explicit id; a bare string secret gets an id derived
 *   from the secret itself (HKDF, 48 bits, base64url, 8 characters). A derived id is stable across
 *   restarts and reorderings, unlike a positional id, which would silently change meaning when a new
 *   key is prepended. It reveals nothing useful about the secret (it is a PRF output).
 * - Working keys are derived per purpose with HKDF-SHA256 (`info` = the purpose label), so a key
 *   used for cookie sealing is never the key used for CSRF tokens. Derivations are cached per
 *   (key id, purpose), so only the first use of a pair pays for HKDF.
 *
 * Exported from `coatcheck/crypto`.
 *
 * @module coatcheck/crypto
 * @example
 * ```ts
 * import { createKeyRing } from 'coatcheck/crypto';
 *
 * // Newest first: '2025-06' seals, both open.
 * const ring = createKeyRing([
 *   { id: '2025-06', secret: process.env.SESSION_SECRET_NEW! },
 *   { id: '2025-01', secret: process.env.SESSION_SECRET_OLD! },
 * ]);
 * ring.currentId; // '2025-06'
 * ```
 */
import { hkdfSync } from 'node:crypto';
import { ConfigError } from '../errors.js';

/** Shortest secret accepted, in bytes (UTF-8 for strings): 256 bits if the secret is random. */
export const MIN_SECRET_BYTES = 32;

/** Shape of a key id: it travels in tokens, so it is restricted to URL- and cookie-safe characters. */
const KEY_ID_SHAPE = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * Shape of a purpose label: printable ASCII without spaces, e.g. `'coatcheck/cookie-store/v1'`.
 * Labels are written by library code, never taken from requests.
 */
const PURPOSE_SHAPE = /^[\x21-\x7e]{1,128}$/;

/** A lone UTF-16 surrogate: such strings have no exact UTF-8 form, so two secrets could collide. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Fixed, public HKDF salt: separates coatcheck's derivations from any other use of the same secret. */
const HKDF_SALT = Buffer.from('coatcheck/hkdf-salt/v1', 'utf8');
/** HKDF info labels under this prefix derive key ids, which travel in every token: never a purpose. */
const RESERVED_PURPOSE_PREFIX = 'coatcheck/key-id/';
const KEY_ID_INFO = `${RESERVED_PURPOSE_PREFIX}v1`;

/** Bytes of every derived key: AES-256 and HMAC-SHA256 both want 32. */
export const DERIVED_KEY_BYTES = 32;

/**
 * Upper bound on cached derivations per ring. Purposes are meant to be a handful of constants; if a
 * caller invents them dynamically, derivation keeps working but stops being cached, instead of the
 * cache growing without bound.
 */
const MAX_CACHED_KEYS = 1024;

/** One entry of the array given to {@link createKeyRing}. */
export type KeyRingEntry = string | { id: string; secret: string | Uint8Array };

/**
 * A key ring made by {@link createKeyRing}. It exposes only ids: secrets and derived keys are held
 * privately, so logging or serializing a ring leaks nothing.
 */
export interface KeyRing {
  /** Key ids, newest first. `ids[0]` is {@link KeyRing.currentId}. */
  readonly ids: readonly string[];
  /** The id of the key that seals and signs; tokens opened with any other id are stale. */
  readonly currentId: string;
}

interface RingState {
  /** id → secret bytes (private copies). */
  readonly secrets: Map<string, Buffer>;
  /** id → purpose → derived key. Never handed out: callers get copies or use it internally. */
  readonly cache: Map<string, Map<string, Buffer>>;
  cached: number;
}

// Secrets live here rather than on the ring object, so nothing enumerable or inspectable holds them.
const states = new WeakMap<KeyRing, RingState>();

/**
 * Builds a key ring from secrets, newest first.
 *
 * @param secrets Non-empty array. Each entry is a string secret (its id is derived from the secret)
 *   or `{ id, secret }` with an explicit id of 1–32 characters from `[A-Za-z0-9_-]`. Secrets are
 *   strings (UTF-8) or bytes, at least {@link MIN_SECRET_BYTES} bytes. Bytes are copied.
 * @throws {ConfigError} if the array is missing or empty, an entry is malformed, a secret is too
 *   short or not well-formed Unicode, an id is malformed, or two entries share an id or a secret.
 * @example
 * <!-- snippet: with crypto -->
 * ```ts
 * // Generate a secret once: node -e "console.log(require('crypto').randomBytes(32).toString('base64url'))"
 * const ring = createKeyRing([process.env.SESSION_SECRET!]);
 * ring.ids; // [ 'k3J9aQ_x' ]  (derived from the secret, stable across restarts)
 * ```
 */
export function createKeyRing(secrets: readonly KeyRingEntry[]): KeyRing {
  if (!Array.isArray(secrets)) {
    throw new ConfigError('createKeyRing needs an array of secrets, newest first (there is no default secret)');
  }
  if (secrets.length === 0) {
    throw new ConfigError('createKeyRing needs at least one secret (there is no default secret)');
  }
  const byId = new Map<string, Buffer>();
  const ids: string[] = [];
  secrets.forEach((entry: unknown, index) => {
    const where = `secrets[${index}]`;
    let id: string | undefined;
    let raw: unknown;
    if (typeof entry === 'string') {
      raw = entry;
    } else if (entry !== null && typeof entry === 'object') {
      const record = entry as { id?: unknown; secret?: unknown };
      if (typeof record.id !== 'string' || !KEY_ID_SHAPE.test(record.id)) {
        throw new ConfigError(`${where}.id must be 1-32 characters from [A-Za-z0-9_-]`);
      }
      id = record.id;
      raw = record.secret;
    } else {
      throw new ConfigError(`${where} must be a string secret or { id, secret }${unsetHint(entry)}`);
    }
    const secret = secretBytes(raw, id === undefined ? where : `${where}.secret`);
    id ??= deriveKeyId(secret);
    if (byId.has(id)) throw new ConfigError(`${where}: duplicate key id ${JSON.stringify(id)}`);
    for (const other of byId.values()) {
      // Setup-time comparison of the operator's own secrets: timing is not a concern here.
      if (other.equals(secret)) throw new ConfigError(`${where}: the same secret appears twice in the key ring`);
    }
    byId.set(id, secret);
    ids.push(id);
  });
  const ring: KeyRing = Object.freeze({ ids: Object.freeze(ids), currentId: ids[0] as string });
  states.set(ring, { secrets: byId, cache: new Map(), cached: 0 });
  return ring;
}

/** `secrets: [process.env.SESSION_SECRET]` with the variable unset arrives as undefined. */
function unsetHint(value: unknown): string {
  return value === undefined ? ' (it is undefined: is the environment variable you passed unset?)' : '';
}

/** Validates a secret and returns a private copy of its bytes. */
function secretBytes(raw: unknown, where: string): Buffer {
  let bytes: Buffer;
  if (typeof raw === 'string') {
    if (LONE_SURROGATE.test(raw)) throw new ConfigError(`${where} is not well-formed Unicode (lone surrogate)`);
    bytes = Buffer.from(raw, 'utf8');
  } else if (raw instanceof Uint8Array) {
    bytes = Buffer.from(raw); // copy: later changes to the caller's array must not change the key
  } else {
    throw new ConfigError(`${where} must be a string or a Uint8Array${unsetHint(raw)}`);
  }
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new ConfigError(
      `${where} is ${bytes.length} bytes; secrets must be at least ${MIN_SECRET_BYTES} bytes ` +
        '(use 32 random bytes, e.g. crypto.randomBytes(32).toString("base64url"))',
    );
  }
  const pattern = placeholderPattern(bytes, typeof raw === 'string' ? raw : undefined);
  if (pattern !== null) {
    throw new ConfigError(
      `${where} is ${pattern}: a placeholder, not a secret (every cookie carries a key id derived from the secret, so a guessable one can be tested offline); ` +
        'use 32 random bytes: npx coatcheck keygen, or crypto.randomBytes(32).toString("base64url")',
    );
  }
  return bytes;
}

/** Longest run {@link placeholderPattern} looks for when it is repeated only nearly exactly. */
const NEAR_REPEAT_MAX_PERIOD = 16;

/**
 * Why a secret cannot be random, or null. Deliberately narrow (a passphrase of words passes):
 *
 * - fewer than 5 different bytes;
 * - one run repeated exactly ('x' * 32, 'password' * 4);
 * - a run of at most 16 characters repeated at least twice over 90 % or more of the secret
 *   ('password' * 4 + '!', '0123456789abcdef' * 2, 'keyboard cat' * 3);
 * - one character making up half of it or more ('a' * 28 + 'bcde').
 *
 * The last two count characters (code points) of a string secret, so a passphrase in a script
 * whose letters share a UTF-8 lead byte is not "mostly one byte"; bytes of a Uint8Array secret.
 * Random secrets never trip them in practice: hex or base64 of 32 random bytes below 1e-20; 32
 * random decimal digits about 1e-7 (one digit 16 times or more).
 */
function placeholderPattern(bytes: Buffer, text?: string): string | null {
  const distinct = new Set(bytes).size;
  if (distinct < 5) return `made of only ${distinct} different character${distinct === 1 ? '' : 's'}`;
  for (let period = 1; period * 3 <= bytes.length; period++) {
    let repeats = true;
    for (let i = period; i < bytes.length && repeats; i++) repeats = bytes[i] === bytes[i - period];
    if (repeats) return `a run of ${period} characters repeated`;
  }
  const units: ArrayLike<number> = text === undefined ? bytes : Array.from(text, (char) => char.codePointAt(0) as number);
  const length = units.length;
  const counts = new Map<number, number>();
  let most = 0;
  for (let i = 0; i < length; i++) {
    const count = (counts.get(units[i] as number) ?? 0) + 1;
    counts.set(units[i] as number, count);
    if (count > most) most = count;
  }
  if (most * 2 >= length) return `mostly one character (${most} of ${length})`;
  for (let period = 1; period <= NEAR_REPEAT_MAX_PERIOD && period * 2 <= length; period++) {
    // Covered: the first run, and every later character equal to the one a period before it.
    let covered = period;
    for (let i = period; i < length; i++) if (units[i] === units[i - period]) covered++;
    if (covered * 10 < length * 9) continue;
    return covered === length ? `a run of ${period} characters repeated` : `almost entirely a run of ${period} characters repeated (${covered} of ${length})`;
  }
  return null;
}

/** 48-bit id from the secret: enough to tell a handful of keys apart, useless for guessing it. */
function deriveKeyId(secret: Buffer): string {
  return Buffer.from(hkdfSync('sha256', secret, HKDF_SALT, KEY_ID_INFO, 6)).toString('base64url');
}

/** True if `value` is a ring made by {@link createKeyRing} (not a look-alike object). */
export function isKeyRing(value: unknown): value is KeyRing {
  return typeof value === 'object' && value !== null && states.has(value as KeyRing);
}

/**
 * Throws {@link ConfigError} unless `purpose` is a valid purpose label: 1-128 printable ASCII
 * characters without spaces, not starting with `coatcheck/key-id/` (reserved for key ids).
 */
export function assertPurpose(purpose: unknown): asserts purpose is string {
  if (typeof purpose !== 'string' || !PURPOSE_SHAPE.test(purpose)) {
    throw new ConfigError('purpose must be 1-128 printable ASCII characters without spaces, e.g. "coatcheck/csrf/v1"');
  }
  // Key ids are HKDF outputs of the same secret and salt: a purpose with the key-id label would be
  // a key whose first 48 bits every cookie prints.
  if (purpose.startsWith(RESERVED_PURPOSE_PREFIX)) {
    throw new ConfigError(`purpose ${JSON.stringify(purpose)} is reserved: labels starting with "${RESERVED_PURPOSE_PREFIX}" derive the public key ids`);
  }
}

function stateOf(ring: unknown): RingState {
  const state = typeof ring === 'object' && ring !== null ? states.get(ring as KeyRing) : undefined;
  if (state === undefined) throw new ConfigError('expected a key ring made by createKeyRing()');
  return state;
}

/**
 * Internal: the derived key for (`keyId`, `purpose`), or null if the ring has no such id. Returns the
 * cached buffer itself (no copy) for speed; callers inside coatcheck must not modify or expose it.
 * Not re-exported from `coatcheck/crypto`.
 *
 * @throws {ConfigError} if `ring` is not a key ring or `purpose` is not a valid label.
 */
export function derivedKey(ring: KeyRing, purpose: string, keyId?: string): Buffer | null {
  const state = stateOf(ring);
  keyId ??= ring.currentId;
  const hit = state.cache.get(keyId)?.get(purpose);
  if (hit !== undefined) return hit; // a cached purpose was validated when it was first derived
  assertPurpose(purpose);
  const secret = state.secrets.get(keyId);
  if (secret === undefined) return null;
  const key = Buffer.from(hkdfSync('sha256', secret, HKDF_SALT, purpose, DERIVED_KEY_BYTES));
  if (state.cached < MAX_CACHED_KEYS) {
    let perId = state.cache.get(keyId);
    if (perId === undefined) state.cache.set(keyId, (perId = new Map()));
    perId.set(purpose, key);
    state.cached++;
  }
  return key;
}

/**
 * The 32-byte key derived for `purpose` from the key `keyId` (default: the current key), e.g. to key
 * an HMAC. Returns a fresh copy each call, or null if the ring has no key with that id.
 *
 * @throws {ConfigError} if `ring` is not a key ring or `purpose` is not a valid label.
 * @example
 * <!-- snippet: with crypto, app-values -->
 * ```ts
 * import { createHmac } from 'node:crypto';
 * const key = deriveKey(ring, 'coatcheck/csrf/v1')!;
 * const mac = createHmac('sha256', key).update(sessionHandle).digest('base64url');
 * ```
 */
export function deriveKey(ring: KeyRing, purpose: string, keyId?: string): Buffer | null {
  const key = derivedKey(ring, purpose, keyId);
  return key === null ? null : Buffer.from(key);
}
