/**
 * Session tokens: what the cookie carries. 256 bits from the CSPRNG, base64url. The store only ever
 * sees `hashToken(token)`, so a dump of the store holds no token a browser could present.
 */
import * as crypto from 'node:crypto';
import { createHash, randomBytes } from 'node:crypto';

/** One-shot `crypto.hash` (Node ≥ 20.12) skips a Hash object per request; older Nodes fall back. */
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'base64url') => string }).hash;

/** 32 random bytes, base64url without padding: 43 characters. */
export const TOKEN_LENGTH = 43;
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Cheap shape check done before any store call; rejects everything we could not have issued. */
export function isWellFormedToken(value: string): boolean {
  return value.length === TOKEN_LENGTH && TOKEN_SHAPE.test(value);
}

/** The store key for a token: SHA-256, base64url. Also the public "handle" of a session. */
export function hashToken(token: string): string {
  return oneShot ? oneShot('sha256', token, 'base64url') : createHash('sha256').update(token).digest('base64url');
}
