import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, CorruptRecordError } from '../../src/errors.js';
import { memoryStore } from '../../src/stores/memory.js';
import { isTombstone, type TieredCacheOperation, tieredStore } from '../../src/stores/tiered.js';
import type { Awaitable, SessionRecord, Store } from '../../src/stores/types.js';
import { makeRecord, randomId, testStore } from '../../src/testing/store-contract.js';
import { createSessions } from '../../src/index.js';
import { redisStore } from '../../src/stores/redis.js';
import { REDIS_URL, redisKeys, serviceAvailable } from '../helpers/services.js';

testStore('tiered (memory + memory)', { create: () => tieredStore({ cache: memoryStore(), durable: memoryStore() }) });

type Method = Exclude<keyof Store, 'name'>;
const METHODS: Method[] = ['get', 'create', 'update', 'touch', 'destroy', 'destroyByUser', 'destroyAll', 'listByUser', 'deleteExpired', 'close'];
const WRITES: Method[] = ['create', 'update', 'touch', 'destroy', 'destroyByUser', 'destroyAll'];

interface Hold {
  /** Resolves when the held call has arrived (for `after`: once the inner store answered). */
  reached: Promise<void>;
  release(): void;
}

/**
 * A fault injector around a real store: counts calls, rejects the methods named in `fail`, and
 * can pause the next call of a method (before or after the inner store runs it) until released.
 */
interface Instrumented extends Store {
  readonly inner: Store;
  readonly calls: Record<Method, number>;
  readonly fail: Set<Method>;
  holdNext(method: Method, when: 'before' | 'after'): Hold;
}

function instrument(inner: Store): Instrumented {
  const calls = Object.fromEntries(METHODS.map((m) => [m, 0])) as Record<Method, number>;
  const fail = new Set<Method>();
  const holds = new Map<Method, { when: 'before' | 'after'; arrive: () => void; gate: Promise<void> }>();

  async function run<T>(method: Method, call: () => Awaitable<T>): Promise<T> {
    calls[method]++;
    if (fail.has(method)) throw new Error(`injected ${method} failure`);
    const hold = holds.get(method);
    if (hold) holds.delete(method);
    if (hold?.when === 'before') {
      hold.arrive();
      await hold.gate;
    }
    const result = await call();
    if (hold?.when === 'after') {
      hold.arrive();
      await hold.gate;
    }
    return result;
  }

  return {
    name: `instrumented-${inner.name}`,
    inner,
    calls,
    fail,
    holdNext(method, when) {
      let arrive!: () => void;
      let release!: () => void;
      const reached = new Promise<void>((resolve) => (arrive = resolve));
      const gate = new Promise<void>((resolve) => (release = resolve));
      holds.set(method, { when, arrive, gate });
      return { reached, release };
    },
    get: (id) => run('get', () => inner.get(id)),
    create: (record) => run('create', () => inner.create(record)),
    update: (id, patch) => run('update', () => inner.update(id, patch)),
    touch: (id, times) => run('touch', () => inner.touch(id, times)),
    destroy: (id) => run('destroy', () => inner.destroy(id)),
    destroyByUser: (userId, except) => run('destroyByUser', () => inner.destroyByUser(userId, except)),
    destroyAll: () => run('destroyAll', () => inner.destroyAll()),
    listByUser: (userId) => run('listByUser', () => inner.listByUser(userId)),
    deleteExpired: (sweep) => run('deleteExpired', () => inner.deleteExpired(sweep)),
    close: () => run('close', () => inner.close()),
  };
}

function writeCalls(store: Instrumented): number {
  return WRITES.reduce((sum, m) => sum + store.calls[m], 0);
}

function manualClock(start = Date.now()) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

/** One "process": its own tiered store (and wrappers) over the shared cache and durable store. */
function processOver(sharedCache: Store, sharedDurable: Store, extra: { clock?: { now(): number }; tombstoneTtl?: number; cacheTtl?: number } = {}) {
  const cache = instrument(sharedCache);
  const durable = instrument(sharedDurable);
  const errors: Array<[unknown, TieredCacheOperation]> = [];
  const store = tieredStore({
    cache,
    durable,
    closeTiers: false,
    onCacheError: (error, operation) => errors.push([error, operation]),
    ...extra,
  });
  return { store, cache, durable, errors };
}

function setup(options: { cacheTtl?: number; tombstoneTtl?: number; clock?: ReturnType<typeof manualClock>; maxEntries?: number } = {}) {
  const clock = options.clock ?? manualClock();
  const rawCache = memoryStore({ clock, sweepInterval: 0, maxEntries: options.maxEntries });
  const rawDurable = memoryStore({ clock, sweepInterval: 0 });
  const cache = instrument(rawCache);
  const durable = instrument(rawDurable);
  const errors: Array<[unknown, TieredCacheOperation]> = [];
  const store = tieredStore({
    cache,
    durable,
    clock,
    cacheTtl: options.cacheTtl,
    tombstoneTtl: options.tombstoneTtl,
    onCacheError: (error, operation) => errors.push([error, operation]),
  });
  return { store, cache, durable, rawCache, rawDurable, errors, clock };
}

function recordAt(clock: { now(): number }, overrides: Partial<SessionRecord> = {}): SessionRecord {
  const now = clock.now();
  return makeRecord({ createdAt: now, lastSeenAt: now, expiresAt: now + 3_600_000, ...overrides });
}

