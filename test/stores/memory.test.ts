import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { memoryStore } from '../../src/stores/memory.js';
import { makeRecord, testStore } from '../../src/testing/store-contract.js';

testStore('memory', { create: () => memoryStore() });

describe('memoryStore', () => {
  it('frees expired records in the background even if never read again', async () => {
    let now = 1_000_000;
    const store = memoryStore({ sweepInterval: 5, clock: { now: () => now } });
    await store.create(makeRecord({ createdAt: now, lastSeenAt: now, expiresAt: now + 100 }));
    await store.create(makeRecord({ createdAt: now, lastSeenAt: now, expiresAt: now + 10_000 }));
    assert.equal(store.size, 2);
    now += 200;
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(store.size, 1);
    await store.close();
  });

  it('evicts the least recently used record past maxEntries', async () => {
    const store = memoryStore({ maxEntries: 2, sweepInterval: 0 });
    const a = makeRecord();
    const b = makeRecord();
    const c = makeRecord();
    await store.create(a);
    await store.create(b);
    await store.get(a.id); // a is now more recent than b
    await store.create(c);
    assert.ok(await store.get(a.id));
    assert.equal(await store.get(b.id), null);
    assert.ok(await store.get(c.id));
  });

  it('does not keep the process alive', async () => {
    // The sweep timer is unref'd: a store that is never closed must not hold the event loop.
    const { spawnSync } = await import('node:child_process');
    const code = `import { memoryStore } from './src/stores/memory.ts'; memoryStore({ sweepInterval: 10 });`;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { timeout: 10_000 });
    assert.equal(result.status, 0, String(result.stderr));
  });

  it('keeps memory bounded when sweeps stop after one batch and are never resumed', async () => {
    // What cleanupProbability does: clearExpired({ maxBatches: 1 }) per run, cursor abandoned.
    // Each abandoned cursor used to be kept forever, pinning the Map's outgrown hash tables and
    // the deleted sessions in them (about 10 MB per round here, over 200 MB in all).
    const { spawnSync } = await import('node:child_process');
    const code = `
      import { memoryStore } from './src/stores/memory.ts';
      import { createSessions } from './src/index.ts';
      import { makeRecord } from './src/testing/store-contract.ts';
      const store = memoryStore({ sweepInterval: 0 });
      const sessions = createSessions({ store, secret: 'x'.repeat(32) });
      const big = 'x'.repeat(2000);
      const expired = Date.now() - 1;
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 4000; i++) await store.create(makeRecord({ data: { big: big + round + i }, expiresAt: expired }));
        await sessions.clearExpired({ maxBatches: 1, batchSize: 1000 });
        await sessions.clearExpired();
      }
      globalThis.gc();
      console.log(JSON.stringify({ size: store.size, heapMB: process.memoryUsage().heapUsed / 1e6 }));
      await sessions.close();`;
    const result = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', code], { timeout: 60_000, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    const { size, heapMB } = JSON.parse(result.stdout) as { size: number; heapMB: number };
    assert.equal(size, 0);
    assert.ok(heapMB < 100, `heap after gc: ${heapMB.toFixed(1)} MB`);
  });

  it('an evicted or unknown sweep cursor starts over and still deletes every expired record', async () => {
    const store = memoryStore({ sweepInterval: 0 });
    const now = Date.now();
    const expired = Array.from({ length: 30 }, () => makeRecord({ expiresAt: now - 1 }));
    const live = makeRecord();
    for (const r of [...expired, live]) await store.create(r);
    const first = await store.deleteExpired({ before: now, limit: 5 });
    assert.equal(first.deleted, 5);
    assert.notEqual(first.cursor, null);
    // More abandoned sweeps than the store keeps cursors for: the first one is evicted.
    for (let i = 0; i < 10; i++) assert.equal((await store.deleteExpired({ before: now, limit: 1 })).deleted, 1);
    let cursor = first.cursor;
    let deleted = 15;
    for (let calls = 0; cursor !== null; calls++) {
      assert.ok(calls < 20, 'the sweep must end');
      const result = await store.deleteExpired({ before: now, limit: 5, cursor });
      deleted += result.deleted;
      cursor = result.cursor;
    }
    assert.equal(deleted, 30);
    assert.equal(store.size, 1);
    assert.ok(await store.get(live.id));
    await store.close();
  });

  it('refuses nonsense options at setup', () => {
    assert.throws(() => memoryStore({ maxEntries: 0 }), /maxEntries/);
    assert.throws(() => memoryStore({ sweepInterval: -1 }), /sweepInterval/);
  });

  it('refuses a sweepInterval past setTimeout\'s limit (it would sweep every millisecond)', async () => {
    for (const sweepInterval of [Infinity, 2 ** 31, 1e12]) {
      assert.throws(() => memoryStore({ sweepInterval }), (error: unknown) => error instanceof ConfigError && /sweepInterval/.test(error.message) && /2147483647/.test(error.message));
    }
    // 0 keeps its documented meaning (no background sweep); the limit itself is fine.
    await memoryStore({ sweepInterval: 0 }).close();
    await memoryStore({ sweepInterval: 2 ** 31 - 1 }).close();
  });
});
