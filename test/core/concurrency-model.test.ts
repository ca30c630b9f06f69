/**
 * Model-based test of concurrent requests on one session. fast-check generates two to four
 * overlapping requests from one browser (each loads the session, runs a random sequence of
 * get / has / set / delete / pop / setDefault / update (merge) / clear / markChanged / in-place
 * mutation, sometimes login / logout / flush / cycleId, then commits), interleaves their load and
 * commit points at random (some of them running at the same time), runs them on the real engine
 * over every server-side store, and checks every loaded view, operation result, commit outcome
 * and stored record, and finally each session as a fresh request loads it, against the reference
 * model of the documented merge semantics in test/helpers/concurrency-model.ts.
 *
 * Left out of the model (each named where it is left out):
 * - a cycled request whose view ends empty (caseArb; fixed, test/core/cycle-emptied.test.ts);
 * - an emptied commit at the same time as others, for a record a parallel cycleId() just claimed
 *   (RunOptions.isolateEmptiedCommits; the emptied-commit window itself is fixed,
 *   test/core/emptied-window.test.ts);
 * - login() / logout() keep persistent fields from the request's own copy (below; README says so);
 * - flash messages (fixed: one key per message, test/core/flash-concurrency.test.ts; no flash
 *   operations are generated).
 *
 * A failure prints the seed; rerun with COATCHECK_MODEL_SEED=<seed>. fast-check's message gives the
 * shrunk case, and the assertion message the schedule ("&" marks points run at the same time).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import pg from 'pg';
import { createSessions, type Store } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import { postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { sqliteStore } from '../../src/stores/sqlite.js';
import { tieredStore } from '../../src/stores/tiered.js';
import { ManualClock } from '../helpers/clock.js';
import { caseArb, type Data, describeCase, runCase } from '../helpers/concurrency-model.js';
import { deleteRedisPrefix, POSTGRES_URL, REDIS_URL, serviceAvailable } from '../helpers/services.js';

const SEED = Number(process.env.COATCHECK_MODEL_SEED ?? 20261124);
const suffix = randomBytes(4).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'coatcheck-model-'));
const redisPrefix = `cc-model-${suffix}:`;
const postgresTable = `cc_model_${suffix}`;
const redisUp = await serviceAvailable('redis');
const postgresUp = await serviceAvailable('postgres');

after(() => rmSync(dir, { recursive: true, force: true }));

interface StoreUnderTest {
  name: string;
  up: boolean;
  numRuns: number;
  make(clock: ManualClock): Store;
  cleanup(): Promise<void>;
}

const stores: StoreUnderTest[] = [
  {
    name: 'memory',
    up: true,
    numRuns: 500,
    make: (clock) => memoryStore({ clock, sweepInterval: 0 }),
    cleanup: async () => undefined,
  },
  {
    name: 'sqlite',
    up: true,
    numRuns: 400,
    make: () => sqliteStore({ path: join(dir, 'sessions.db') }),
    cleanup: async () => undefined,
  },
  {
    name: 'tiered (memory cache over sqlite)',
    up: true,
    numRuns: 400,
    make: (clock) =>
      tieredStore({ cache: memoryStore({ clock, sweepInterval: 0 }), durable: sqliteStore({ path: join(dir, 'tiered.db') }), clock }),
    cleanup: async () => undefined,
  },
  {
    name: 'redis',
    up: redisUp,
    numRuns: 300,
    make: () => redisStore({ url: REDIS_URL, prefix: redisPrefix }),
    cleanup: () => deleteRedisPrefix(redisPrefix),
  },
  {
    name: 'postgres',
    up: postgresUp,
    numRuns: 250,
    make: (clock) => postgresStore({ connectionString: POSTGRES_URL, table: postgresTable, clock }),
    cleanup: async () => {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        await client.query(`DROP TABLE IF EXISTS ${postgresTable}`);
      } finally {
        await client.end();
      }
    },
  },
];

for (const { name, up, numRuns, make, cleanup } of stores) {
  describe(`concurrent requests on one session, model-based: ${name}`, { skip: !up && `${name} not reachable` }, () => {
    it(`agrees with the reference model on interleaved loads and commits (${numRuns} schedules)`, async () => {
      // The clock stands still at the wall-clock time (native TTLs agree): no idle-timer touches.
      const clock = new ManualClock(Date.now());
      const store = make(clock);
      // No persistent fields. Finding (stale persistent fields): login() / logout() keep the
      // whitelisted keys from the request's own copy, loaded when it began, so a value a parallel
      // request saved before the reset is replaced by the older one. Left out until decided.
      const sessions = createSessions<Data>({ store, clock, persistentFieldsOnLogin: [], persistentFieldsOnLogout: [] });
      try {
        await fc.assert(
          fc.asyncProperty(caseArb({ lifecycle: true }), async (c) => {
            try {
              await runCase(sessions, store, c);
            } catch (error) {
              if (error instanceof Error) error.message += `\n  schedule: ${describeCase(c)}`;
              throw error;
            }
          }),
          { seed: SEED, numRuns },
        );
      } catch (error) {
        console.error(`concurrency model on ${name} failed: seed ${SEED} (rerun with COATCHECK_MODEL_SEED=${SEED})`);
        throw error;
      } finally {
        await sessions.close();
        await cleanup();
      }
    });
  });
}
