/**
 * Which external services the tests may use. Under CI=true a missing service is a failure;
 * locally the suite says loudly which stores it skipped.
 */
import { Redis } from 'ioredis';
import { connect } from 'node:net';

export const REDIS_URL = process.env.COATCHECK_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const POSTGRES_URL = process.env.COATCHECK_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

function probe(url: string, timeoutMs = 1_500): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Resolves true when the service answers. When it does not: under CI=true, throws (the run fails);
 * otherwise prints a loud warning and resolves false so the caller can skip with a reason.
 */
export async function serviceAvailable(name: 'redis' | 'postgres', url = name === 'redis' ? REDIS_URL : POSTGRES_URL): Promise<boolean> {
  if (await probe(url)) return true;
  const message = `${name} is not reachable at ${url}`;
  if (process.env.CI === 'true') throw new Error(`${message} (CI=true: a missing service is a failure)`);
  console.warn(`\n!!! SKIPPING ${name.toUpperCase()} TESTS: ${message}\n`);
  return false;
}

/** Every key matching `pattern` (SCAN, never KEYS: the server is shared). */
export async function redisKeys(pattern: string, url = REDIS_URL): Promise<string[]> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1_000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
    return found;
  } finally {
    redis.disconnect();
  }
}

/** Deletes every key under `prefix` (never FLUSHDB: the server is shared). */
export async function deleteRedisPrefix(prefix: string, url = REDIS_URL): Promise<void> {
  const keys = await redisKeys(`${prefix}*`, url);
  if (keys.length === 0) return;
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    for (let i = 0; i < keys.length; i += 1_000) await redis.unlink(...keys.slice(i, i + 1_000));
  } finally {
    redis.disconnect();
  }
}
