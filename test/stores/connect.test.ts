import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { RedisStore } from 'connect-redis';
import session from 'express-session';
import { createClient } from 'redis';
import { getSession, withSessions } from '../../src/adapters/fetch.js';
import { ConfigError } from '../../src/errors.js';
import { createSessions } from '../../src/index.js';
import { type ConnectStoreLike, connectStore } from '../../src/stores/connect.js';
import { makeRecord, randomId, testStore } from '../../src/testing/store-contract.js';
import { REDIS_URL, serviceAvailable } from '../helpers/services.js';

// express-session's own MemoryStore: in-process, `all()` keyed by sid, no `ids()`.
testStore('connect (express-session MemoryStore)', { create: () => connectStore(new session.MemoryStore()) });

/** A store that reports a missing session as an ENOENT error, as session-file-store does. */
function enoentStore(): ConnectStoreLike {
  const memory = new session.MemoryStore();
  return {
    get: (sid, cb) =>
      memory.get(sid, (error, value) => (error || value ? cb(error, value) : cb(Object.assign(new Error(`ENOENT: no such file or directory, open '${sid}.json'`), { code: 'ENOENT' })))),
    set: (sid, sess, cb) => memory.set(sid, sess as session.SessionData, cb),
    destroy: (sid, cb) => memory.destroy(sid, cb),
    all: (cb) => memory.all(cb),
  };
}

testStore('connect (a store answering ENOENT for a missing session)', { create: () => connectStore(enoentStore()) });

describe('connectStore', () => {
  it('refuses something that is not an express-session store', () => {
    assert.throws(() => connectStore({} as ConnectStoreLike), /no get\(sid, callback\)/);
    assert.throws(() => connectStore(new session.MemoryStore(), { queueTimeout: 0 }), /queueTimeout/);
  });

  it('refuses a queueTimeout past setTimeout\'s limit (the queue would stop serializing after 1 ms)', () => {
    for (const queueTimeout of [Infinity, 2 ** 31, 1e12]) {
      assert.throws(
        () => connectStore(new session.MemoryStore(), { queueTimeout }),
        (error: unknown) => error instanceof ConfigError && /queueTimeout/.test(error.message) && /2147483647/.test(error.message),
      );
    }
    assert.doesNotThrow(() => connectStore(new session.MemoryStore(), { queueTimeout: 2 ** 31 - 1 }));
  });

  it('stores a session object whose cookie carries the expiry, and rejects foreign sessions as corrupt', async () => {
    const inner = new session.MemoryStore();
    const store = connectStore(inner);
    const record = makeRecord();
    await store.create(record);
    const raw = await new Promise<session.SessionData & { coatcheck?: unknown }>((resolve, reject) =>
      inner.get(record.id, (error, value) => (error ? reject(error) : resolve(value as session.SessionData))),
    );
    assert.equal(new Date(raw.cookie.expires!).getTime(), record.expiresAt);
    assert.ok(raw.cookie.originalMaxAge! > 3_590_000 && raw.cookie.originalMaxAge! <= 3_600_000);
    // A session express-session wrote itself is not a coatcheck record.
    const foreign = randomId();
    await new Promise<void>((resolve, reject) =>
      inner.set(foreign, { cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) } } as session.SessionData, (error) =>
        error ? reject(error) : resolve(),
      ),
    );
    await assert.rejects(async () => store.get(foreign), { code: 'ERR_CORRUPT_RECORD' });
    await assert.rejects(store.create(makeRecord({ id: foreign })), { code: 'ERR_STORE_CONFLICT' });
    // Listings skip it; destroyAll removes it with the rest.
    assert.deepEqual(await store.listByUser('nobody'), []);
    assert.equal(await store.destroyAll(), 2);
  });

  it('hands the wrapped store a cookie with a live maxAge, as express-session does (stores take their TTL from it)', async () => {
    // A store that, like memorystore, keeps a session for `cookie.maxAge` ms, or one day without it.
    const memory = new session.MemoryStore();
    const ttls: unknown[] = [];
    const ttlFromMaxAge: ConnectStoreLike = {
      get: (sid, cb) => memory.get(sid, cb),
      set: (sid, sess, cb) => {
        const cookie = (sess as { cookie: { maxAge?: unknown } }).cookie;
        ttls.push(cookie.maxAge);
        memory.set(sid, sess as session.SessionData, cb);
      },
      destroy: (sid, cb) => memory.destroy(sid, cb),
    };
    let now = Date.now();
    const clock = { now: () => now };
    const store = connectStore(ttlFromMaxAge, { clock });
    const record = makeRecord({ createdAt: now, lastSeenAt: now, expiresAt: now + 30 * 86_400_000 });
    await store.create(record);
    assert.deepEqual(ttls, [30 * 86_400_000], 'the whole 30 days, not a default');
    now += 1_000;
    await store.update(record.id, { data: { set: { k: 1 } }, lastSeenAt: now, expiresAt: now + 30 * 86_400_000 });
    assert.deepEqual(ttls[1], 30 * 86_400_000);
    // Serialized like express-session's Cookie: maxAge is computed, not stored.
    const raw = JSON.parse(JSON.stringify(await new Promise((resolve) => memory.get(record.id, (_e, v) => resolve(v))))) as { cookie: Record<string, unknown> };
    assert.deepEqual(Object.keys(raw.cookie).sort(), ['expires', 'httpOnly', 'originalMaxAge', 'path']);
  });

  it('names the missing method when a store cannot list its sessions', async () => {
    const memory = new session.MemoryStore();
    const minimal: ConnectStoreLike = {
      get: (sid, cb) => memory.get(sid, cb),
      set: (sid, sess, cb) => memory.set(sid, sess as session.SessionData, cb),
      destroy: (sid, cb) => memory.destroy(sid, cb),
    };
    const store = connectStore(minimal);
    const record = makeRecord({ userId: 'u' });
    await store.create(record);
    assert.equal((await store.get(record.id))?.userId, 'u');
    await assert.rejects(store.listByUser('u'), /listByUser needs the wrapped store's all\(\) method/);
    await assert.rejects(store.destroyByUser('u'), /all\(\)/);
    await assert.rejects(store.destroyAll(), /all\(\) or ids\(\)/);
    await assert.rejects(store.deleteExpired({ before: Date.now(), limit: 10 }), /deleteExpired needs .*all\(\)/);
    // With nativeTtl the sweep is the store's own business.
    assert.deepEqual(await connectStore(minimal, { nativeTtl: true }).deleteExpired({ before: Date.now(), limit: 10 }), { deleted: 0, cursor: null });
    assert.deepEqual(store.unsupported, ['listByUser', 'destroyByUser', 'destroyAll', 'deleteExpired']);
    assert.deepEqual(connectStore(minimal, { nativeTtl: true }).unsupported, ['listByUser', 'destroyByUser', 'destroyAll']);
    assert.deepEqual(connectStore(new session.MemoryStore()).unsupported, []);
    // Options that would call them during requests are refused at setup, not per login.
    assert.throws(() => createSessions({ store, maxSessionsPerUser: 3 }), (error: unknown) => error instanceof ConfigError && /maxSessionsPerUser needs a store that lists/.test(error.message));
    assert.throws(() => createSessions({ store, cleanupProbability: 0.01 }), (error: unknown) => error instanceof ConfigError && /cleanupProbability needs/.test(error.message));
    createSessions({ store: connectStore(minimal, { nativeTtl: true }), cleanupProbability: 0.01 });
  });

  it('turns callback errors, thrown errors and rejected promises into rejections', async () => {
    const boom = new Error('backend down');
    const failing: ConnectStoreLike = {
      get: (_sid, cb) => cb(boom),
      set: () => {
        throw boom;
      },
      destroy: () => Promise.reject(boom),
    };
    const store = connectStore(failing);
    await assert.rejects(async () => store.get(randomId()), /backend down/);
    await assert.rejects(async () => store.update(randomId(), { lastSeenAt: 1, expiresAt: 2 }), /backend down/);
    await assert.rejects(store.destroy(randomId()), /backend down/);
  });

  it('does not let a lost callback block later calls on the same id forever', async () => {
    const memory = new session.MemoryStore();
    let hang = true;
    const flaky: ConnectStoreLike = {
      get: (sid, cb) => (hang ? undefined : memory.get(sid, cb)),
      set: (sid, sess, cb) => memory.set(sid, sess as session.SessionData, cb),
      destroy: (sid, cb) => memory.destroy(sid, cb),
    };
    const store = connectStore(flaky, { queueTimeout: 50 });
    const record = makeRecord();
    void store.update(record.id, { lastSeenAt: 1, expiresAt: 2 }); // never settles
    hang = false;
    const started = Date.now();
    await store.create(record);
    assert.ok(Date.now() - started < 1_000);
    assert.deepEqual((await store.get(record.id))?.data, record.data);
  });

  it('serves real sessions through the engine', async () => {
    const sessions = createSessions({ store: connectStore(new session.MemoryStore()) });
    const handler = withSessions(sessions, async (request) => {
      const s = await getSession(request);
      s.set('n', (s.get('n', 0) as number) + 1);
      return new Response(String(s.get('n')));
    });
    const first = await handler(new Request('http://localhost/'));
    const cookie = first.headers.getSetCookie()[0]!.split(';')[0]!;
    const second = await handler(new Request('http://localhost/', { headers: { cookie } }));
    assert.equal(await second.text(), '2');
  });
});

