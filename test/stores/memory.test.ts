import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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

  it('refuses nonsense options at setup', () => {
    assert.throws(() => memoryStore({ maxEntries: 0 }), /maxEntries/);
    assert.throws(() => memoryStore({ sweepInterval: -1 }), /sweepInterval/);
  });
});
