/**
 * Per-session size limits under parallel requests on one cookie (a review's finding): each request
 * checked `maxDataSize`, the 50 one-time tokens and the 100 flash messages against its own view
 * only, and the stores merge saves key by key, so N parallel requests each passed and their changes
 * added up (a 28.6 MiB session under a 64 KiB limit with 500 requests on the memory store; 349
 * tokens, 399 flashes and a 134 KB record with 300 on Redis). Now the store checks the size bound
 * atomically with each save (SessionPatch.maxBytes): the extra requests get the same 413 as the
 * engine's own check, and a commit trims what it loaded back to the token and flash caps.
 *
 * Every request below loads the session before any of them commits: each sees the record as it
 * was, as N requests arriving at once would.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { createSessions, SessionTooLargeError, type Session, type Sessions, type SessionsOptions, type Store } from '../../src/index.js';
import { connectStore } from '../../src/stores/connect.js';
import { memoryStore } from '../../src/stores/memory.js';
import { postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { sqliteStore } from '../../src/stores/sqlite.js';
import { tieredStore } from '../../src/stores/tiered.js';
import { recordBytes } from '../../src/stores/types.js';
import type { JsonValue } from '../../src/types.js';
import { ManualClock } from '../helpers/clock.js';
import { deleteRedisPrefix, POSTGRES_URL, REDIS_URL, serviceAvailable } from '../helpers/services.js';
import session from 'express-session';

const suffix = randomBytes(4).toString('hex');
const redisUp = await serviceAvailable('redis');
const postgresUp = await serviceAvailable('postgres');
const redisPrefix = `cc-size-${suffix}:`;
/** The PostgreSQL store's tables go in a schema of this file's own, dropped at the end. */
const pgSchema = `cc_size_${suffix}`;

interface StoreUnderTest {
  name: string;
  up: boolean;
  /** Requests sent at once in the review's scenario. */
  parallel: number;
  make(): Store | Promise<Store>;
}

const stores: StoreUnderTest[] = [
  { name: 'memory', up: true, parallel: 500, make: () => memoryStore({ sweepInterval: 0 }) },
  { name: 'sqlite', up: true, parallel: 500, make: () => sqliteStore({ path: ':memory:' }) },
  { name: 'tiered (memory over sqlite)', up: true, parallel: 200, make: () => tieredStore({ cache: memoryStore({ sweepInterval: 0 }), durable: sqliteStore({ path: ':memory:' }) }) },
  { name: 'connect (express-session MemoryStore)', up: true, parallel: 200, make: () => connectStore(new session.MemoryStore()) },
  { name: 'redis', up: redisUp, parallel: 300, make: () => redisStore({ url: REDIS_URL, prefix: redisPrefix }) },
  {
    name: 'postgres',
    up: postgresUp,
    parallel: 100,
    make: async () => {
      const admin = new pg.Client({ connectionString: POSTGRES_URL });
      await admin.connect();
      await admin.query(`CREATE SCHEMA IF NOT EXISTS ${pgSchema}`);
      await admin.end();
      return postgresStore({ connectionString: POSTGRES_URL, schema: pgSchema, table: `sessions_${randomBytes(3).toString('hex')}`, maxConnections: 20 });
    },
  },
];

