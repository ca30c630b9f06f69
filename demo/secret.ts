/**
 * The demo's secret (used to seal sessions with `STORE=cookie:`). From `SECRET` when set;
 * otherwise a random development secret is created once in the data directory and reused, so
 * sealed cookies survive restarts. There is deliberately no built-in fallback constant: a secret
 * everyone knows would let anyone forge sessions.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../src/errors.js';
import { createKeyRing, MIN_SECRET_BYTES } from '../src/crypto/keyring.js';
import { EnvError } from './config.js';

export const SECRET_FILE = 'secret';

export interface ResolvedSecret {
  secret: string;
  /** Where it came from: the environment, an existing file, or a file created just now. */
  source: 'env' | 'file' | 'generated';
  path: string | null;
}

/** A configuration error (the server exits with its message, no stack) naming where the secret came from. */
function checkLength(secret: string, where: string, hint = ''): string {
  const bytes = Buffer.byteLength(secret);
  if (bytes < MIN_SECRET_BYTES) throw new EnvError(`${where} must be at least ${MIN_SECRET_BYTES} bytes, got ${bytes}${hint}`);
  try {
    createKeyRing([secret]); // the library's own checks (a placeholder such as 'x' * 32 is refused)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new EnvError(`${where}: ${error.message.replace(/^coatcheck: secrets\[0\] /, '')}${hint}`);
  }
  return secret;
}

export function resolveSecret(fromEnv: string | undefined, dataDir: string): ResolvedSecret {
  if (fromEnv !== undefined) return { secret: checkLength(fromEnv, 'SECRET'), source: 'env', path: null };
  const path = join(dataDir, SECRET_FILE);
  try {
    const hint = ' (set SECRET, or delete the file to have a new one generated)';
    return { secret: checkLength(readFileSync(path, 'utf8').trim(), path, hint), source: 'file', path };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  try {
    // 'wx': if another process created it meanwhile, use theirs rather than overwriting it.
    writeFileSync(path, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return resolveSecret(undefined, dataDir);
    throw error;
  }
  return { secret, source: 'generated', path };
}
