import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Cluster, Redis, type ClusterOptions } from 'ioredis';
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

/**
 * The permissions docs/stores/redis.md lists for a Cluster: the store's own list (the code span
 * with `+evalsha`) and the Cluster's (the one with `+cluster|`), read from the page.
 */
function documentedClusterPermissions(): string[] {
  const markdown = readFileSync('docs/stores/redis.md', 'utf8');
  const section = /\*\*Permissions\.\*\*([\s\S]*?)on a\s+Cluster/.exec(markdown)?.[1] ?? '';
  const spans = [...section.matchAll(/`([^`]*)`/g)].map((match) => match[1] as string);
  const lists = [spans.find((span) => span.includes('+evalsha')), spans.find((span) => span.includes('+cluster|'))];
  return lists.flatMap((list) => (list ?? '').split(/\s+/)).filter((permission) => /^[+-][a-z|@]+$/.test(permission));
}

/** A loopback port nothing listens on (a node the app cannot reach). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A Cluster client of a test's own, resolved once ready. */
async function readyCluster(startup: { host: string; port: number }, options: ClusterOptions): Promise<Cluster> {
  const cluster = new Cluster([startup], { clusterRetryStrategy: (times) => (times > 3 ? null : 100 * times), ...options });
  cluster.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('cluster client not ready within 10 s')), 10_000);
    cluster.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return cluster;
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
      redis.on('error', () => {}); // a node a test stopped or killed: its commands fail
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
  /** Keys under `pattern` on each of `masters` (ports), over the tests' own connections. */
  async function keysOn(masters: number[], pattern: string): Promise<number[]> {
    const counts: number[] = [];
    for (const port of masters) {
      let cursor = '0';
      let count = 0;
      do {
        const [next, keys] = await node(port).scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        count += keys.length;
      } while (cursor !== '0');
      counts.push(count);
    }
    return counts;
  }
  const myId = async (port: number) => String(await node(port).call('CLUSTER', 'MYID'));
  /** The first slot the master on `port` owns. */
  async function firstSlotOf(port: number): Promise<number> {
    const id = await myId(port);
    const owned = ((await node(port).call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][]).filter((s) => s[2][2] === id);
    return (owned[0] as [number, number, [string, number, string]])[0];
  }
  /**
   * Starts moving `slot` from `source` to `target` as `redis-cli --cluster reshard` does (IMPORTING
   * on the target, MIGRATING on the source), and MIGRATEs `count` of its keys: a migration left
   * half done, as an interrupted reshard leaves it.
   */
  async function halfMigrate(slot: number, source: number, target: number, count: number): Promise<void> {
    await node(target).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', await myId(source));
    await node(source).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', await myId(target));
    const keys = (await node(source).call('CLUSTER', 'GETKEYSINSLOT', slot, count)) as string[];
    assert.equal(keys.length, count, 'keys to migrate');
    await node(source).call('MIGRATE', '127.0.0.1', target, '', 0, 5_000, 'KEYS', ...keys);
  }
  /** Ends the move: the rest of the slot's keys MIGRATEd, then the target owns it (SETSLOT NODE on every master). */
  async function finishMigration(slot: number, source: number, target: number, masters: number[]): Promise<void> {
    for (;;) {
      const keys = (await node(source).call('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
      if (keys.length === 0) break;
      await node(source).call('MIGRATE', '127.0.0.1', target, '', 0, 5_000, 'KEYS', ...keys);
    }
    const targetId = await myId(target);
    for (const port of [target, source, ...masters.filter((p) => p !== target && p !== source)]) await node(port).call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId);
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
        // Each once: the keys moved are found by the re-read on the target, not twice.
        assert.equal(stats.sessions, total);
      } finally {
        await finish();
      }
      await store.destroyAll();
      await store.close();
    });
  });

  describe('redisStore on a Redis Cluster: a slot left half migrated', () => {
    it('runs as a Redis user with exactly the permissions the docs list (ASK redirects send ASKING)', async () => {
      const permissions = documentedClusterPermissions();
      assert.ok(permissions.includes('+evalsha') && permissions.includes('+cluster|nodes'), `parsed: ${permissions.join(' ')}`);
      const [first, , last] = ports() as [number, number, number];
      const user = `cc_cluster_acl_${randomBytes(4).toString('hex')}`;
      const password = randomBytes(12).toString('hex');
      const aclPrefix = `${prefix}acl:`;
      // ACLs are per node.
      for (const port of ports()) await node(port).call('ACL', 'SETUSER', user, 'reset', 'on', `>${password}`, `~${aclPrefix}*`, ...permissions);
      // ioredis leaves a refused ASKING as an unhandled rejection (a crash under Node's default).
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      const slot = await firstSlotOf(last);
      let aclClient: Cluster | undefined;
      try {
        aclClient = await readyCluster((testCluster as TestCluster).nodes[0] as { host: string; port: number }, {
          redisOptions: { username: user, password, maxRetriesPerRequest: 1, commandTimeout: 5_000, connectTimeout: 5_000 },
        });
        const store = redisStore({ client: aclClient, prefix: aclPrefix });
        const spread = Array.from({ length: 200 }, (_, i) => makeRecord({ userId: i % 2 ? null : `acl-${i % 5}` }));
        const moving = idsInSlot(slot, 50).map((id, i) => makeRecord({ id, userId: i % 2 ? null : 'acl-mover' }));
        await createAll(store, [...spread, ...moving]);
        await halfMigrate(slot, last, first, 20);
        const moved = new Set(((await node(first).call('CLUSTER', 'GETKEYSINSLOT', slot, 50)) as string[]).map((key) => key.slice(`${aclPrefix}s:{`.length, -1)));
        assert.equal(moved.size, 20);
        // Read through an ASK redirect (moved) and from the source (not moved yet).
        for (const r of moving) assert.equal((await store.get(r.id))?.id, r.id, moved.has(r.id) ? 'a moved session' : 'a session not moved yet');
        const stats = await (store.stats as NonNullable<Store['stats']>)(Date.now());
        assert.equal(stats.sessions, 250);
        assert.equal(await store.destroyAll(), 250);
        assert.equal(await countKeys(`${aclPrefix}s:*`), 0);
        await sleep(50);
        assert.deepEqual(unhandled.map(String), [], 'no unhandled rejection (a refused ASKING)');
      } finally {
        process.off('unhandledRejection', onUnhandled);
        aclClient?.disconnect();
        await finishMigration(slot, last, first, ports());
        for (const port of ports()) await node(port).call('ACL', 'DELUSER', user);
      }
    });

    it('stats() counts each session once, on every call (the keys moved are also on the importing master)', async () => {
      const [first, , last] = ports() as [number, number, number];
      const halfPrefix = `${prefix}half-stats:`;
      const store = redisStore({ client: client as Cluster, prefix: halfPrefix });
      const slot = await firstSlotOf(last);
      const spread = Array.from({ length: 300 }, () => makeRecord({ userId: null }));
      const moving = idsInSlot(slot, 100).map((id) => makeRecord({ id, userId: 'alice' }));
      await createAll(store, [...spread, ...moving]);
      await halfMigrate(slot, last, first, 60);
      try {
        for (let call = 0; call < 2; call++) {
          const stats = await (store.stats as NonNullable<Store['stats']>)(Date.now());
          assert.equal(stats.sessions, 400, `call ${call + 1}`);
          assert.equal(stats.guests, 300);
        }
        assert.equal(await store.destroyAll(), 400);
      } finally {
        await finishMigration(slot, last, first, ports());
      }
      await store.close();
    });
  });

  describe('redisStore on a Redis Cluster: a master the app cannot reach', () => {
    it('walks every other master, then fails naming it (stats, destroyAll)', async () => {
      const [first, second, last] = ports() as [number, number, number];
      const cutPrefix = `${prefix}unreachable:`;
      const store = redisStore({ client: client as Cluster, prefix: cutPrefix });
      // Guests: a user's index may live on the master cut off, and removing entries there would fail on its own.
      await createAll(store, Array.from({ length: 300 }, () => makeRecord({ userId: null })));
      const before = await keysOn([first, second, last], `${cutPrefix}s:*`);
      assert.ok(before.every((n) => n > 0), `per master: ${before.join(', ')}`);
      // The last master's address leads nowhere from this app (a network partition, a wrong NAT entry).
      const dead = await closedPort();
      const cut = await readyCluster((testCluster as TestCluster).nodes[0] as { host: string; port: number }, {
        natMap: (key: string) => (key === `127.0.0.1:${last}` ? { host: '127.0.0.1', port: dead } : null),
        redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 2_000, connectTimeout: 1_000 },
      });
      try {
        const cutStore = redisStore({ client: cut, prefix: cutPrefix });
        const lastId = await myId(last);
        const unreachable = (error: Error) => /cannot be reached/.test(error.message) && error.message.includes(lastId);
        await assert.rejects(Promise.resolve((cutStore.stats as NonNullable<Store['stats']>)(Date.now())), unreachable);
        await assert.rejects(Promise.resolve(cutStore.destroyAll()), unreachable);
        assert.deepEqual(await keysOn([first, second, last], `${cutPrefix}s:*`), [0, 0, before[2]], 'every reachable master was walked');
      } finally {
        cut.disconnect();
        await store.destroyAll();
        await store.close();
      }
    });
  });

  describe('redisStore on a Redis Cluster: an importing master that owns no slot', () => {
    /** A cluster of the tests' own, with a spare master (no slot) to reshard onto. */
    let spareCluster: TestCluster | undefined;
    let masters: number[] = [];
    let spare = 0;
    before(async () => {
      spareCluster = await startRedisCluster({ spares: 1 });
      masters = spareCluster.nodes.map((n) => n.port).sort((a, b) => a - b);
      spare = (spareCluster.spares[0] as { port: number }).port;
    });
    after(async () => {
      await spareCluster?.stop();
    });
    const startup = () => (spareCluster as TestCluster).nodes[0] as { host: string; port: number };

    it('reaches it through natMap by the hostname the cluster announces (cluster-preferred-endpoint-type hostname)', async () => {
      const last = masters[2] as number;
      const hostOf = (port: number) => `node-${port}.coatcheck.invalid`;
      const every = [...masters, spare];
      for (const port of every) {
        await node(port).call('CONFIG', 'SET', 'cluster-announce-hostname', hostOf(port));
        await node(port).call('CONFIG', 'SET', 'cluster-preferred-endpoint-type', 'hostname');
      }
      const dead = await closedPort();
      const asked = new Set<string>();
      let c: Cluster | undefined;
      const slot = await firstSlotOf(last);
      try {
        // Every master knows every hostname (gossip).
        for (let deadline = Date.now() + 5_000; ; ) {
          const views = await Promise.all(masters.map(async (port) => String(await node(port).call('CLUSTER', 'NODES'))));
          if (views.every((view) => every.every((port) => view.includes(`,${hostOf(port)} `)))) break;
          assert.ok(Date.now() < deadline, 'hostnames announced within 5 s');
          await sleep(100);
        }
        // The app reaches the nodes by hostname only; the IPs the cluster reports lead nowhere.
        const natMap = (key: string) => {
          asked.add(key);
          const match = /^node-(\d+)\.coatcheck\.invalid:(\d+)$/.exec(key);
          return { host: '127.0.0.1', port: match ? Number(match[2]) : dead };
        };
        c = await readyCluster(startup(), { natMap, redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 2_000, connectTimeout: 1_000 } });
        const store = redisStore({ client: c, prefix: `${prefix}hostname:` });
        await createAll(store, [...Array.from({ length: 100 }, () => makeRecord()), ...idsInSlot(slot, 20).map((id) => makeRecord({ id }))]);
        await halfMigrate(slot, last, spare, 10);
        assert.equal(await store.destroyAll(), 120);
        assert.ok(asked.has(`${hostOf(spare)}:${spare}`), `natMap asked for: ${[...asked].join(' ')}`);
        assert.deepEqual(await keysOn(every, `${prefix}hostname:s:*`), [0, 0, 0, 0]);
      } finally {
        c?.disconnect();
        for (const port of [spare, last]) await node(port).call('CLUSTER', 'SETSLOT', slot, 'STABLE');
        for (const port of every) {
          await node(port).call('CONFIG', 'SET', 'cluster-preferred-endpoint-type', 'ip');
          await node(port).call('CONFIG', 'SET', 'cluster-announce-hostname', '');
        }
      }
    });

    it("gives up on it after the store's commandTimeout when it stops answering (none in the app's redisOptions)", async () => {
      const last = masters[2] as number;
      const stopPrefix = `${prefix}stopped:`;
      const c = await readyCluster(startup(), { redisOptions: { maxRetriesPerRequest: 1, connectTimeout: 2_000 } });
      const store = redisStore({ client: c, prefix: stopPrefix, commandTimeout: 300 });
      const slot = await firstSlotOf(last);
      await createAll(store, [...Array.from({ length: 150 }, () => makeRecord()), ...idsInSlot(slot, 20).map((id) => makeRecord({ id }))]);
      await halfMigrate(slot, last, spare, 5);
      // Stopped: the kernel still accepts connections, nothing answers (well within cluster-node-timeout, 5 s).
      (spareCluster as TestCluster).signal(spare, 'SIGSTOP');
      let stopped = true;
      try {
        const outcome = await Promise.race([
          Promise.resolve(store.destroyAll()).then(
            (n) => `resolved ${n}`,
            (error: Error) => `rejected: ${error.message}`,
          ),
          sleep(4_000).then(() => 'still pending after 4 s'),
        ]);
        assert.match(outcome, /^rejected: .*cannot be reached/);
        assert.match(outcome, /Command timed out/);
        assert.deepEqual(await keysOn(masters, `${stopPrefix}s:*`), [0, 0, 0], 'every other master was walked');
        (spareCluster as TestCluster).signal(spare, 'SIGCONT');
        stopped = false;
        // Back: the next walk reaches the keys moved there.
        assert.equal(await store.destroyAll(), 5);
      } finally {
        if (stopped) (spareCluster as TestCluster).signal(spare, 'SIGCONT');
        for (const port of [spare, last]) await node(port).call('CLUSTER', 'SETSLOT', slot, 'STABLE');
        c.disconnect();
      }
    });

    it('does not block the walks once the cluster marks it failing after it died mid-migration', async () => {
      const last = masters[2] as number;
      const deadPrefix = `${prefix}dead-importer:`;
      const c = await readyCluster(startup(), { redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 2_000, connectTimeout: 1_000 } });
      const store = redisStore({ client: c, prefix: deadPrefix });
      const sessions = createSessions({ store });
      const slot = await firstSlotOf(last);
      const spareId = await myId(spare);
      const make = () => Array.from({ length: 200 }, (_, i) => makeRecord({ userId: i % 2 ? null : `dead-${i % 3}` }));
      await createAll(store, [...make(), ...idsInSlot(slot, 20).map((id) => makeRecord({ id, userId: null }))]);
      await halfMigrate(slot, last, spare, 10);
      (spareCluster as TestCluster).signal(spare, 'SIGKILL');
      try {
        // Not marked failing yet (cluster-node-timeout 5 s): every reachable master is walked, then the call fails.
        await assert.rejects(Promise.resolve(store.destroyAll()), (error: Error) => /cannot be reached/.test(error.message) && error.message.includes(spareId));
        assert.deepEqual(await keysOn(masters, `${deadPrefix}s:*`), [0, 0, 0]);

        // (Not in the slot being migrated: a new key there is sent on to the dead master by an ASK.)
        await createAll(store, make());
        for (const port of masters) await node(port).call('CONFIG', 'SET', 'cluster-node-timeout', '1000');
        for (let deadline = Date.now() + 6_000; ; ) {
          const views = await Promise.all(masters.map(async (port) => String(await node(port).call('CLUSTER', 'NODES'))));
          const line = (view: string) => view.split('\n').find((l) => l.startsWith(`${spareId} `)) ?? '';
          if (views.some((view) => /(^|,)fail\??(,|$)/.test(line(view).split(' ')[2] ?? ''))) break;
          assert.ok(Date.now() < deadline, 'the cluster marked the dead master failing within 6 s');
          await sleep(100);
        }
        assert.match(String(await node(masters[0] as number).call('CLUSTER', 'INFO')), /cluster_state:ok/);
        const stats = await (store.stats as NonNullable<Store['stats']>)(Date.now());
        assert.equal(stats.sessions, 200);
        assert.equal(await sessions.killSessionsByUser('__guest__'), 100);
        assert.equal(await sessions.killSessionsByUser(), 100);
        assert.deepEqual(await keysOn(masters, `${deadPrefix}s:*`), [0, 0, 0]);
      } finally {
        for (const port of masters) await node(port).call('CONFIG', 'SET', 'cluster-node-timeout', '5000');
        await node(last).call('CLUSTER', 'SETSLOT', slot, 'STABLE');
        c.disconnect();
      }
    });
  });
}
