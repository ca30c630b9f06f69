import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster, type Redis } from 'ioredis';
import { redisStore } from '../../src/stores/redis.js';
import type { Store } from '../../src/stores/types.js';
import { makeRecord, testStore } from '../../src/testing/store-contract.js';
import { redisServerInstalled, startRedisCluster, type TestCluster } from '../helpers/redis-cluster.js';

const installed = redisServerInstalled();
if (!installed && process.env.CI === 'true') throw new Error('redis-server is not installed (CI=true: a missing service is a failure)');
if (!installed) console.warn('\n!!! SKIPPING REDIS CLUSTER TESTS: redis-server / redis-cli not found on PATH\n');

/** Keys under `pattern`, per master node. */
async function keysPerMaster(cluster: Cluster, pattern: string): Promise<number[]> {
  const counts: number[] = [];
  for (const node of cluster.nodes('master') as Redis[]) {
    let cursor = '0';
    let count = 0;
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      count += keys.length;
    } while (cursor !== '0');
    counts.push(count);
  }
  return counts;
}

if (!installed) {
  describe('redisStore on a Redis Cluster', { skip: 'redis-server not installed' }, () => {});
} else {
  let testCluster: TestCluster | undefined;
  let client: Cluster | undefined;
  const prefix = 'cc-cluster:';

  before(async () => {
    testCluster = await startRedisCluster();
    client = new Cluster(testCluster.nodes, {
      // What docs/stores/redis.md recommends for app-owned clients: fail fast when a node is down.
      redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 5_000, connectTimeout: 5_000 },
      clusterRetryStrategy: (times) => (times > 3 ? null : 100 * times),
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('cluster client not ready within 10 s')), 10_000);
      client?.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  });

  // Always tear the cluster down, even when a test or the startup failed.
  after(async () => {
    client?.disconnect();
    await testCluster?.stop();
  });

  testStore('redis cluster', { create: () => redisStore({ client: client as Cluster, prefix: `${prefix}contract:` }) });

  describe('redisStore on a Redis Cluster', () => {
    let store: Store;
    before(() => {
      store = redisStore({ client: client as Cluster, prefix: `${prefix}spread:` });
    });
    after(async () => {
      await store?.destroyAll();
      await store?.close();
    });

    it('lists and kills one user\'s sessions spread over every master', async () => {
      const now = Date.now();
      const records = Array.from({ length: 30 }, (_, i) => makeRecord({ userId: 'spread-user', createdAt: now - 30_000 + i }));
      for (const r of records) await store.create(r);
      await store.create(makeRecord({ userId: 'someone-else' }));
      const perNode = await keysPerMaster(client as Cluster, `${prefix}spread:s:*`);
      assert.equal(perNode.length, 3);
      assert.ok(perNode.every((n) => n > 0), `sessions per master: ${perNode.join(', ')}`);

      const listed = await store.listByUser('spread-user');
      assert.deepEqual(listed.map((s) => s.id), records.map((r) => r.id));

      const keep = records[7] as (typeof records)[number];
      assert.equal(await store.destroyByUser('spread-user', [keep.id]), 29);
      for (const r of records) assert.equal((await store.get(r.id)) !== null, r.id === keep.id);
      assert.deepEqual((await store.listByUser('spread-user')).map((s) => s.id), [keep.id]);
      assert.equal((await store.listByUser('someone-else')).length, 1);
    });

    it('destroyAll and guest kills reach every master', async () => {
      await store.destroyAll();
      const guests = Array.from({ length: 20 }, () => makeRecord({ userId: null }));
      const users = Array.from({ length: 20 }, (_, i) => makeRecord({ userId: `user-${i % 4}` }));
      for (const r of [...guests, ...users]) await store.create(r);
      assert.ok((await keysPerMaster(client as Cluster, `${prefix}spread:*`)).every((n) => n > 0));

      assert.equal(await store.destroyByUser(null, [guests[0]?.id ?? '']), 19);
      assert.ok(await store.get(guests[0]?.id ?? ''));
      for (const r of users) assert.ok(await store.get(r.id));

      assert.equal(await store.destroyAll(), 21);
      assert.deepEqual(await keysPerMaster(client as Cluster, `${prefix}spread:*`), [0, 0, 0]);
    });

    it('fails a kill-all step when a node cannot report the slot map, and resumes from the same cursor', async () => {
      await store.destroyAll();
      const records = Array.from({ length: 60 }, () => makeRecord({ userId: null }));
      for (const r of records) await store.create(r);
      const step = store.destroyStep as NonNullable<Store['destroyStep']>;
      const first = await step({ guestsOnly: false, limit: 10, cursor: null });
      assert.notEqual(first.cursor, null, 'the walk is under way');
      // CLUSTER SLOTS refused (an ACL) stands for a node that cannot answer mid-walk.
      const masters = (client as Cluster).nodes('master') as Redis[];
      for (const node of masters) await node.call('ACL', 'SETUSER', 'default', '-cluster|slots');
      try {
        await assert.rejects(step({ guestsOnly: false, limit: 10, cursor: first.cursor }), /NOPERM|permission/i);
      } finally {
        for (const node of masters) await node.call('ACL', 'SETUSER', 'default', '+@all');
      }
      let cursor = first.cursor;
      while (cursor !== null) cursor = (await step({ guestsOnly: false, limit: 10, cursor })).cursor;
      let alive = 0;
      for (const r of records) if ((await store.get(r.id)) !== null) alive++;
      assert.equal(alive, 0);
    });
  });
}