function hasInternalKeys(record: SessionRecord): boolean {
  return Object.keys(record.meta).some((k) => k.startsWith('@'));
}

describe('tieredStore', () => {
  it('is named after its tiers', () => {
    const store = tieredStore({ cache: memoryStore(), durable: memoryStore() });
    assert.equal(store.name, 'tiered(memory+memory)');
  });

  it('serves reads from the cache once filled', async () => {
    const { store, durable, rawDurable, clock } = setup();
    // Written through this store: the create fills the cache.
    const created = recordAt(clock);
    await store.create(created);
    for (let i = 0; i < 3; i++) assert.deepEqual(await store.get(created.id), created);
    assert.equal(durable.calls.get, 0);

    // Written elsewhere: the first read goes to the durable store and fills the cache.
    const elsewhere = recordAt(clock, { data: { from: 'elsewhere' } });
    await rawDurable.create(elsewhere);
    for (let i = 0; i < 3; i++) assert.deepEqual(await store.get(elsewhere.id), elsewhere);
    assert.equal(durable.calls.get, 1);
  });

  it('does not cache a miss', async () => {
    const { store, cache, durable } = setup();
    const id = randomId();
    assert.equal(await store.get(id), null);
    assert.equal(await store.get(id), null);
    assert.equal(durable.calls.get, 2);
    assert.equal(cache.calls.create, 0);
  });

  it('serves from the durable store when the cache is down, and reports it', async () => {
    const { store, cache, durable, rawDurable, errors, clock } = setup();
    const record = recordAt(clock);
    await rawDurable.create(record);
    cache.fail.add('get');
    assert.deepEqual(await store.get(record.id), record);
    assert.equal(durable.calls.get, 1);
    assert.deepEqual(errors.map(([, op]) => op), ['get']);
    assert.equal(cache.calls.create, 0, 'no fill is attempted right after a cache failure');
  });

  it('treats an undecodable cache entry as a miss, but a corrupt durable record as the error it is', async () => {
    const { store, cache, durable, rawDurable, errors, clock } = setup();
    const record = recordAt(clock);
    await rawDurable.create(record);
    const cacheGet = cache.inner.get;
    (cache as { get: Store['get'] }).get = async () => {
      throw new CorruptRecordError('memory', 'bad bytes');
    };
    assert.deepEqual(await store.get(record.id), record);
    assert.equal(errors[0]?.[1], 'get');
    (cache as { get: Store['get'] }).get = cacheGet;

    (durable as { get: Store['get'] }).get = async () => {
      throw new CorruptRecordError('memory', 'bad row');
    };
    await assert.rejects(async () => store.get(randomId()), CorruptRecordError);
  });

  it('keeps the data when the cache fails on writes; the writes resolve', async () => {
    const { store, cache, rawDurable, errors, clock } = setup();
    for (const m of WRITES) cache.fail.add(m);
    const record = recordAt(clock, { userId: 'u' });
    await store.create(record);
    assert.deepEqual(await rawDurable.get(record.id), record);
    assert.equal(await store.update(record.id, { data: { set: { a: 2 } }, lastSeenAt: clock.now(), expiresAt: clock.now() + 60_000 }), true);
    assert.equal((await rawDurable.get(record.id))?.data.a, 2);
    assert.equal(await store.touch(record.id, { lastSeenAt: clock.now(), expiresAt: clock.now() + 90_000 }), true);
    assert.equal((await rawDurable.get(record.id))?.expiresAt, clock.now() + 90_000);
    assert.equal(await store.destroyByUser('u', [record.id]), 0);
    await store.destroy(record.id);
    assert.equal(await rawDurable.get(record.id), null);
    await rawDurable.create(recordAt(clock));
    assert.equal(await store.destroyAll(), 1);
    assert.deepEqual(
      errors.map(([, op]) => op),
      // A failed tombstone is followed by a plain delete, which fails here too: reported twice.
      ['create', 'update', 'update', 'touch', 'touch', 'destroyByUser', 'destroy', 'destroy', 'destroyAll'],
    );
  });

  it('rejects when the durable store fails on a write; invalidates the cache unless nothing was attempted', async () => {
    const { store, cache, durable, rawCache, clock } = setup();
    const record = recordAt(clock, { userId: 'u' });
    await store.create(record); // cached
    for (const m of WRITES) durable.fail.add(m);
    durable.fail.add('listByUser');
    const now = clock.now();
    // Nothing written anywhere: a failed create fills nothing, a failed listing deletes nothing.
    let before = writeCalls(cache);
    await assert.rejects(store.create(recordAt(clock)), /injected create/);
    await assert.rejects(store.destroyByUser('u'), /injected listByUser/);
    assert.equal(writeCalls(cache), before, 'no cache write when no durable write was attempted');
    assert.ok(!isTombstone((await rawCache.get(record.id)) as SessionRecord), 'still cached');
    // A failed write may still have been applied (see the next test): each one invalidates.
    durable.fail.delete('listByUser');
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['update', async () => store.update(record.id, { data: { set: { a: 9 } }, lastSeenAt: now, expiresAt: now + 1 })],
      ['touch', async () => store.touch(record.id, { lastSeenAt: now, expiresAt: now + 1 })],
      ['destroy', () => store.destroy(record.id)],
      ['destroyByUser', () => store.destroyByUser('u')],
      ['destroyAll', () => store.destroyAll()],
    ];
    for (const [method, attempt] of attempts) {
      clock.advance(10_000); // the previous tombstone lapses: the read fills the cache again
      assert.deepEqual(await store.get(record.id), record);
      assert.ok(!isTombstone((await rawCache.get(record.id)) as SessionRecord), `${method}: cached before`);
      before = writeCalls(cache);
      await assert.rejects(attempt, new RegExp(`injected ${method}`));
      assert.ok(writeCalls(cache) > before, `${method}: the cache was invalidated`);
      const raw = await rawCache.get(record.id);
      assert.ok(raw === null || isTombstone(raw), `${method}: nothing servable is cached`);
    }
    // The durable store was not changed, so reads still find the record there.
    assert.deepEqual(await store.get(record.id), record);
  });

  it('a durable write that fails but was applied is not hidden by the cache', async () => {
    // A write whose answer is lost (client-side timeout, dropped connection) after the server
    // committed it: the cache must not keep serving the old record for up to cacheTtl.
    const { store, durable, rawDurable, clock } = setup();
    const lost = (method: 'update' | 'touch' | 'destroy') => {
      const inner = durable[method] as (...args: never[]) => Awaitable<unknown>;
      (durable as unknown as Record<string, unknown>)[method] = async (...args: never[]) => {
        await inner(...args);
        throw new Error(`${method}: query read timeout`);
      };
    };
    const now = clock.now();
    const a = recordAt(clock, { data: { v: 1 } });
    const b = recordAt(clock);
    const c = recordAt(clock);
    for (const r of [a, b, c]) {
      await store.create(r);
      assert.ok(await store.get(r.id), 'precondition: cached');
    }
    lost('update');
    lost('touch');
    lost('destroy');
    await assert.rejects(async () => store.update(a.id, { data: { set: { v: 2 } }, lastSeenAt: now, expiresAt: now + 60_000 }), /timeout/);
    await assert.rejects(async () => store.touch(b.id, { lastSeenAt: now, expiresAt: now + 90_000 }), /timeout/);
    await assert.rejects(store.destroy(c.id), /timeout/);
    assert.deepEqual((await store.get(a.id))?.data, { v: 2 });
    assert.equal((await store.get(b.id))?.expiresAt, now + 90_000);
    assert.equal(await store.get(c.id), null);
    assert.equal(await rawDurable.get(c.id), null);
  });

  it('a durable read failure rejects (never "no session")', async () => {
    const { store, durable } = setup();
    durable.fail.add('get');
    await assert.rejects(async () => store.get(randomId()), /injected get/);
  });

  it('update of a session the cache does not hold writes no partial record there', async () => {
    const { store, rawCache, rawDurable, clock } = setup();
    const record = recordAt(clock, { data: { a: 1, b: 2 } });
    await rawDurable.create(record);
    const now = clock.now();
    assert.equal(await store.update(record.id, { data: { set: { a: 10 } }, lastSeenAt: now, expiresAt: now + 60_000 }), true);
    const raw = await rawCache.get(record.id);
    assert.ok(raw === null || isTombstone(raw), 'only a tombstone may be there');
    assert.deepEqual((await store.get(record.id))?.data, { a: 10, b: 2 });
  });

  it('update or touch that finds no durable record returns false and stops the cache serving it', async () => {
    const { store, rawDurable, clock } = setup();
    const a = recordAt(clock);
    const b = recordAt(clock);
    await store.create(a);
    await store.create(b);
    // Deleted behind the cache's back (another process whose cache step failed).
    await rawDurable.destroy(a.id);
    await rawDurable.destroy(b.id);
    assert.ok(await store.get(a.id), 'precondition: the cache still serves it');
    const now = clock.now();
    assert.equal(await store.update(a.id, { data: { set: { x: 1 } }, lastSeenAt: now, expiresAt: now + 60_000 }), false);
    assert.equal(await store.touch(b.id, { lastSeenAt: now, expiresAt: now + 60_000 }), false);
    assert.equal(await store.get(a.id), null);
    assert.equal(await store.get(b.id), null);
  });

  it('never returns a tombstone, and strips cache-internal meta keys', async () => {
    const { store, rawCache, rawDurable, clock } = setup();
    const record = recordAt(clock, { meta: { csrf: 'x', '@engine': 1, '@@odd': 2 } });
    await store.create(record);
    const served = await store.get(record.id);
    assert.deepEqual(served, record, 'engine meta keys starting with @ survive the cache');
    await store.destroy(record.id);
    const raw = await rawCache.get(record.id);
    assert.ok(raw && isTombstone(raw), 'the cache holds a tombstone');
    assert.equal(await store.get(record.id), null);
    // Even if the id were written again in the durable store, the tombstone is not what is served.
    await rawDurable.create(record);
    const again = await store.get(record.id);
    assert.deepEqual(again, record);
    assert.ok(again && !isTombstone(again));
  });

  it('caps a cache entry\'s life at cacheTtl while the record keeps its real expiresAt', async () => {
    const clock = manualClock();
    const { store, rawCache, rawDurable, durable } = setup({ clock, cacheTtl: 60_000 });
    const record = recordAt(clock, { expiresAt: clock.now() + 3_600_000 });
    await rawDurable.create(record);
    const loaded = await store.get(record.id);
    assert.equal(loaded?.expiresAt, record.expiresAt);
    assert.equal(loaded && hasInternalKeys(loaded), false);
    const raw = await rawCache.get(record.id);
    assert.equal(raw?.expiresAt, clock.now() + 60_000, 'the cache entry expires at fill + cacheTtl');
    assert.equal(raw?.meta['@expiresAt'], record.expiresAt);

    clock.advance(59_000);
    assert.equal((await store.get(record.id))?.expiresAt, record.expiresAt);
    assert.equal(durable.calls.get, 1);
    clock.advance(2_000);
    assert.equal((await store.get(record.id))?.expiresAt, record.expiresAt);
    assert.equal(durable.calls.get, 2, 'past cacheTtl the record is read again from the durable store');
    assert.equal((await rawCache.get(record.id))?.expiresAt, clock.now() + 60_000, 'and refilled');
  });

  it('a cache entry never outlives its record', async () => {
    const clock = manualClock();
    const { store, rawCache } = setup({ clock, cacheTtl: 60_000 });
    const record = recordAt(clock, { expiresAt: clock.now() + 10_000 });
    await store.create(record);
    assert.equal((await rawCache.get(record.id))?.expiresAt, record.expiresAt);
  });

  it('does not serve an entry the cache returns past its expiry (cache clock lagging)', async () => {
    const clock = manualClock();
    let lag = 0;
    const rawCache = memoryStore({ clock: { now: () => clock.now() - lag }, sweepInterval: 0 });
    const durable = instrument(memoryStore({ clock, sweepInterval: 0 }));
    const store = tieredStore({ cache: rawCache, durable, clock, cacheTtl: 60_000 });
    const record = recordAt(clock);
    await store.create(record);
    lag = 30_000;
    clock.advance(61_000); // the cache thinks 31 s passed; the entry is 61 s old
    assert.ok(await rawCache.get(record.id), 'the lagging cache still returns it');
    assert.deepEqual(await store.get(record.id), record);
    assert.equal(durable.calls.get, 1, 'served from the durable store instead');
  });

  it('tombstones an entry a lagging cache still holds past its expiry (which update refuses)', async () => {
    const clock = manualClock();
    let lag = 0;
    const rawCache = memoryStore({ clock: { now: () => clock.now() - lag }, sweepInterval: 0 });
    const errors: Array<[unknown, TieredCacheOperation]> = [];
    const store = tieredStore({
      cache: rawCache,
      durable: memoryStore({ clock, sweepInterval: 0 }),
      clock,
      cacheTtl: 60_000,
      onCacheError: (error, operation) => errors.push([error, operation]),
    });
    const record = recordAt(clock);
    await store.create(record); // the cache entry expires 60 s from now
    lag = 30_000;
    clock.advance(61_000); // expired by our clock, not yet by the cache's: update refuses it, create finds it
    assert.equal(await store.update(record.id, { data: { set: { a: 1 } }, lastSeenAt: clock.now(), expiresAt: clock.now() + 60_000 }), true);
    assert.deepEqual(errors, []);
    const raw = await rawCache.get(record.id);
    assert.ok(raw && isTombstone(raw), 'a tombstone replaced the entry');
  });

  it('does not fill from a durable read that took too long', async () => {
    const clock = manualClock();
    const { store, durable, rawDurable, rawCache } = setup({ clock, tombstoneTtl: 4_000 });
    const record = recordAt(clock);
    await rawDurable.create(record);
    const hold = durable.holdNext('get', 'after');
    const pending = store.get(record.id);
    await hold.reached;
    clock.advance(2_000); // half of tombstoneTtl: a tombstone placed meanwhile might lapse before the fill lands
    hold.release();
    assert.deepEqual(await pending, record);
    assert.equal(await rawCache.get(record.id), null);
    await store.get(record.id);
    assert.ok(await rawCache.get(record.id), 'a prompt read fills');
  });

  it('a destroy in one process is seen at once by another sharing the tiers', async () => {
    const sharedCache = memoryStore();
    const sharedDurable = memoryStore();
    const a = processOver(sharedCache, sharedDurable);
    const b = processOver(sharedCache, sharedDurable);
    const record = makeRecord({ userId: 'alice' });
    await a.store.create(record);
    assert.deepEqual(await b.store.get(record.id), record);
    assert.equal(b.durable.calls.get, 0, 'B is served from the shared cache');
    await a.store.destroy(record.id);
    assert.equal(await b.store.get(record.id), null);

    // Log out everywhere, from B; A's cached copies stop being served.
    const s1 = makeRecord({ userId: 'bob' });
    const s2 = makeRecord({ userId: 'bob' });
    const keep = makeRecord({ userId: 'bob' });
    for (const r of [s1, s2, keep]) await a.store.create(r);
    for (const r of [s1, s2, keep]) assert.ok(await a.store.get(r.id));
    assert.equal(await b.store.destroyByUser('bob', [keep.id]), 2);
    assert.equal(await a.store.get(s1.id), null);
    assert.equal(await a.store.get(s2.id), null);
    assert.deepEqual(await a.store.get(keep.id), keep);
  });

  it('an update in one process is seen by another, whatever the cache held', async () => {
    const sharedCache = memoryStore();
    const sharedDurable = memoryStore();
    const a = processOver(sharedCache, sharedDurable);
    const b = processOver(sharedCache, sharedDurable);
    const record = makeRecord({ data: { k: 'start' } });
    await a.store.create(record);
    assert.equal((await b.store.get(record.id))?.data.k, 'start');
    // Two processes write the same key; the durable store's order is the only one that counts.
    const now = Date.now();
    await a.store.update(record.id, { data: { set: { k: 'from-a' } }, lastSeenAt: now, expiresAt: now + 60_000 });
    await b.store.update(record.id, { data: { set: { k: 'from-b' } }, lastSeenAt: now, expiresAt: now + 60_000 });
    assert.equal((await sharedDurable.get(record.id))?.data.k, 'from-b');
    assert.equal((await a.store.get(record.id))?.data.k, 'from-b');
    assert.equal((await b.store.get(record.id))?.data.k, 'from-b');
    assert.equal(a.cache.calls.update + b.cache.calls.update, 2, 'the cache only ever got tombstones, never the patches');
  });

  it('re-caches the durable state once the tombstone lapses', async () => {
    const clock = manualClock();
    const { store, rawCache, durable } = setup({ clock, tombstoneTtl: 5_000 });
    const record = recordAt(clock, { data: { v: 1 } });
    await store.create(record);
    await store.update(record.id, { data: { set: { v: 2 } }, lastSeenAt: clock.now(), expiresAt: clock.now() + 3_600_000 });
    assert.equal((await store.get(record.id))?.data.v, 2);
    assert.equal((await store.get(record.id))?.data.v, 2);
    assert.equal(durable.calls.get, 2, 'while the tombstone stands, reads go to the durable store');
    clock.advance(5_001);
    assert.equal((await store.get(record.id))?.data.v, 2);
    const raw = await rawCache.get(record.id);
    assert.ok(raw && !isTombstone(raw), 'refilled');
    assert.equal((await store.get(record.id))?.data.v, 2);
    assert.equal(durable.calls.get, 3);
  });

  it('fill-after-destroy race: B read the durable store before A destroyed, fills after', async () => {
    const sharedCache = memoryStore();
    const sharedDurable = memoryStore();
    const a = processOver(sharedCache, sharedDurable);
    const b = processOver(sharedCache, sharedDurable);
    const record = makeRecord();
    await sharedDurable.create(record); // not cached yet

    const hold = b.durable.holdNext('get', 'after');
    const bRead = b.store.get(record.id);
    await hold.reached; // B has the record in hand, not yet in the cache
    await a.store.destroy(record.id); // durable delete, then tombstone
    hold.release(); // B now tries to fill
    assert.deepEqual(await bRead, record, 'B\'s read was concurrent with the destroy: the old value is fine');

    assert.equal(await b.store.get(record.id), null, 'no stale session is served');
    assert.equal(await a.store.get(record.id), null);
    const raw = await sharedCache.get(record.id);
    assert.ok(raw && isTombstone(raw), 'B\'s fill was refused by the tombstone');
  });

  it('fill-after-destroy race: B\'s fill lands between A\'s tombstone steps', async () => {
    const sharedCache = memoryStore();
    const sharedDurable = memoryStore();
    const a = processOver(sharedCache, sharedDurable);
    const b = processOver(sharedCache, sharedDurable);
    const record = makeRecord();
    await sharedDurable.create(record);

    const bHold = b.durable.holdNext('get', 'after');
    const bRead = b.store.get(record.id);
    await bHold.reached;
    // A has deleted the durable record and found nothing to turn into a tombstone; pause it there.
    const aHold = a.cache.holdNext('create', 'before');
    const aDestroy = a.store.destroy(record.id);
    await aHold.reached;
    assert.equal(await sharedDurable.get(record.id), null);
    bHold.release();
    await bRead;
    const filled = await sharedCache.get(record.id);
    assert.ok(filled && !isTombstone(filled), 'B\'s stale fill landed');
    aHold.release();
    await aDestroy; // A's create conflicts, so it deletes B's entry and places its tombstone
    assert.deepEqual(a.errors, []);
    const raw = await sharedCache.get(record.id);
    assert.ok(raw && isTombstone(raw));
    assert.equal(await b.store.get(record.id), null);
  });

  it('fill-after-logout-everywhere race: destroyByUser tombstones each session it deletes', async () => {
    const sharedCache = memoryStore();
    const sharedDurable = memoryStore();
    const a = processOver(sharedCache, sharedDurable);
    const b = processOver(sharedCache, sharedDurable);
    const record = makeRecord({ userId: 'carol' });
    await sharedDurable.create(record);
    const hold = b.durable.holdNext('get', 'after');
    const bRead = b.store.get(record.id);
    await hold.reached;
    assert.equal(await a.store.destroyByUser('carol'), 1);
    hold.release();
    await bRead;
    assert.equal(await b.store.get(record.id), null);
    assert.equal(await a.store.get(record.id), null);
  });

  it('fill-after-update race: B\'s older snapshot is not cached over A\'s update', async () => {
    const sharedCache = memoryStore();
    const sharedDurable = memoryStore();
    const a = processOver(sharedCache, sharedDurable);
    const b = processOver(sharedCache, sharedDurable);
    const record = makeRecord({ data: { v: 1 } });
    await sharedDurable.create(record);
    const hold = b.durable.holdNext('get', 'after');
    const bRead = b.store.get(record.id);
    await hold.reached;
    const now = Date.now();
    await a.store.update(record.id, { data: { set: { v: 2 } }, lastSeenAt: now, expiresAt: now + 60_000 });
    hold.release();
    assert.equal((await bRead)?.data.v, 1);
    assert.equal((await b.store.get(record.id))?.data.v, 2);
    assert.equal((await a.store.get(record.id))?.data.v, 2);
  });

  it('destroyAll race in one process: a fill that read before it is dropped', async () => {
    const { store, durable, rawDurable, rawCache, clock } = setup();
    const record = recordAt(clock);
    await rawDurable.create(record);
    const hold = durable.holdNext('get', 'after');
    const read = store.get(record.id);
    await hold.reached;
    assert.equal(await store.destroyAll(), 1);
    hold.release();
    await read;
    assert.equal(await rawCache.get(record.id), null);
    assert.equal(await store.get(record.id), null);
  });

  it('destroyAll race across processes: the documented window, bounded by cacheTtl', async () => {
    const clock = manualClock();
    const sharedCache = memoryStore({ clock, sweepInterval: 0 });
    const sharedDurable = memoryStore({ clock, sweepInterval: 0 });
    const a = processOver(sharedCache, sharedDurable, { clock });
    const b = processOver(sharedCache, sharedDurable, { clock });
    const record = recordAt(clock);
    await sharedDurable.create(record);
    const hold = b.durable.holdNext('get', 'after');
    const bRead = b.store.get(record.id);
    await hold.reached;
    await a.store.destroyAll(); // no per-id tombstones: there is no list of ids to write them for
    hold.release();
    await bRead;
    assert.ok(await a.store.get(record.id), 'the stale fill is served: this is the known window');
    clock.advance(300_000);
    assert.equal(await a.store.get(record.id), null, 'but not past cacheTtl');
  });

  it('a lost invalidation (cache writes failing) is bounded by cacheTtl in other processes, and not served in its own', async () => {
    const clock = manualClock();
    const sharedCache = memoryStore({ clock, sweepInterval: 0 });
    const sharedDurable = memoryStore({ clock, sweepInterval: 0 });
    const a = processOver(sharedCache, sharedDurable, { clock, cacheTtl: 30_000 });
    const b = processOver(sharedCache, sharedDurable, { clock, cacheTtl: 30_000 });
    const record = recordAt(clock, { data: { v: 1 } });
    await a.store.create(record);
    assert.equal((await b.store.get(record.id))?.data.v, 1);
    for (const m of ['update', 'create', 'destroy'] as const) a.cache.fail.add(m);
    await a.store.update(record.id, { data: { set: { v: 2 } }, lastSeenAt: clock.now(), expiresAt: clock.now() + 3_600_000 });
    assert.deepEqual(a.errors.map(([, op]) => op), ['update', 'update']);
    const cacheReads = a.cache.calls.get;
    assert.equal((await a.store.get(record.id))?.data.v, 2, 'the process that lost it reads the durable store');
    assert.equal(a.cache.calls.get, cacheReads, 'without asking the cache');
    assert.equal((await b.store.get(record.id))?.data.v, 1, 'the documented window: another process is served the stale copy');
    clock.advance(30_000);
    assert.equal((await b.store.get(record.id))?.data.v, 2, 'but never past cacheTtl');
    a.cache.fail.clear();
    assert.equal((await a.store.get(record.id))?.data.v, 2);
    assert.equal(a.cache.calls.get, cacheReads + 1, 'and the cache is read again after cacheTtl');
  });

  it('invalidates the cache when destroyIfEmpty fails, as it may have deleted before failing', async () => {
    const clock = manualClock();
    const rawDurable = memoryStore({ clock, sweepInterval: 0 });
    const durable: Store = {
      ...rawDurable,
      async destroyIfEmpty(id, ignored) {
        await (rawDurable.destroyIfEmpty as NonNullable<Store['destroyIfEmpty']>)(id, ignored);
        throw new Error('connection lost after the DELETE committed');
      },
    };
    const store = tieredStore({ cache: memoryStore({ clock, sweepInterval: 0 }), durable, clock, onCacheError: () => {} });
    const record = recordAt(clock, { data: {} });
    await store.create(record);
    assert.ok(await store.get(record.id));
    await assert.rejects(async () => (store.destroyIfEmpty as NonNullable<Store['destroyIfEmpty']>)(record.id, []), /after the DELETE committed/);
    assert.equal(await store.get(record.id), null, 'the applied delete is not hidden by the cached copy');
  });

  it('drops the entry when the cache refuses tombstones but still deletes (Redis at maxmemory, noeviction)', async () => {
    const clock = manualClock();
    const sharedCache = memoryStore({ clock, sweepInterval: 0 });
    const sharedDurable = memoryStore({ clock, sweepInterval: 0 });
    const a = processOver(sharedCache, sharedDurable, { clock });
    const b = processOver(sharedCache, sharedDurable, { clock });
    const record = recordAt(clock, { userId: 'alice', data: { cart: 1 } });
    await a.store.create(record);
    assert.equal((await b.store.get(record.id))?.userId, 'alice');
    a.cache.fail.add('update');
    a.cache.fail.add('create');
    await a.store.update(record.id, { data: { set: { cart: 2 } }, lastSeenAt: clock.now(), expiresAt: clock.now() + 3_600_000 });
    assert.equal((await b.store.get(record.id))?.data.cart, 2, 'no stale copy after a write that resolved');
    await a.store.destroy(record.id);
    assert.equal(await b.store.get(record.id), null, 'nor after a logout');
    assert.deepEqual(a.errors.map(([, op]) => op), ['update', 'destroy']);
  });

  it('destroyAll empties both tiers; listByUser and deleteExpired use the durable store', async () => {
    const clock = manualClock();
    const { store, cache, rawCache, rawDurable } = setup({ clock });
    const r1 = recordAt(clock, { userId: 'dan' });
    const r2 = recordAt(clock, { expiresAt: clock.now() + 1_000 });
    await store.create(r1);
    await store.create(r2);
    assert.deepEqual((await store.listByUser('dan')).map((s) => s.id), [r1.id]);
    assert.equal(cache.calls.listByUser, 0);
    assert.deepEqual(await store.deleteExpired({ before: clock.now() + 2_000, limit: 10 }), { deleted: 1, cursor: null });
    assert.equal(cache.calls.deleteExpired, 0);
    assert.equal(await store.get(r2.id), null, 'a record the sweep deleted is not served from the cache');
    assert.equal(await store.destroyAll(), 1);
    assert.equal(await rawCache.get(r1.id), null);
    assert.equal(await rawDurable.get(r1.id), null);
  });

  it('works with a size-bounded cache that evicts', async () => {
    const { store, clock } = setup({ maxEntries: 2 });
    const records = Array.from({ length: 5 }, () => recordAt(clock));
    for (const r of records) await store.create(r);
    for (const r of records) assert.deepEqual(await store.get(r.id), r);
  });

  it('treats a cache that does not answer as failed after cacheTimeout', async () => {
    const cache = instrument(memoryStore());
    const durable = instrument(memoryStore());
    const errors: Array<[unknown, TieredCacheOperation]> = [];
    const store = tieredStore({ cache, durable, cacheTimeout: 20, onCacheError: (e, op) => errors.push([e, op]) });
    const record = makeRecord();
    await store.create(record);
    const hungGet = cache.holdNext('get', 'before');
    assert.deepEqual(await store.get(record.id), record, 'served from the durable store');
    const hungUpdate = cache.holdNext('update', 'before');
    const now = Date.now();
    assert.equal(await store.update(record.id, { data: { set: { v: 2 } }, lastSeenAt: now, expiresAt: now + 60_000 }), true);
    assert.deepEqual(
      errors.map(([e, op]) => [op, (e as { code?: string }).code]),
      [
        ['get', 'ERR_STORE_TIMEOUT'],
        ['update', 'ERR_STORE_TIMEOUT'],
      ],
    );
    hungGet.release();
    hungUpdate.release();
  });

  it('by default warns once about cache failures', async () => {
    const warnings: Error[] = [];
    const listener = (warning: Error) => warnings.push(warning);
    process.on('warning', listener);
    try {
      const cache = instrument(memoryStore());
      cache.fail.add('get');
      const store = tieredStore({ cache, durable: memoryStore() });
      await store.get(randomId());
      await store.get(randomId());
      await new Promise((resolve) => setImmediate(resolve));
      const ours = warnings.filter((w) => (w as { code?: string }).code === 'COATCHECK_TIERED_CACHE');
      assert.equal(ours.length, 1);
      assert.match(ours[0]?.message ?? '', /cache failed during get/);
    } finally {
      process.off('warning', listener);
    }
  });

  it('ignores an onCacheError that throws', async () => {
    const cache = instrument(memoryStore());
    cache.fail.add('get');
    const store = tieredStore({
      cache,
      durable: memoryStore(),
      onCacheError: () => {
        throw new Error('reporter broke');
      },
    });
    const record = makeRecord();
    await store.create(record);
    assert.deepEqual(await store.get(record.id), record);
  });

  it('closes both tiers by default, neither with closeTiers: false', async () => {
    const cache = instrument(memoryStore());
    const durable = instrument(memoryStore());
    await tieredStore({ cache, durable }).close();
    assert.equal(cache.calls.close, 1);
    assert.equal(durable.calls.close, 1);
    await tieredStore({ cache, durable, closeTiers: false }).close();
    assert.equal(cache.calls.close, 1);
    assert.equal(durable.calls.close, 1);
    cache.fail.add('close');
    await assert.rejects(tieredStore({ cache, durable }).close(), /injected close/);
    assert.equal(durable.calls.close, 2, 'the durable store is closed even if the cache fails to close');
  });

  it('refuses nonsense options at setup', () => {
    const cache = memoryStore();
    const durable = memoryStore();
    assert.throws(() => tieredStore({ cache, durable: cache }), /different/);
    assert.throws(() => tieredStore({ cache, durable, cacheTtl: 0 }), /cacheTtl/);
    assert.throws(() => tieredStore({ cache, durable, cacheTtl: Infinity }), /cacheTtl/);
    assert.throws(() => tieredStore({ cache, durable, tombstoneTtl: -1 }), /tombstoneTtl/);
    assert.throws(() => tieredStore({ cache, durable, cacheTimeout: 0 }), /cacheTimeout/);
    assert.throws(() => tieredStore({ cache, durable: undefined as unknown as Store }), /required/);
  });

  it('refuses a finite cacheTimeout past setTimeout\'s limit (it would time out every cache call after 1 ms)', () => {
    const cache = memoryStore({ sweepInterval: 0 });
    const durable = memoryStore({ sweepInterval: 0 });
    for (const cacheTimeout of [2 ** 31, 1e12, Number.MAX_VALUE]) {
      assert.throws(() => tieredStore({ cache, durable, cacheTimeout }), (error: unknown) => error instanceof ConfigError && /cacheTimeout/.test(error.message) && /2147483647/.test(error.message));
    }
    // Infinity keeps its documented meaning (no timer), and the limit itself is fine.
    assert.doesNotThrow(() => tieredStore({ cache, durable, cacheTimeout: Infinity }));
    assert.doesNotThrow(() => tieredStore({ cache, durable, cacheTimeout: 2 ** 31 - 1 }));
  });
});