const up = await serviceAvailable('redis');

if (!up) {
  describe('connectStore on connect-redis', { skip: 'Redis not reachable' }, () => {});
} else {
  const prefix = `cc-test-connect-${randomBytes(6).toString('hex')}:`;
  const client = createClient({ url: REDIS_URL });
  await client.connect();

  /** Deletes every key under our prefix (never FLUSHALL: the server is shared). */
  after(async () => {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
      if (keys.length > 0) await client.del(keys);
    }
    client.destroy();
  });

  testStore('connect (connect-redis 9 + node-redis 5)', {
    create: () => connectStore(new RedisStore({ client, prefix: `${prefix}contract:` })),
  });

  describe('connectStore on connect-redis', () => {
    it('gives the Redis key a TTL that follows the record expiry', async () => {
      const keyPrefix = `${prefix}ttl:`;
      const store = connectStore(new RedisStore({ client, prefix: keyPrefix }), { nativeTtl: true });
      const record = makeRecord({ expiresAt: Date.now() + 120_000 });
      await store.create(record);
      const ttl = await client.ttl(keyPrefix + record.id);
      assert.ok(ttl > 110 && ttl <= 120, `ttl ${ttl}`);
      await store.touch(record.id, { lastSeenAt: Date.now(), expiresAt: Date.now() + 3_600_000 });
      const touched = await client.ttl(keyPrefix + record.id);
      assert.ok(touched > 3_590 && touched <= 3_600, `ttl ${touched}`);
      // A record saved already expired is deleted by connect-redis rather than kept.
      await store.update(record.id, { lastSeenAt: Date.now(), expiresAt: Date.now() - 1_000 });
      assert.equal(await client.exists(keyPrefix + record.id), 0);
    });
  });
}
