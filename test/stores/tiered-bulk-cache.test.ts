/**
 * "Log out everywhere" through a tiered store whose cache is stalled or down. The cache phase of
 * destroyByUser (one tombstone per listed session) used to wait up to cacheTimeout per group of 16
 * sessions, so a user with ~100 sessions took longer than the engine's storeTimeout (a 503,
 * although the durable delete had worked). One deadline now covers the whole cache phase.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import { isTombstone, type TieredCacheOperation, tieredStore } from '../../src/stores/tiered.js';
import type { Store } from '../../src/stores/types.js';
import { makeRecord } from '../../src/testing/store-contract.js';

type Mode = 'pass' | 'stall' | 'down' | 'slow';

/**
 * A cache in front of a memory store: passes calls through, or never answers ('stall'), or fails
 * each after 20 ms ('down'), or answers each after 40 ms ('slow', well within cacheTimeout).
 */
function switchableCache(inner: Store) {
  let mode: Mode = 'pass';
  let calls = 0;
  const wrap =
    <A extends unknown[], R>(call: (...args: A) => R) =>
    async (...args: A): Promise<Awaited<R>> => {
      if (mode === 'pass') return await call(...args);
      calls++;
      if (mode === 'stall') return new Promise<never>(() => {});
      if (mode === 'slow') {
        await new Promise((resolve) => setTimeout(resolve, 40));
        return await call(...args);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
    };
  const store: Store = {
    name: 'switchable',
    get: wrap((id) => inner.get(id)),
    create: wrap((record) => inner.create(record)),
    update: wrap((id, patch) => inner.update(id, patch)),
    touch: wrap((id, times) => inner.touch(id, times)),
    destroy: wrap((id) => inner.destroy(id)),
    destroyByUser: wrap((userId, except) => inner.destroyByUser(userId, except)),
    destroyAll: wrap(() => inner.destroyAll()),
    listByUser: wrap((userId) => inner.listByUser(userId)),
    deleteExpired: wrap((sweep) => inner.deleteExpired(sweep)),
    close: () => inner.close(),
  };
  return {
    store,
    /** The memory store behind it, read directly. */
    inner,
    set mode(next: Mode) {
      mode = next;
      calls = 0;
    },
    /** Cache calls since the mode was last set (not counting passed-through ones). */
    get calls() {
      return calls;
    },
  };
}

async function setupUser(sessionsOfUser: number) {
  const cache = switchableCache(memoryStore({ sweepInterval: 0 }));
  const durable = memoryStore({ sweepInterval: 0 });
  const errors: Array<[unknown, TieredCacheOperation]> = [];
  const store = tieredStore({ cache: cache.store, durable, cacheTimeout: 150, onCacheError: (error, operation) => errors.push([error, operation]) });
  const sessions = createSessions({ store, storeTimeout: 1_000 });
  const records = Array.from({ length: sessionsOfUser }, () => makeRecord({ userId: 'frank' }));
  for (const r of records) await store.create(r); // each one cached (a fill)
  const other = makeRecord({ userId: 'grace' });
  await store.create(other);
  return { cache, durable, errors, store, sessions, records, other };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('tiered: destroyByUser with the cache stalled or down', () => {
  it('resolves within storeTimeout with the durable count when the cache never answers', async () => {
    const { cache, durable, errors, store, sessions, records, other } = await setupUser(110);
    cache.mode = 'stall';
    const started = performance.now();
    const killed = await sessions.killSessionsByUser('frank');
    const took = performance.now() - started;
    assert.equal(killed, 110, 'the durable store deleted every session');
    // Two destroyByUser calls (the engine's second pass), each with one cacheTimeout for its cache phase.
    assert.ok(took < 700, `took ${Math.round(took)} ms (cacheTimeout 150, storeTimeout 1000)`);
    assert.deepEqual((await durable.listByUser('frank')).length, 0);
    // Told once per call, not once per session.
    assert.ok(errors.length >= 1 && errors.length <= 2, `reported ${errors.length} times`);
    assert.ok(errors.every(([e, op]) => op === 'destroyByUser' && (e as { code?: string }).code === 'ERR_STORE_TIMEOUT'));
    // The cache is distrusted: this process serves from the durable store without asking it.
    const asked = cache.calls;
    assert.equal(await store.get(records[0]!.id), null);
    assert.equal((await store.get(other.id))?.userId, 'grace');
    assert.equal(cache.calls, asked, 'no cache call while distrusted');
    await sessions.close();
  });

  it('stops asking a cache that is down after the first session it can neither tombstone nor delete', async () => {
    const { cache, durable, errors, sessions } = await setupUser(110);
    cache.mode = 'down';
    const started = performance.now();
    assert.equal(await sessions.killSessionsByUser('frank'), 110);
    const took = performance.now() - started;
    assert.equal((await durable.listByUser('frank')).length, 0);
    // Before: every id tried (tombstone, then delete), 2 × 110 calls and 7 rounds of failures per call.
    assert.ok(cache.calls <= 2 * 16 + 4, `${cache.calls} cache calls`);
    assert.ok(took < 700, `took ${Math.round(took)} ms`);
    assert.ok(errors.length >= 1 && errors.length <= 2, `reported ${errors.length} times`);
    assert.match(String((errors[0]?.[0] as Error).message), /ECONNREFUSED/);
    await sessions.close();
  });

  it('still tombstones every session when the cache refuses tombstones but deletes (reported once)', async () => {
    const { cache, errors, store, records } = await setupUser(40);
    const raw = cache.store;
    // Refuses writes (Redis at maxmemory, noeviction) but deletes.
    const refused = () => Promise.reject(new Error('OOM command not allowed when used memory > maxmemory'));
    const original = { update: raw.update, create: raw.create };
    raw.update = refused;
    raw.create = refused;
    try {
      assert.equal(await store.destroyByUser('frank'), 40);
    } finally {
      Object.assign(raw, original);
    }
    assert.equal(errors.length, 1, 'one report for the call');
    for (const r of records) assert.equal(await raw.get(r.id), null, 'every cached copy deleted');
  });
  it('tombstones every listed session of a slow but working cache: the call stops waiting, the writing goes on', async () => {
    const { cache, durable, errors, store, sessions, records, other } = await setupUser(100);
    // Another app process over the same two tiers: it serves whatever snapshot the cache holds.
    const elsewhere = tieredStore({ cache: cache.store, durable, cacheTimeout: 150, closeTiers: false, onCacheError: () => {} });
    const raw = cache.inner;
    cache.mode = 'slow'; // 100 tombstones, 16 at a time, 40 ms each: about 280 ms, past cacheTimeout (150)
    const started = performance.now();
    assert.equal(await sessions.killSessionsByUser('frank'), 100);
    const took = performance.now() - started;
    assert.ok(took < 600, `took ${Math.round(took)} ms`);
    // This process does not serve them from the cache while the rest is written.
    assert.equal(await store.get(records[0]!.id), null);
    for (let deadline = performance.now() + 3_000; ; ) {
      const entries = await Promise.all(records.map((r) => raw.get(r.id)));
      if (entries.every((entry) => entry !== null && isTombstone(entry))) break;
      assert.ok(performance.now() < deadline, `${entries.filter((e) => e !== null && isTombstone(e)).length} of 100 tombstoned after 3 s`);
      await sleep(50);
    }
    cache.mode = 'pass';
    let served = 0;
    for (const r of records) if ((await elsewhere.get(r.id)) !== null) served++;
    assert.equal(served, 0, 'no killed session served by another process');
    assert.deepEqual(errors, [], 'a slow cache is not a failing one: nothing reported');
    // Nor distrusted for cacheTtl once the tombstones are written: reads use the cache again.
    cache.mode = 'slow';
    assert.equal((await store.get(other.id))?.userId, 'grace');
    assert.ok(cache.calls > 0, 'the cache was read');
    await sessions.close();
  });
});

describe('tiered: close() with destroyByUser tombstones still being written', () => {
  /** A tiered store over a cache answering each call after 40 ms; counts cache calls issued after the cache tier closed. */
  async function setupSlow(sessionsOfUser: number, cacheTimeout: number) {
    const cache = switchableCache(memoryStore({ sweepInterval: 0 }));
    const durable = memoryStore({ sweepInterval: 0 });
    const errors: Array<[unknown, TieredCacheOperation]> = [];
    const store = tieredStore({ cache: cache.store, durable, cacheTimeout, onCacheError: (error, operation) => errors.push([error, operation]) });
    const records = Array.from({ length: sessionsOfUser }, () => makeRecord({ userId: 'frank' }));
    for (const r of records) await store.create(r);
    let callsAtTierClose: number | null = null;
    const closeTier = cache.store.close.bind(cache.store);
    cache.store.close = async () => {
      callsAtTierClose = cache.calls;
      await closeTier();
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    cache.mode = 'slow';
    const tombstoned = async () => {
      let n = 0;
      for (const r of records) {
        const entry = await cache.inner.get(r.id);
        if (entry !== null && isTombstone(entry)) n++;
      }
      return n;
    };
    /** After close: no cache call issued once the cache tier closed, and no unhandled rejection. */
    const settledAfterClose = async () => {
      await sleep(300); // longer than any call in flight at close (40 ms) and than cacheTimeout
      process.off('unhandledRejection', onUnhandled);
      assert.notEqual(callsAtTierClose, null, 'the cache tier was closed');
      assert.equal(cache.calls, callsAtTierClose, 'no cache call after the cache tier closed');
      assert.deepEqual(unhandled, []);
    };
    return { errors, store, sessions: createSessions({ store, storeTimeout: 600 }), tombstoned, settledAfterClose, calls: () => cache.calls };
  }

  it('stops waiting for background tombstones after one cacheTimeout, reports them once, and closes the tiers', async () => {
    // 400 tombstones, 16 at a time, 40 ms each: about 1 s, well past cacheTimeout (150) and storeTimeout (600).
    const { errors, sessions, tombstoned, settledAfterClose } = await setupSlow(400, 150);
    assert.equal(await sessions.killSessionsByUser('frank'), 400);
    assert.equal(errors.length, 0, 'a slow cache: nothing reported by the call');
    const started = performance.now();
    await sessions.close(); // before: StoreTimeoutError (close waited for every tombstone)
    const took = performance.now() - started;
    assert.ok(took < 450, `close() took ${Math.round(took)} ms (cacheTimeout 150)`);
    assert.ok((await tombstoned()) < 400, 'some tombstones were abandoned');
    await settledAfterClose();
    assert.equal(errors.length, 1, `reported once: ${errors.map(([e]) => String(e)).join('; ')}`);
    assert.equal(errors[0]![1], 'destroyByUser');
    assert.match(String((errors[0]![0] as Error).message), /abandoned/);
  });

  it('waits for a cache phase still inside its first cacheTimeout', async () => {
    // 64 tombstones, 16 at a time: about 160 ms, within cacheTimeout (500).
    const { errors, store, tombstoned, settledAfterClose, calls } = await setupSlow(64, 500);
    const kill = store.destroyByUser('frank');
    while (calls() === 0) await sleep(5); // the durable delete is done, the cache phase has started
    await sleep(20);
    await store.close(); // before: resolved at once, and the phase went on against the closed cache
    assert.equal(await tombstoned(), 64, 'every tombstone written before the tiers closed');
    assert.equal(await kill, 64);
    await settledAfterClose();
    assert.deepEqual(errors, []);
  });

  it('bounds a long cache phase still inside its first cacheTimeout by the same cacheTimeout', async () => {
    const { errors, store, tombstoned, settledAfterClose, calls } = await setupSlow(400, 300);
    const kill = store.destroyByUser('frank');
    while (calls() === 0) await sleep(5);
    const started = performance.now();
    await store.close();
    const took = performance.now() - started;
    assert.ok(took < 550, `close() took ${Math.round(took)} ms (cacheTimeout 300)`);
    assert.ok((await tombstoned()) < 400);
    assert.equal(await kill, 400, 'the call itself still resolves with the durable count');
    await settledAfterClose();
    assert.equal(errors.length, 1, `reported once: ${errors.map(([e]) => String(e)).join('; ')}`);
    assert.match(String((errors[0]![0] as Error).message), /abandoned/);
  });
});