describe('tiered: ending every session with a Redis cache', { skip: !(await serviceAvailable('redis')) && 'Redis not reachable' }, () => {
  it('clears the whole cache in bounded steps, so no killed session is served from it', async () => {
    const prefix = `cc-tiered-kill-${randomId().slice(0, 8)}:`;
    const cache = redisStore({ url: REDIS_URL, prefix });
    const store = tieredStore({ cache, durable: memoryStore({ sweepInterval: 0 }) });
    const sessions = createSessions({ store });
    const calls: string[] = [];
    sessions.metrics.onStoreCall((call) => calls.push(call.operation));
    try {
      const records = Array.from({ length: 2500 }, (_, i) => makeRecord({ userId: i % 3 === 0 ? null : `kill-${i % 5}` }));
      for (const r of records) await store.create(r);
      // Read through once so every session is cached.
      for (const r of records.slice(0, 50)) assert.ok(await store.get(r.id));
      assert.equal(await sessions.killSessionsByUser('__guest__'), 834);
      assert.equal(await store.get(records[0]!.id), null);
      assert.ok(await store.get(records[1]!.id));
      assert.equal(await sessions.killSessionsByUser(), 1666);
      assert.ok(calls.filter((c) => c === 'destroyStep').length >= 4, `durable and cache steps: ${calls.join(',')}`);
      for (const r of records.slice(0, 50)) assert.equal(await store.get(r.id), null);
      assert.deepEqual(await redisKeys(`${prefix}s:*`), [], 'no session left in the cache');
    } finally {
      await store.close();
      await cache.close();
    }
  });
});

