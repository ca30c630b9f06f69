/**
 * Compiled by `npm run typecheck` with `exactOptionalPropertyTypes` on (test/types/tsconfig.json):
 * the documented examples that pass values from the environment must type-check there too.
 * Never run; type-checking it is the test.
 */
import { createSessions } from '../../src/index.js';
import { postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { sqliteStore } from '../../src/stores/sqlite.js';
import { tieredStore } from '../../src/stores/tiered.js';

export function fromEnvironment(): void {
  const durable = postgresStore({ connectionString: process.env.DATABASE_URL, table: process.env.SESSION_TABLE });
  const cache = redisStore({ url: process.env.REDIS_URL, prefix: process.env.REDIS_PREFIX });
  createSessions({ store: tieredStore({ cache, durable }) });
  createSessions({ store: sqliteStore({ path: process.env.SESSION_DB }) });
}

/** Session options, and the options of session calls, read from the environment (undefined: the default). */
export async function sessionOptionsFromEnvironment(): Promise<void> {
  const env = process.env;
  const number = (value: string | undefined) => (value === undefined ? undefined : Number(value));
  const sessions = createSessions({
    store: sqliteStore({ path: env.SESSION_DB }),
    idleTimeout: number(env.IDLE_TIMEOUT),
    absoluteTimeout: number(env.ABSOLUTE_TIMEOUT),
    trustProxy: env.TRUST_PROXY === undefined ? undefined : env.TRUST_PROXY === '1',
    cookie: { domain: env.COOKIE_DOMAIN, name: env.COOKIE_NAME, path: env.COOKIE_PATH },
    rotation: { afterSeconds: 900, grace: number(env.ROTATION_GRACE) },
    binding: { ip: undefined, userAgent: env.BIND_UA === '1' },
  });
  await sessions.clearExpired({ batchSize: number(env.BATCH), maxBatches: number(env.MAX_BATCHES), cursor: env.CURSOR });
  const session = sessions.open({ cookieHeader: undefined, https: true });
  await session.load();
  session.getSecurityKey({ lifetime: number(env.TOKEN_LIFETIME) });
  await session.reset({ keep: env.KEEP === undefined ? undefined : env.KEEP.split(',') });
  await sessions.listByUser('alice', { current: session.handle ?? undefined });
}
