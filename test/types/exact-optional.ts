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
