/**
 * The tiered store with a Redis cache: a cache entry lives `cacheTtl`, not the session's age.
 * (A review found that a fill copied the durable record's old lastSeenAt, and the Redis store's
 * time to live, expiresAt − lastSeenAt, then kept the entry for 20 minutes instead of 1 s; every
 * refill after the entry's own expiry was refused as a conflict and read the durable store.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { memoryStore } from '../../src/stores/memory.js';
import { redisStore } from '../../src/stores/redis.js';
import { tieredStore } from '../../src/stores/tiered.js';
import type { Store } from '../../src/stores/types.js';
import { makeRecord } from '../../src/testing/store-contract.js';
import { REDIS_URL, serviceAvailable } from '../helpers/services.js';

const redisUp = await serviceAvailable('redis');

describe('tiered store with a Redis cache', { skip: redisUp ? false : 'Redis not reachable' }, () => {
  const prefix = `tiered-ttl-${randomBytes(4).toString('hex')}:`;
  const admin = redisUp ? new Redis(REDIS_URL) : null;
  after(async () => {
    if (!admin) return;
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await admin.unlink(...keys);
    } while (cursor !== '0');
    admin.disconnect();
  });

  it('a filled entry expires after cacheTtl, and serves the record\'s own lastSeenAt', async () => {
    const durable = memoryStore({ sweepInterval: 0 });
    let durableGets = 0;
    const counting = Object.assign(Object.create(durable) as Store, {
      get: (id: string) => {
        durableGets++;
        return durable.get(id);
      },
    });
    const store = tieredStore({ cache: redisStore({ url: REDIS_URL, prefix }), durable: counting, cacheTtl: 1_000 });
    try {
      const now = Date.now();
      const record = makeRecord({ createdAt: now - 30 * 60_000, lastSeenAt: now - 20 * 60_000, expiresAt: now + 10 * 60_000 });
      await durable.create(record);
      assert.equal((await store.get(record.id))?.lastSeenAt, record.lastSeenAt); // a miss: filled
      await new Promise((resolve) => setTimeout(resolve, 50)); // the fill is not awaited by get
      const pttl = await (admin as Redis).pttl(`${prefix}s:{${record.id}}`);
      assert.ok(pttl > 0 && pttl <= 1_000, `cache entry PTTL ${pttl} ms (cacheTtl 1000)`);
      assert.equal((await store.get(record.id))?.lastSeenAt, record.lastSeenAt, 'served from the cache with the real lastSeenAt');
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      durableGets = 0;
      for (let i = 0; i < 5; i++) await store.get(record.id);
      assert.equal(durableGets, 1, 'one durable read refills the cache; the next four are cache hits');
    } finally {
      await store.close();
    }
  });
});
