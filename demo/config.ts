/**
 * The demo's configuration, read from environment variables. Pure (no I/O) so it can be tested;
 * a bad value throws with a message naming the variable, and the server exits with it.
 */
import { MAX_DURATION_SECONDS } from '../src/core/options.js';
import { ConfigError } from '../src/errors.js';
import { DEFAULT_STORE_URL, parseStoreUrl } from '../src/stores/from-url.js';

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
  /** Seconds the requests in flight get to finish on SIGTERM / SIGINT before they are cut. */
  shutdownGrace: number;
}

/** `SHUTDOWN_GRACE`'s default, in seconds: well inside the usual 30 s a supervisor waits before SIGKILL. */
export const DEFAULT_SHUTDOWN_GRACE = 10;

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
  if (n > MAX_DURATION_SECONDS) throw new EnvError(`${name} must be at most ${MAX_DURATION_SECONDS} seconds (100 years), got ${JSON.stringify(raw)}`);
  return n;
}

function flag(env: Env, name: string): boolean {
  const raw = value(env, name)?.toLowerCase();
  if (raw === undefined || raw === '0' || raw === 'false' || raw === 'no') return false;
  if (raw === '1' || raw === 'true' || raw === 'yes') return true;
  throw new EnvError(`${name} must be true or false, got ${JSON.stringify(raw)}`);
}

/** The library's reason, without its `coatcheck: ` prefix, for a message of our own. */
export function reason(error: Error): string {
  return error.message.replace(/^coatcheck: /, '');
}

/**
 * The STORE URL with its credentials masked (the userinfo password and secret-looking query
 * parameters), safe for logs and pages. Parses it as the library will, so a URL it would refuse
 * throws an EnvError naming STORE; the library's messages never repeat a password.
 */
export function storeDisplay(storeUrl: string): string {
  try {
    return parseStoreUrl(storeUrl).display;
  } catch (error) {
    if (error instanceof ConfigError) throw new EnvError(`STORE is not a usable store URL: ${reason(error)}`);
    throw error;
  }
}

export function readConfig(env: Env): DemoConfig {
  const rawPort = value(env, 'PORT') ?? '3000';
  const port = Number(rawPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new EnvError(`PORT must be a port number (0 picks a free one), got ${JSON.stringify(rawPort)}`);

  const storeUrl = value(env, 'STORE') ?? DEFAULT_STORE_URL;
  storeDisplay(storeUrl);

  const secure = value(env, 'COOKIE_SECURE')?.toLowerCase() ?? 'auto';
  if (secure !== 'auto' && secure !== 'true' && secure !== 'false') throw new EnvError(`COOKIE_SECURE must be auto, true or false, got ${JSON.stringify(secure)}`);

  const idleTimeout = seconds(env, 'IDLE_TIMEOUT');
  const absoluteTimeout = seconds(env, 'ABSOLUTE_TIMEOUT');
  const shutdownGrace = seconds(env, 'SHUTDOWN_GRACE') ?? DEFAULT_SHUTDOWN_GRACE;

  return {
    port,
    host: value(env, 'HOST') ?? 'localhost',
    storeUrl,
    idleTimeout,
    absoluteTimeout,
    secret: value(env, 'SECRET'),
    cookieSecure: secure === 'auto' ? 'auto' : secure === 'true',
    trustProxy: flag(env, 'TRUST_PROXY'),
    shutdownGrace,
  };
}
