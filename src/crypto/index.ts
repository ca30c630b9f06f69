/**
 * Cryptographic primitives shared by coatcheck's stateless cookie store, CSRF tokens and other
 * secrets: key rings with per-purpose HKDF keys, AES-256-GCM sealing, constant-time comparison and
 * random tokens. Everything runs on `node:crypto`.
 *
 * Import from the subpath `coatcheck/crypto`.
 *
 * @module coatcheck/crypto
 * @example
 * ```ts
 * import { createKeyRing, seal, unseal, constantTimeEqual, randomToken } from 'coatcheck/crypto';
 *
 * const ring = createKeyRing([process.env.SESSION_SECRET!]);
 * const token = seal(ring, 'myapp/remember-me/v1', 'user:42');
 * unseal(ring, 'myapp/remember-me/v1', token)?.plaintext.toString(); // 'user:42'
 * ```
 */
export {
  createKeyRing,
  deriveKey,
  isKeyRing,
  MIN_SECRET_BYTES,
  DERIVED_KEY_BYTES,
  type KeyRing,
  type KeyRingEntry,
} from './keyring.js';
export { seal, unseal, SEAL_VERSION, MAX_SEALED_LENGTH, type Unsealed } from './seal.js';
export { constantTimeEqual, randomToken, MIN_TOKEN_BYTES, MAX_TOKEN_BYTES } from './compare.js';
