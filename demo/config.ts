/**
 * The demo's configuration, read from environment variables. Pure (no I/O) so it can be tested;
 * a bad value throws with a message naming the variable, and the server exits with it.
 */
import { DEFAULT_STORE_URL, storeKind } from '../src/stores/from-url.js';

export interface DemoConfig {
  port: number;
  host: string;
  /** `sqlite:PATH`, `memory:`, `redis://…`, `postgres://…` or `cookie:`. */
  storeUrl: string;
  /** Seconds; undefined means the library's default. */
  idleTimeout: number | undefined;
  absoluteTimeout: number | undefined;
  /** From `SECRET`; undefined means "use (or create) the development secret in ./data". */
  secret: string | undefined;
  cookieSecure: boolean | 'auto';
  trustProxy: boolean;
}

export class EnvError extends Error {
  override name = 'EnvError';
}

type Env = Record<string, string | undefined>;

/** Empty strings count as unset, so `PORT= npm start` means the default. */
function value(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw ? raw : undefined;
}

function seconds(env: Env, name: string): number | undefined {
  const raw = value(env, name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new EnvError(`${name} must be a positive number of seconds, got ${JSON.stringify(raw)}`);
  return n;
}

function flag(env: Env, name: string): boolean {
  const raw = value(env, name)?.toLowerCase();
  if (raw === undefined || raw === '0' || raw === 'false' || raw === 'no') return false;
  if (raw === '1' || raw === 'true' || raw === 'yes') return true;
  throw new EnvError(`${name} must be true or false, got ${JSON.stringify(raw)}`);
}

export function readConfig(env: Env): DemoConfig {
  const rawPort = value(env, 'PORT') ?? '3000';
  const port = Number(rawPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new EnvError(`PORT must be a port number (0 picks a free one), got ${JSON.stringify(rawPort)}`);

  const storeUrl = value(env, 'STORE') ?? DEFAULT_STORE_URL;
  try {
    storeKind(storeUrl);
  } catch {
    throw new EnvError(`STORE must be sqlite:PATH, memory:, redis://…, postgres://… or cookie:, got ${JSON.stringify(storeUrl)}`);
  }

  const secure = value(env, 'COOKIE_SECURE')?.toLowerCase() ?? 'auto';
  if (secure !== 'auto' && secure !== 'true' && secure !== 'false') throw new EnvError(`COOKIE_SECURE must be auto, true or false, got ${JSON.stringify(secure)}`);

  const idleTimeout = seconds(env, 'IDLE_TIMEOUT');
  const absoluteTimeout = seconds(env, 'ABSOLUTE_TIMEOUT');

  return {
    port,
    host: value(env, 'HOST') ?? 'localhost',
    storeUrl,
    idleTimeout,
    absoluteTimeout,
    secret: value(env, 'SECRET'),
    cookieSecure: secure === 'auto' ? 'auto' : secure === 'true',
    trustProxy: flag(env, 'TRUST_PROXY'),
  };
}
