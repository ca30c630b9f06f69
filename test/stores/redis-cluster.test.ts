import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import { createSessions } from '../../src/index.js';
import { redisStore } from '../../src/stores/redis.js';
import type { SessionRecord, Store } from '../../src/stores/types.js';
import { makeRecord, testStore } from '../../src/testing/store-contract.js';
import { idsInSlot, redisServerInstalled, startRedisCluster, type TestCluster } from '../helpers/redis-cluster.js';

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
    for (const node of direct.values()) node.disconnect();
    await testCluster?.stop();
  });

  /** Connections of the tests' own to each master, by port (not ioredis' pool, which may lack one). */
  const direct = new Map<number, Redis>();
  function node(port: number): Redis {
    let redis = direct.get(port);
    if (!redis) {
      redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
      direct.set(port, redis);
    }
    return redis;
  }
  /** The masters' ports in the order a walk visits them (by address). */
  function ports(): number[] {
    return (testCluster as TestCluster).nodes.map((n) => n.port).sort((a, b) => a - b);
  }
  /** Keys under `pattern` on every master, counted over the tests' own connections. */
  async function countKeys(pattern: string): Promise<number> {
    let count = 0;
    for (const port of ports()) {
      let cursor = '0';
      do {
        const [next, keys] = await node(port).scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        count += keys.length;
      } while (cursor !== '0');
    }
    return count;
  }
  async function createAll(store: Store, records: SessionRecord[]): Promise<void> {
    for (let i = 0; i < records.length; i += 200) await Promise.all(records.slice(i, i + 200).map((r) => store.create(r)));
  }

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
      // CLUSTER NODES refused (an ACL) stands for a node that cannot answer mid-walk.
      const masters = (client as Cluster).nodes('master') as Redis[];
      for (const node of masters) await node.call('ACL', 'SETUSER', 'default', '-cluster|nodes');
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

  describe('redisStore on a Redis Cluster: a master whose connection dropped', () => {
    const prefix2 = `${prefix}dropped:`;
    let store: Store;
    before(() => {
      store = redisStore({ client: client as Cluster, prefix: prefix2 });
    });
    after(async () => {
      await store?.destroyAll();
      await store?.close();
    });

    /**
     * Ends the Cluster client's connection to the last master (CLIENT KILL: an idle timeout or a
     * network blip does the same), and waits until ioredis has dropped it from its pool, where it
     * stays until a command is routed there.
     */
    async function dropLastMaster(): Promise<void> {
      const port = ports()[2] as number;
      await node(port).call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      const deadline = Date.now() + 3_000;
      while ((client as Cluster).nodes('master').some((n) => n.options.port === port)) {
        assert.ok(Date.now() < deadline, 'ioredis dropped the master from its pool');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }

    it('stats, guest kills, destroyAll and killSessionsByUser still reach that master', async () => {
      const guests = Array.from({ length: 150 }, () => makeRecord({ userId: null }));
      const users = Array.from({ length: 150 }, (_, i) => makeRecord({ userId: `dropped-${i % 10}` }));
      await createAll(store, [...guests, ...users]);
      const pattern = `${prefix2}s:*`;
      assert.equal(await countKeys(pattern), 300);

      await dropLastMaster();
      const stats = await (store.stats as NonNullable<Store['stats']>)(Date.now());
      assert.equal(stats.sessions, 300, 'stats counted every session');
      assert.equal(stats.guests, 150);

      await dropLastMaster();
      assert.equal(await store.destroyByUser(null), 150, 'destroyByUser(null) killed every guest');
      assert.equal(await countKeys(pattern), 150);

      await dropLastMaster();
      assert.equal(await store.destroyAll(), 150, 'destroyAll killed every session');
      assert.equal(await countKeys(pattern), 0);

      // Through the engine: killSessionsByUser walks in destroyStep steps.
      const sessions = createSessions({ store });
      await createAll(store, [...guests, ...users].map((r) => ({ ...r })));
      await dropLastMaster();
      assert.equal(await sessions.killSessionsByUser('__guest__'), 150);
      await dropLastMaster();
      assert.equal(await sessions.killSessionsByUser(), 150);
      assert.equal(await countKeys(pattern), 0);
    });
  });

  describe('redisStore on a Redis Cluster: a slot migrating during the walk', () => {
    /**
     * One slot of the master walked last is moved to the master walked first, the way
     * `redis-cli --cluster reshard` moves it (IMPORTING on the target, MIGRATING on the source,
     * MIGRATE of its keys, SETSLOT NODE everywhere), with the keys moved right after the walk has
     * finished the first master: the walk must still find them. Each test moves its own slot.
     */
    async function scenario(options: { prefix: string; markersDuringWalk: boolean }) {
      const [first, , last] = ports() as [number, number, number];
      const target = node(first);
      const source = node(last);
      const targetId = String(await target.call('CLUSTER', 'MYID'));
      const sourceId = String(await source.call('CLUSTER', 'MYID'));
      const owned = ((await source.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][]).filter((s) => s[2][2] === sourceId);
      const slot = (owned[0] as [number, number, [string, number, string]])[0];
      const store = redisStore({ client: client as Cluster, prefix: options.prefix });
      const spread = Array.from({ length: 300 }, (_, i) => makeRecord({ userId: i % 3 ? `m-${i % 7}` : null }));
      const moving = idsInSlot(slot, 100).map((id, i) => makeRecord({ id, userId: i % 2 ? `m-${i % 7}` : null }));
      await createAll(store, [...spread, ...moving]);
      assert.equal(Number(await source.call('CLUSTER', 'COUNTKEYSINSLOT', slot)), 100);

      const setMarkers = async () => {
        await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId);
        await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId);
      };
      const migrateKeys = async () => {
        for (;;) {
          const keys = (await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
          if (keys.length === 0) break;
          await source.call('MIGRATE', '127.0.0.1', first, '', 0, 5_000, 'KEYS', ...keys);
        }
      };
      if (!options.markersDuringWalk) await setMarkers();
      // The keys move as soon as the walk has finished the first master (its SCAN answered cursor 0).
      const pooled = (client as Cluster).nodes('master').find((n) => n.options.port === first) as Redis;
      const scan = pooled.scan.bind(pooled) as (...args: unknown[]) => Promise<[string, string[]]>;
      let moved = false;
      (pooled as unknown as { scan: unknown }).scan = async (...args: unknown[]) => {
        const reply = await scan(...args);
        if (!moved && reply[0] === '0' && String(args[2]).startsWith(options.prefix)) {
          moved = true;
          if (options.markersDuringWalk) await setMarkers();
          await migrateKeys();
        }
        return reply;
      };
      const finish = async () => {
        delete (pooled as unknown as { scan?: unknown }).scan;
        for (const port of ports()) await node(port).call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId);
      };
      return { store, total: spread.length + moving.length, movedYet: () => moved, finish };
    }

    it('killSessionsByUser() (destroyStep) ends the sessions MIGRATEd onto a master already walked', async () => {
      const prefix3 = `${prefix}migrate-step:`;
      const { store, total, movedYet, finish } = await scenario({ prefix: prefix3, markersDuringWalk: false });
      try {
        const sessions = createSessions({ store });
        assert.equal(await sessions.killSessionsByUser(), total);
        assert.ok(movedYet(), 'the keys moved during the walk');
      } finally {
        await finish();
      }
      assert.equal(await countKeys(`${prefix3}s:*`), 0, 'no session left');
      await store.close();
    });

    it('destroyAll() ends them when the migration starts mid-walk', async () => {
      const prefix4 = `${prefix}migrate-all:`;
      const { store, total, movedYet, finish } = await scenario({ prefix: prefix4, markersDuringWalk: true });
      try {
        assert.equal(await store.destroyAll(), total);
        assert.ok(movedYet(), 'the keys moved during the walk');
      } finally {
        await finish();
      }
      assert.equal(await countKeys(`${prefix4}s:*`), 0, 'no session left');
      await store.close();
    });

    it('stats() counts them', async () => {
      const prefix5 = `${prefix}migrate-stats:`;
      const { store, total, movedYet, finish } = await scenario({ prefix: prefix5, markersDuringWalk: false });
      try {
        const stats = await (store.stats as NonNullable<Store['stats']>)(Date.now());
        assert.ok(movedYet(), 'the keys moved during the walk');
        // A session seen on its master before the move and again on the target may count twice.
        assert.ok(stats.sessions >= total && stats.sessions <= total + 100, `${stats.sessions} of ${total}`);
      } finally {
        await finish();
      }
      await store.destroyAll();
      await store.close();
    });
  });
}
