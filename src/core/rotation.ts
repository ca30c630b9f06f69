/**
 * Forwarding for id rotation with a grace window. When a session's id rotates, its old record is
 * claimed (a guarded write, so only one of several parallel requests rotates) and keeps, until the
 * grace window ends, the NEW token encrypted under a key derived from the OLD token. A request
 * still carrying the old token (sent in parallel, before the browser saw the new cookie) can
 * follow it; a dump of the store cannot, because it holds neither token.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const INFO = 'coatcheck/rotation/v1';

function keyFor(oldToken: string): Buffer {
  return Buffer.from(hkdfSync('sha256', oldToken, '', INFO, 32));
}

export function sealForward(newToken: string, oldToken: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyFor(oldToken), iv);
  const body = Buffer.concat([cipher.update(newToken, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

/** The new token, or null when the sealed value is not for this old token. Never throws. */
export function openForward(sealed: unknown, oldToken: string): string | null {
  if (typeof sealed !== 'string' || sealed.length > 512) return null;
  try {
    const raw = Buffer.from(sealed, 'base64url');
    if (raw.length < 12 + 16 + 1) return null;
    const decipher = createDecipheriv('aes-256-gcm', keyFor(oldToken), raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    return null;
  }
}
