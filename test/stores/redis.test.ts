import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ConfigError } from '../../src/errors.js';
import { redisStore } from '../../src/stores/redis.js';
import type { SessionRecord, Store } from '../../src/stores/types.js';
import { makeRecord, randomId, testStore } from '../../src/testing/store-contract.js';
import { deleteRedisPrefix, REDIS_URL, redisKeys, serviceAvailable } from '../helpers/services.js';

const up = await serviceAvailable('redis');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

if (!up) {
  describe('redisStore', { skip: 'Redis not reachable' }, () => {});
} else {
  const prefix = `cc-test-${randomBytes(6).toString('hex')}:`;
  const contractPrefix = `${prefix}contract:`;
  after(() => deleteRedisPrefix(prefix));

  testStore('redis', { create: () => redisStore({ url: REDIS_URL, prefix: contractPrefix }) });

  describe('redisStore', () => {
    const opened: Store[] = [];
    const clients: Redis[] = [];
    function store(suffix: string, extra: { client?: Redis } = {}): Store {
      const s = extra.client
        ? redisStore({ client: extra.client, prefix: `${prefix}${suffix}:` })
        : redisStore({ url: REDIS_URL, prefix: `${prefix}${suffix}:` });
      opened.push(s);
      return s;
    }
    function client(): Redis {
      const c = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, commandTimeout: 5_000 });
      clients.push(c);
      return c;
    }
    after(async () => {
      for (const s of opened) await s.close();
      for (const c of clients) c.disconnect();
    });

    it('kills every guest / every session through the engine with destroyStep, not one long call', async () => {
      const s = store('mass-kill');
      const { createSessions } = await import('../../src/index.js');
      const sessions = createSessions({ store: s });
      const calls: string[] = [];
      sessions.metrics.onStoreCall((call) => calls.push(call.operation));
      const now = Date.now();
      const records = Array.from({ length: 5000 }, (_, i) => makeRecord({ userId: i % 2 === 0 ? null : `mass-${i % 7}`, createdAt: now, lastSeenAt: now, expiresAt: now + 600_000 }));
      await Promise.all(records.map((r) => s.create(r)));
      assert.equal(await sessions.killSessionsByUser('__guest__'), 2500);
      // SCAN's COUNT is only a hint (a rehashing keyspace can answer more), so the number of steps varies.
      assert.ok(calls.includes('destroyStep'), JSON.stringify(calls));
      assert.equal(calls.includes('destroyByUser'), false);
      assert.equal((await s.listByUser('mass-1')).length > 0, true);
      calls.length = 0;
      assert.equal(await sessions.killSessionsByUser(), 2500);
      assert.ok(calls.includes('destroyStep'), JSON.stringify(calls));
      assert.equal(calls.includes('destroyAll'), false);
      for (const r of records.slice(0, 20)) assert.equal(await s.get(r.id), null);
      assert.deepEqual(await s.listByUser('mass-1'), []);
    });

    it('keeps a session created while destroyAll() walks listed and killable by its user', async () => {
      // The walk used to delete every user index key it met, including the index of a session
      // created after the walk had passed that session's key: "log out everywhere" missed it.
      const s = store('kill-all-race');
      const old = Array.from({ length: 5_000 }, (_, i) => makeRecord({ userId: `old-${i % 1_000}` }));
      for (let i = 0; i < old.length; i += 500) await Promise.all(old.slice(i, i + 500).map((r) => s.create(r)));
      const late: SessionRecord[] = [];
      let walking = true;
      const login = async (): Promise<void> => {
        while (walking) {
          const record = makeRecord({ userId: `late-${late.length}` });
          late.push(record);
          await s.create(record);
        }
      };
      const logins = Promise.all(Array.from({ length: 8 }, login));
      await s.destroyAll();
      walking = false;
      await logins;
      let survivors = 0;
      for (const record of late) {
        if ((await s.get(record.id)) === null) continue;
        survivors++;
        const userId = record.userId as string;
        assert.equal(await s.update(record.id, { data: { set: { n: 1 } }, lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 }), true);
        assert.deepEqual((await s.listByUser(userId)).map((x) => x.id), [record.id], `${userId} is listed`);
        assert.equal(await s.destroyByUser(userId), 1, `${userId} is killed by user`);
      }
      assert.ok(survivors > 0, `${late.length} logins during the walk, none survived it: nothing was tested`);
    });

    it('does not quit an app-owned client on close()', async () => {
      const redis = client();
      const s = redisStore({ client: redis, prefix: `${prefix}owned:` });
      await s.create(makeRecord());
      await s.close();
      assert.equal(await redis.ping(), 'PONG');
      assert.equal(redis.status, 'ready');
    });

    it('quits a client it created on close()', async () => {
      const s = redisStore({ url: REDIS_URL, prefix: `${prefix}own:` });
      await s.get(randomId());
      await s.close();
      await assert.rejects(async () => s.get(randomId()));
    });

    it('sets a native TTL on the session key matching expiresAt', async () => {
      const s = store('ttl');
      const redis = client();
      const record = makeRecord({ expiresAt: Date.now() + 600_000 });
      await s.create(record);
      const key = `${prefix}ttl:s:{${record.id}}`;
      let pttl = await redis.pttl(key);
      assert.ok(pttl > 0, `PTTL ${pttl}`);
      assert.ok(Math.abs(pttl - (record.expiresAt - Date.now())) < 2_000, `PTTL ${pttl} vs ${record.expiresAt - Date.now()}`);
      // update and touch move the TTL along with expiresAt.
      await s.update(record.id, { data: { set: { a: 1 } }, lastSeenAt: Date.now(), expiresAt: Date.now() + 900_000 });
      pttl = await redis.pttl(key);
      assert.ok(Math.abs(pttl - 900_000) < 2_000, `PTTL after update ${pttl}`);
      await s.touch(record.id, { lastSeenAt: Date.now(), expiresAt: Date.now() + 300_000 });
      pttl = await redis.pttl(key);
      assert.ok(Math.abs(pttl - 300_000) < 2_000, `PTTL after touch ${pttl}`);
      // keepLater: a save with an earlier deadline leaves the later one, TTL included.
      await s.update(record.id, { data: { set: { b: 2 } }, lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000, keepLater: true });
      pttl = await redis.pttl(key);
      assert.ok(Math.abs(pttl - 300_000) < 2_000, `PTTL after a keepLater update ${pttl}`);
    });

    it('keepLater with a new user: the index covers the later expiry the session keeps', async () => {
      const s = store('idx-keep');
      const record = makeRecord({ expiresAt: Date.now() + 60_000 });
      await s.create(record);
      const now = Date.now();
      assert.equal(await s.update(record.id, { userId: 'keep-bob', lastSeenAt: now, expiresAt: now + 1_000, keepLater: true }), true);
      // Past the index time the patch's own expiry would give (expiry + as much slack).
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.deepEqual((await s.listByUser('keep-bob')).map((summary) => summary.id), [record.id]);
      assert.equal(await s.destroyByUser('keep-bob'), 1);
    });

    it('keeps the user index alive at least as long as its sessions', async () => {
      const s = store('idx-ttl');
      const redis = client();
      const record = makeRecord({ userId: 'ttl-user', expiresAt: Date.now() + 60_000 });
      await s.create(record);
      const indexKey = `${prefix}idx-ttl:u:{ttl-user}`;
      assert.ok((await redis.pttl(indexKey)) >= 59_000);
      // A sliding refresh far past the index's current expiry must extend the index first.
      const later = Date.now() + 3_600_000;
      assert.equal(await s.touch(record.id, { lastSeenAt: Date.now(), expiresAt: later }), true);
      const indexTtl = await redis.pttl(indexKey);
      const sessionTtl = await redis.pttl(`${prefix}idx-ttl:s:{${record.id}}`);
      assert.ok(indexTtl >= sessionTtl, `index ${indexTtl} < session ${sessionTtl}`);
      assert.deepEqual((await s.listByUser('ttl-user')).map((x) => x.id), [record.id]);
    });

    it('drops a natively expired session from listByUser and from the index', async () => {
      const s = store('expire');
      const redis = client();
      const now = Date.now();
      const short = makeRecord({ userId: 'u-exp', createdAt: now, lastSeenAt: now, expiresAt: now + 300 });
      const long = makeRecord({ userId: 'u-exp', createdAt: now + 1, lastSeenAt: now, expiresAt: now + 600_000 });
      await s.create(short);
      await s.create(long);
      assert.equal((await s.listByUser('u-exp')).length, 2);
      await sleep(450);
      assert.equal(await redis.exists(`${prefix}expire:s:{${short.id}}`), 0);
      assert.deepEqual((await s.listByUser('u-exp')).map((x) => x.id), [long.id]);
      assert.deepEqual(await redis.zrange(`${prefix}expire:u:{u-exp}`, 0, -1), [long.id]);
    });

    it('the whole index expires with its last session', async () => {
      const s = store('expire-all');
      const redis = client();
      const now = Date.now();
      await s.create(makeRecord({ userId: 'gone', createdAt: now, lastSeenAt: now, expiresAt: now + 200 }));
      await sleep(700); // 200 ms lifetime + 200 ms slack + margin
      assert.equal(await redis.exists(`${prefix}expire-all:u:{gone}`), 0);
      assert.deepEqual(await s.listByUser('gone'), []);
    });

    it('removes a destroyed session from its user index', async () => {
      const s = store('destroy-idx');
      const redis = client();
      const record = makeRecord({ userId: 'd-user' });
      await s.create(record);
      await s.destroy(record.id);
      assert.equal(await redis.exists(`${prefix}destroy-idx:u:{d-user}`), 0);
    });

    it('rejects get with ERR_CORRUPT_RECORD for a wrong-type key and for garbage JSON', async () => {
      const s = store('corrupt');
      const redis = client();
      const wrong = randomId();
      await redis.set(`${prefix}corrupt:s:{${wrong}}`, 'not a hash');
      await assert.rejects(async () => s.get(wrong), { code: 'ERR_CORRUPT_RECORD' });

      const garbage = makeRecord();
      await s.create(garbage);
      await redis.hset(`${prefix}corrupt:s:{${garbage.id}}`, 'd:broken', '{not json');
      await assert.rejects(async () => s.get(garbage.id), { code: 'ERR_CORRUPT_RECORD' });

      const partial = randomId();
      await redis.hset(`${prefix}corrupt:s:{${partial}}`, 'd:a', '1');
      await assert.rejects(async () => s.get(partial), { code: 'ERR_CORRUPT_RECORD' });

      // The rest of the API copes with the foreign key: no resurrection, no overwrite, deletable.
      assert.equal(await s.update(wrong, { lastSeenAt: Date.now(), expiresAt: Date.now() + 1_000 }), false);
      // A hash without the session's own fields is not a session either: nothing is written to it.
      assert.equal(await s.update(partial, { data: { set: { a: 2 } }, lastSeenAt: Date.now(), expiresAt: Date.now() + 1_000 }), false);
      assert.deepEqual(await redis.hgetall(`${prefix}corrupt:s:{${partial}}`), { 'd:a': '1' });
      await assert.rejects(s.create(makeRecord({ id: wrong })), { code: 'ERR_STORE_CONFLICT' });
      await s.destroy(wrong);
      assert.equal(await s.get(wrong), null);
    });

    it('fails fast when Redis is down instead of hanging', async () => {
      const s = redisStore({ url: 'redis://127.0.0.1:1', prefix: `${prefix}down:`, commandTimeout: 2_000 });
      try {
        const started = Date.now();
        await assert.rejects(async () => s.get(randomId()));
        const elapsed = Date.now() - started;
        assert.ok(elapsed < 3_000, `took ${elapsed} ms`);
        const again = Date.now();
        await assert.rejects(s.create(makeRecord()));
        assert.ok(Date.now() - again < 3_000);
      } finally {
        await s.close();
      }
    });

    it('keeps 50 concurrent updates to different keys from two store instances', async () => {
      const a = store('two');
      const b = store('two');
      const record = makeRecord({ data: {}, userId: 'two-user' });
      await a.create(record);
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          (i % 2 ? a : b).update(record.id, {
            data: { set: { [`k${i}`]: i } },
            lastSeenAt: Date.now(),
            expiresAt: Date.now() + 60_000 + i,
          }),
        ),
      );
      assert.ok(results.every(Boolean));
      const loaded = await a.get(record.id);
      assert.equal(Object.keys(loaded?.data ?? {}).length, 50);
      for (let i = 0; i < 50; i++) assert.equal(loaded?.data[`k${i}`], i);
    });

    it('keeps a session with thousands of keys (scripts slice their arguments)', async () => {
      const s = store('big');
      const data = Object.fromEntries(Array.from({ length: 6_000 }, (_, i) => [`key${i}`, i]));
      const record = makeRecord({ data });
      await s.create(record);
      const unset = Array.from({ length: 5_000 }, (_, i) => `key${i}`);
      const set = Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`new${i}`, i]));
      assert.equal(await s.update(record.id, { data: { set, unset }, lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 }), true);
      const loaded = await s.get(record.id);
      assert.equal(Object.keys(loaded?.data ?? {}).length, 6_000);
      assert.equal(loaded?.data.key5999, 5_999);
      assert.equal(loaded?.data.new4999, 4_999);
    });

    it('only touches keys under its own prefix', async () => {
      const mine = store('ns-a');
      const theirs = store('ns-b');
      await mine.create(makeRecord({ userId: 'shared' }));
      const other = makeRecord({ userId: 'shared' });
      await theirs.create(other);
      await theirs.create(makeRecord());
      assert.equal(await mine.destroyAll(), 1);
      assert.equal(await mine.destroyByUser(null), 0);
      assert.deepEqual(await mine.listByUser('shared'), []);
      assert.deepEqual((await theirs.listByUser('shared')).map((x) => x.id), [other.id]);
    });

    it('escapes glob characters in the prefix', async () => {
      const redis = client();
      const glob = redisStore({ client: redis, prefix: `${prefix}g*[x]?:` });
      const plain = redisStore({ client: redis, prefix: `${prefix}gA[x]b:` });
      await glob.create(makeRecord());
      await plain.create(makeRecord());
      assert.equal(await glob.destroyAll(), 1);
      assert.equal(await plain.destroyAll(), 1);
    });

    it('refuses bad options at setup', () => {
      assert.throws(() => redisStore({}), ConfigError);
      // `url: process.env.REDIS_URL` with the variable unset: the message says so.
      assert.throws(() => redisStore({ url: undefined }), /url is undefined: is the environment variable you passed unset\?/);
      assert.throws(() => redisStore({ url: REDIS_URL, client: client() }), ConfigError);
      assert.throws(() => redisStore({ url: REDIS_URL, prefix: '{app}:' }), /prefix/);
      assert.throws(() => redisStore({ url: REDIS_URL, prefix: '' }), /prefix/);
      assert.throws(() => redisStore({ url: REDIS_URL, commandTimeout: 0 }), /commandTimeout/);
      // Past setTimeout's limit ioredis would time out every command after 1 ms.
      for (const timeout of [Infinity, 2 ** 31]) {
        assert.throws(() => redisStore({ url: REDIS_URL, commandTimeout: timeout }), /commandTimeout .*2147483647/);
        assert.throws(() => redisStore({ url: REDIS_URL, connectTimeout: timeout }), /connectTimeout .*2147483647/);
        assert.throws(() => redisStore({ client: client(), connectTimeout: timeout }), /connectTimeout .*2147483647/);
      }
      const prefixed = new Redis(REDIS_URL, { keyPrefix: 'x:', lazyConnect: true });
      assert.throws(() => redisStore({ client: prefixed }), /keyPrefix/);
      prefixed.disconnect();
    });

    it('refuses a URL that sets ioredis\' keyPrefix, as it refuses such a client', async () => {
      // The connection would prefix every key itself: SCAN-based kills and stats found nothing.
      const tag = `${prefix}kp:`;
      for (const url of [`${REDIS_URL}/0?keyPrefix=${encodeURIComponent(tag)}`, `${REDIS_URL}?db=0&keyPrefix=x:`]) {
        assert.throws(
          () => redisStore({ url }),
          (error: unknown) => error instanceof ConfigError && /keyPrefix/.test(error.message) && /`prefix` option/.test(error.message),
        );
      }
      const { storeFromUrl } = await import('../../src/stores/from-url.js');
      await assert.rejects(storeFromUrl(`${REDIS_URL}/0?keyPrefix=${encodeURIComponent(tag)}`), (error: unknown) => error instanceof ConfigError && /\?prefix=/.test(error.message));
      // The store's own prefix, by URL, is what works: a kill finds the sessions.
      const s = (await storeFromUrl(`${REDIS_URL}/0?prefix=${encodeURIComponent(tag)}`)) as Store;
      opened.push(s);
      await s.create(makeRecord({ userId: 'kp' }));
      await s.create(makeRecord());
      assert.equal(await s.destroyAll(), 2);
      assert.deepEqual(await redisKeys(`${tag}*`), []);
    });

    it('fails every call, before sending it, when the URL names a database the server does not have', async () => {
      // ioredis reports the failed SELECT as an `error` event only, then runs its queue in database 0.
      const tag = `${prefix}db99:`;
      const victim = store('db99-victim');
      const record = makeRecord({ userId: 'db99' });
      await victim.create(record);
      const wrong = redisStore({ url: `${REDIS_URL}/99`, prefix: tag });
      opened.push(wrong);
      await assert.rejects(async () => wrong.get(record.id), /could not select database 99 \(ERR DB index is out of range\)/);
      await assert.rejects(wrong.destroyAll(), /could not select database 99/);
      await assert.rejects(wrong.create(makeRecord()), /could not select database 99/);
      assert.ok(await victim.get(record.id), 'nothing ran in database 0');
      assert.deepEqual(await redisKeys(`${tag}*`), []);
      const { createSessions } = await import('../../src/index.js');
      const sessions = createSessions({ store: wrong });
      await assert.rejects(sessions.killSessionsByUser(), { code: 'ERR_STORE' });
    });

    it('checks the database again after a reconnect: a restarted server without it fails closed', async () => {
      const { startPrivateRedis } = await import('../helpers/private-redis.js');
      const { spawn } = await import('node:child_process');
      const server = await startPrivateRedis({ args: ['--databases', '16'] });
      let replacement: import('node:child_process').ChildProcess | null = null;
      const s = redisStore({ url: `${server.url}/5`, prefix: 'db5:', commandTimeout: 1_000 });
      try {
        await s.create(makeRecord({ userId: 'db5' }));
        await server.kill();
        // The same port, now with two databases only.
        replacement = spawn('redis-server', ['--port', String(server.port), '--bind', '127.0.0.1', '--databases', '2', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
        const probe = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        probe.on('error', () => {});
        for (let i = 0; i < 100; i++) {
          try {
            await probe.connect();
            if ((await probe.ping()) === 'PONG') break;
          } catch {
            await sleep(50);
          }
        }
        let failure: unknown = null;
        for (let attempt = 0; attempt < 50 && failure === null; attempt++) {
          // Until the client has reconnected, calls fail on the closed connection; then the check.
          failure = await s.create(makeRecord({ userId: 'after' })).then(() => 'created', (error: unknown) => (/could not select database 5/.test(String(error)) ? error : null));
          if (failure === 'created') break;
          if (failure === null) await sleep(100);
        }
        assert.notEqual(failure, 'created', 'a create after the restart must not land in database 0');
        assert.match(String(failure), /could not select database 5/);
        assert.deepEqual(await probe.keys('db5:*'), [], 'nothing was written to database 0');
        probe.disconnect();
      } finally {
        await s.close();
        replacement?.kill('SIGKILL');
        await server.stop();
      }
    });

    it('works in the database the URL names', async () => {
      const tag = `${prefix}db3:`;
      const s = redisStore({ url: `${REDIS_URL}/3`, prefix: tag });
      opened.push(s);
      const record = makeRecord({ userId: 'db3' });
      await s.create(record);
      assert.equal((await s.get(record.id))?.userId, 'db3');
      const other = new Redis(`${REDIS_URL}/3`);
      try {
        assert.equal(await other.exists(`${tag}s:{${record.id}}`), 1, 'the key is in database 3');
      } finally {
        other.disconnect();
      }
      assert.deepEqual(await redisKeys(`${tag}*`), [], 'and not in database 0');
      assert.equal(await s.destroyAll(), 1);
    });
    it('walks a mass destroy through a keyspace of mostly other keys in steps of many slots, not one per limit', async () => {
      const c = client();
      const foreign = `${prefix}foreign:`;
      const pipeline = c.pipeline();
      for (let i = 0; i < 3_000; i++) pipeline.set(`${foreign}${i}`, 'x');
      await pipeline.exec();
      const s = store('sparse');
      const records = Array.from({ length: 5 }, () => makeRecord({ userId: null }));
      for (const r of records) await s.create(r);
      const before = await c.dbsize();
      let cursor: string | null = null;
      let steps = 0;
      let deleted = 0;
      do {
        const result: { deleted: number; cursor: string | null } = await s.destroyStep!({ guestsOnly: false, limit: 10, cursor });
        deleted += result.deleted;
        cursor = result.cursor;
        steps++;
      } while (cursor !== null && steps < 10_000);
      const keys = Math.max(before, await c.dbsize());
      assert.equal(deleted, 5);
      for (const r of records) assert.equal(await s.get(r.id), null);
      // Up to 10 × limit slots a step while nothing of ours is found: about keys / 100 steps
      // (one per 10 slots, keys / 10, before).
      assert.ok(steps <= Math.ceil(keys / 100) * 2 + 5, `${steps} steps over ${keys} keys`);
      assert.equal(await c.exists(`${foreign}0`), 1, 'other keys are left alone');
    });
  });
}