after(async () => {
  if (redisUp) await deleteRedisPrefix(redisPrefix);
  if (postgresUp) {
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS ${pgSchema} CASCADE`);
    await admin.end();
  }
});

type S = Session<Record<string, JsonValue>>;
type App = ReturnType<typeof app>;

async function withSessions(store: Store, options: Partial<SessionsOptions>, run: (t: App) => Promise<void>): Promise<void> {
  const sessions = createSessions<Record<string, JsonValue>>({ store, ...options });
  try {
    await run(app(sessions, store));
  } finally {
    await sessions.close();
  }
}

function app(sessions: Sessions<Record<string, JsonValue>>, store: Store) {
  let cookie: string | null = null;
  let handle: string | null = null;
  const open = (): S => sessions.open({ cookieHeader: cookie, https: false, ip: '192.0.2.1', userAgent: 'size-test' });
  const take = (setCookie: string[] | undefined) => {
    const value = setCookie?.[0]?.split(';')[0];
    if (value !== undefined && !value.endsWith('=')) cookie = value;
  };
  return {
    /** One request, alone. */
    async visit<R>(fn: (s: S) => R | Promise<R>): Promise<R> {
      const s = open();
      await s.load();
      const value = await fn(s);
      take((await s.commit(200))?.setCookie);
      handle = s.handle ?? handle;
      return value;
    },
    /** `n` requests on the current cookie: all load, then each runs `fn`, then all commit at once. */
    async parallel(n: number, fn: (s: S, i: number) => void): Promise<PromiseSettledResult<unknown>[]> {
      const all = Array.from({ length: n }, open);
      await Promise.all(all.map((s) => s.load()));
      all.forEach((s, i) => fn(s, i));
      return Promise.allSettled(all.map((s) => s.commit(200)));
    },
    /** The stored record of the session. */
    async record() {
      const record = await store.get(handle as string);
      assert.ok(record, 'the session is still stored');
      return record;
    },
  };
}

function tally(results: PromiseSettledResult<unknown>[]): { saved: number; tooLarge: number; other: unknown[] } {
  let saved = 0;
  let tooLarge = 0;
  const other: unknown[] = [];
  for (const result of results) {
    if (result.status === 'fulfilled') saved++;
    else if (result.reason instanceof SessionTooLargeError && result.reason.code === 'ERR_TOO_LARGE' && result.reason.status === 413) tooLarge++;
    else other.push(result.reason);
  }
  return { saved, tooLarge, other };
}

for (const { name, up, parallel, make } of stores) {
  describe(`size limits under parallel requests on one cookie: ${name}`, { skip: !up && `${name} not reachable` }, () => {
    it(`${parallel} parallel requests each adding 60 KB under the 64 KiB maxDataSize: one is saved, the others get 413, the record stays within the limit`, async () => {
      const store = await make();
      await withSessions(store, {}, async (t) => {
        await t.visit((s) => s.set('cart', ['apple']));
        const results = await t.parallel(parallel, (s, i) => s.set(`upload${i}`, 'x'.repeat(60_000)));
        const { saved, tooLarge, other } = tally(results);
        assert.deepEqual(other, [], 'no other failure (never a 503)');
        assert.equal(saved, 1);
        assert.equal(tooLarge, parallel - 1);
        const record = await t.record();
        assert.ok(recordBytes(record.data, record.meta) <= 65_536, `the record holds ${recordBytes(record.data, record.meta)} bytes`);
        // The session works on: a request that removes the upload saves, and then one fits again.
        await t.visit((s) => {
          for (const key of s.keys()) if (key.startsWith('upload')) s.delete(key);
        });
        await t.visit((s) => s.set('again', 'y'.repeat(60_000)));
        assert.equal((await t.record()).data.again, 'y'.repeat(60_000));
      });
    });

    it('small keys from many requests fill the session exactly up to maxDataSize, never past it', async () => {
      const store = await make();
      const limit = 8_192;
      await withSessions(store, { maxDataSize: limit }, async (t) => {
        await t.visit((s) => s.set('seed', 1));
        const n = Math.min(parallel, 100);
        const results = await t.parallel(n, (s, i) => s.set(`k${String(i).padStart(3, '0')}`, 'v'.repeat(496)));
        const { saved, tooLarge, other } = tally(results);
        assert.deepEqual(other, []);
        // seed: 4 + 1 bytes; each key 4 + 498.
        assert.equal(saved, Math.floor((limit - 5) / 502));
        assert.equal(tooLarge, n - saved);
        const record = await t.record();
        assert.ok(recordBytes(record.data, record.meta) <= limit);
      });
    });

    const many = Math.max(parallel, 150);
    it(`${many} parallel one-time tokens and flash messages: within the byte bound they may land, and the next request, even one that only reads, trims them to the caps (50, 100)`, async () => {
      const store = await make();
      await withSessions(store, {}, async (t) => {
        await t.visit((s) => s.set('user', 'ada'));
        const results = await t.parallel(many, (s, i) => {
          s.getSecurityKey();
          s.flash(`message ${i}`);
        });
        assert.deepEqual(tally(results).other, []);
        const piled = await t.record();
        assert.ok(recordBytes(piled.data, piled.meta) <= 65_536, 'the byte bound holds meanwhile');
        assert.ok(Object.keys(piled.meta).filter((key) => key.startsWith('flash.')).length > 100, 'more than the cap landed');
        // The next request, even one that only reads, trims what it loaded back to the caps.
        await t.visit((s) => s.get('user'));
        const record = await t.record();
        const tokens = Object.keys(record.meta).filter((key) => key.startsWith('otk.'));
        const flashes = Object.keys(record.meta).filter((key) => key.startsWith('flash.'));
        assert.ok(tokens.length <= 50, `${tokens.length} one-time tokens kept`);
        assert.ok(flashes.length <= 100, `${flashes.length} flash messages kept`);
        // A token issued now is kept (never the one to go), and spends once.
        const issued = await t.visit((s) => s.getSecurityKey());
        assert.equal(await t.visit((s) => s.validateSecurityKey(issued)), true);
        assert.equal(await t.visit((s) => s.validateSecurityKey(issued)), false);
        const shown = await t.visit((s) => s.consumeFlashes());
        assert.equal(shown.length, 100);
      });
    });
  });
}

describe('parallel size limits: a session over its caps is trimmed by a request that only reads', () => {
  it('tokens soonest-expiring first (never one this request issued), flashes oldest first', async () => {
    const store = memoryStore({ sweepInterval: 0 });
    const clock = new ManualClock(Date.now());
    await withSessions(store, { clock }, async (t) => {
      await t.visit((s) => s.set('user', 'ada'));
      // 80 tokens with lifetimes 80..1 s, each request adding one: all land (each fits alone).
      await t.parallel(80, (s, i) => s.getSecurityKey({ lifetime: 80 - i }));
      const before = await t.record();
      assert.equal(Object.keys(before.meta).filter((key) => key.startsWith('otk.')).length, 80);
      // Then 130 flash messages the same way: each of these requests trims the tokens it loaded.
      await t.parallel(130, (s, i) => {
        clock.advance(0.001);
        s.flash(`m${String(i).padStart(3, '0')}`);
      });
      const after = await t.record();
      const kept = Object.entries(after.meta)
        .filter(([key]) => key.startsWith('otk.'))
        .map(([, value]) => (value as { until: number }).until);
      assert.equal(kept.length, 50);
      const cut = Math.min(...kept);
      const dropped = Object.entries(before.meta).filter(([key]) => key.startsWith('otk.') && !(key in after.meta));
      assert.equal(dropped.length, 30);
      assert.ok(dropped.every(([, value]) => (value as { until: number }).until < cut), 'the soonest-expiring went');
      assert.equal(Object.keys(after.meta).filter((key) => key.startsWith('flash.')).length, 130);
      // A request that only reads trims the flashes: the oldest go.
      await t.visit((s) => s.get('user'));
      assert.equal(Object.keys((await t.record()).meta).filter((key) => key.startsWith('flash.')).length, 100);
      const shown = await t.visit((s) => s.consumeFlashes().map((f) => f.message));
      assert.equal(shown.length, 100);
      assert.equal(shown[0], 'm030');
      assert.equal(shown[99], 'm129');
    });
  });
});

describe('a rotation whose carry-over meets parallel saves near the limit', () => {
  it('keeps every save (none refused after the claim) and leaves the session over the limit by at most its own changes; growing it further is refused', async () => {
    const clock = new ManualClock();
    const store = memoryStore({ sweepInterval: 0, clock });
    const sessions = createSessions<Record<string, JsonValue>>({ store, clock, maxDataSize: 1000 });
    const open = (cookie: string | null) => sessions.open({ cookieHeader: cookie ?? undefined, https: false });
    const cookieOf = (setCookie: string[] | undefined) => setCookie?.[0]?.split(';')[0] ?? null;
    const first = open(null);
    await first.load();
    await first.login('alice');
    first.set('base', 'b'.repeat(380));
    const cookie = cookieOf((await first.commit(200))?.setCookie);
    const parallel = open(cookie);
    const rotating = open(cookie);
    await parallel.load();
    await rotating.load();
    parallel.set('fromP', 'p'.repeat(330)); // within the limit on its own
    rotating.set('fromR', 'r'.repeat(330)); // so is this, but not both
    await rotating.rotate();
    assert.ok(await parallel.commit(200));
    const rotated = cookieOf((await rotating.commit(200))?.setCookie);
    assert.ok(rotated !== null && rotated !== cookie, 'the rotation went through, with its new cookie');
    const after = await open(rotated).load();
    assert.deepEqual([after.userId, after.keys().sort()], ['alice', ['base', 'fromP', 'fromR']], 'nothing lost');
    const grow = open(rotated);
    await grow.load();
    grow.set('more', 'm');
    await assert.rejects(grow.commit(200), { code: 'ERR_TOO_LARGE' });
    const shrink = open(rotated);
    await shrink.load();
    shrink.delete('fromP');
    assert.ok(await shrink.commit(200), 'a save that makes it smaller passes');
    await sessions.close();
  });
});