describe('tiered: ending every session when the durable step fails or is given up on', () => {
  async function setup(durableAll: (inner: Store) => Promise<number>, storeTimeout = 5_000) {
    const durable = memoryStore({ sweepInterval: 0 });
    const cache = memoryStore({ sweepInterval: 0 });
    const flaky: Store = Object.assign(Object.create(durable) as Store, { name: 'flaky', destroyAll: () => durableAll(durable) });
    const store = tieredStore({ cache, durable: flaky, onCacheError: () => {} });
    const sessions = createSessions({ store, storeTimeout });
    const record = makeRecord({ userId: 'alice' });
    await store.create(record);
    assert.ok(await store.get(record.id), 'served (and cached)');
    assert.ok(await cache.get(record.id), 'the cache holds a snapshot');
    return { sessions, store, cache, durable, record };
  }

  it('clears the cache when the durable delete fails after deleting (a connection lost after commit)', async () => {
    const { sessions, store, cache, durable, record } = await setup(async (inner) => {
      await inner.destroyAll();
      throw new Error('connection reset after commit');
    });
    await assert.rejects(sessions.killSessionsByUser(), /connection reset after commit/);
    assert.equal(await durable.get(record.id), null, 'the durable delete happened');
    assert.equal(await cache.get(record.id), null, 'and the cache no longer holds the killed session');
    assert.equal(await store.get(record.id), null);
    await sessions.close();
  });

  it('arms nothing for a step that finishes after close()', async () => {
    let release = (): void => {};
    const durable = memoryStore({ sweepInterval: 0 });
    const reported: string[] = [];
    const slow: Store = Object.assign(Object.create(durable) as Store, {
      name: 'slow',
      destroyAll: () => new Promise<number>((resolve) => (release = () => resolve(durable.destroyAll() as unknown as number))),
    });
    const inner = memoryStore({ sweepInterval: 0 });
    const cache: Store = Object.assign(Object.create(inner) as Store, {
      name: 'watched',
      destroyAll: () => {
        reported.push('destroyAll');
        return inner.destroyAll();
      },
    });
    const store = tieredStore({ cache, durable: slow });
    const step = store.destroyStep!({ guestsOnly: false, limit: 100, cursor: null });
    await store.close();
    release();
    await step;
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    assert.deepEqual(reported, [], 'no cache clear was attempted on the closed store');
  });

  it('clears the cache when the engine gave up waiting (storeTimeout) and never asks for the cache step', async () => {
    const { sessions, store, cache, record } = await setup(async (inner) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return inner.destroyAll();
    }, 100);
    await assert.rejects(sessions.killSessionsByUser(), { code: 'ERR_STORE_TIMEOUT' });
    // The durable delete lands at 300 ms; the walk counts as abandoned 1 s after it.
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    assert.equal(await cache.get(record.id), null, 'the abandoned walk cleared the cache');
    assert.equal(await store.get(record.id), null);
    await sessions.close();
  });
});
