/**
 * The session-management API (devices, revoke, kill by user / guests / all, session limits,
 * sweeping, one-time CSRF tokens and rotation) on every durable store, through the real engine.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { Redis } from 'ioredis';
import { createSessions, type Session, type SessionsOptions, type Store } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import { postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { sqliteStore } from '../../src/stores/sqlite.js';
import type { JsonValue } from '../../src/types.js';
import { ManualClock } from '../helpers/clock.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../helpers/services.js';

const suffix = randomBytes(4).toString('hex');
const redisUp = await serviceAvailable('redis');
const postgresUp = await serviceAvailable('postgres');

/** `clock`: the engine's, which every store's listByUser must judge expiry by. */
const stores: { name: string; up: boolean; make: (clock?: { now(): number }) => Store; cleanup: () => Promise<void> }[] = [
  { name: 'memory', up: true, make: (clock) => memoryStore({ sweepInterval: 0, clock }), cleanup: async () => undefined },
  { name: 'sqlite', up: true, make: (clock) => sqliteStore({ path: ':memory:', clock }), cleanup: async () => undefined },
  {
    name: 'postgres',
    up: postgresUp,
    make: (clock) => postgresStore({ connectionString: POSTGRES_URL, table: `cc_ops_${suffix}`, clock }),
    cleanup: async () => {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      await client.query(`DROP TABLE IF EXISTS cc_ops_${suffix}`);
      await client.end();
    },
  },
  {
    name: 'redis',
    up: redisUp,
    make: (clock) => redisStore({ url: REDIS_URL, prefix: `cc-ops-${suffix}:`, clock }),
    cleanup: async () => {
      const redis = new Redis(REDIS_URL);
      const keys = await redis.keys(`cc-ops-${suffix}:*`);
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    },
  },
];

for (const { name, up, make, cleanup } of stores) {
  describe(`session operations on ${name}`, { skip: !up && `${name} not reachable` }, () => {
    const opened: { close(): Promise<void> }[] = [];
    after(async () => {
      for (const s of opened) await s.close();
      await cleanup();
    });

    /** A fresh engine on the store (wall-clock based, so native TTLs agree). */
    function app(options: Partial<SessionsOptions> = {}, behind?: number) {
      const clock = new ManualClock(Date.now() - (behind ?? 0));
      const sessions = createSessions<Record<string, JsonValue>>({ store: make(clock), clock, ...options });
      opened.push(sessions);
      const visit = async <R>(browser: CookieJar, fn: (s: Session<Record<string, JsonValue>>) => R | Promise<R>) => {
        const session = sessions.open({ cookieHeader: browser.header(), https: false, ip: '198.51.100.4', userAgent: `agent-${name}` });
        await session.load();
        const value = await fn(session);
        browser.apply((await session.commit(200))?.setCookie ?? []);
        return value;
      };
      return { sessions, visit, clock };
    }

    it('lists devices, marks the current one, revokes one and signs out the others', async () => {
      const { sessions, visit } = app();
      const user = `u-${randomBytes(3).toString('hex')}`;
      const [laptop, phone, tablet] = [new CookieJar(), new CookieJar(), new CookieJar()];
      for (const b of [laptop, phone, tablet]) await visit(b, (s) => s.login(user));
      const current = await visit(phone, (s) => s.handle);
      const devices = await sessions.listByUser(user, { current });
      assert.equal(devices.length, 3);
      assert.deepEqual(devices.filter((d) => d.current).map((d) => d.id), [current]);
      assert.equal(devices[0]!.userAgent, `agent-${name}`);
      assert.equal(devices[0]!.ip, '198.51.100.4');
      const laptopHandle = await visit(laptop, (s) => s.handle);
      await sessions.revoke(laptopHandle!);
      assert.equal(await visit(laptop, (s) => s.userId), null);
      assert.equal(await sessions.revokeUser(user, { except: [current!] }), 1);
      assert.equal(await visit(tablet, (s) => s.userId), null);
      assert.equal(await visit(phone, (s) => s.userId), user);
    });

    it("lists and limits a user's sessions by the engine's clock, not the store's (a test clock a day behind)", async () => {
      const { sessions, visit } = app({ maxSessionsPerUser: { limit: 1, strategy: 'refuse-new' } }, 86_400_000);
      const user = `c-${randomBytes(3).toString('hex')}`;
      await visit(new CookieJar(), (s) => s.login(user));
      assert.equal((await sessions.listByUser(user)).length, 1);
      await assert.rejects(visit(new CookieJar(), (s) => s.login(user)), { code: 'ERR_TOO_MANY_SESSIONS' });
    });

    it('signs out the other devices from the request that logs in, whose handle is still null', async () => {
      const { sessions, visit } = app();
      const user = `n-${randomBytes(3).toString('hex')}`;
      const [laptop, tablet, phone] = [new CookieJar(), new CookieJar(), new CookieJar()];
      for (const b of [laptop, tablet]) await visit(b, (s) => s.login(user));
      const [handle, ended] = await visit(phone, async (s) => {
        await s.login(user);
        return [s.handle, await sessions.revokeUser(user, { except: [s.handle] })] as const;
      });
      assert.equal(handle, null, 'not stored until the commit');
      assert.equal(ended, 2);
      assert.equal(await visit(laptop, (s) => s.userId), null);
      assert.equal(await visit(tablet, (s) => s.userId), null);
      assert.equal(await visit(phone, (s) => s.userId), user);
    });

    it('revokes a device by a handle listed before its id rotated or was cycled', async () => {
      const { sessions, visit } = app({ rotation: { afterSeconds: 3600 } });
      const user = `r-${randomBytes(3).toString('hex')}`;
      const [rotating, cycling, other] = [new CookieJar(), new CookieJar(), new CookieJar()];
      for (const b of [rotating, cycling, other]) await visit(b, (s) => s.login(user));
      const listed = await visit(rotating, (s) => s.handle);
      const listedCycled = await visit(cycling, (s) => s.handle);
      await visit(rotating, (s) => s.rotate());
      await visit(cycling, (s) => s.cycleId());
      assert.notEqual(await visit(rotating, (s) => s.handle), listed);
      const destroyed: { handle: string; userId: string | null }[] = [];
      sessions.events.on('destroyed', (e) => destroyed.push({ handle: e.handle, userId: e.userId }));
      assert.equal(await sessions.revoke(listed!), true);
      assert.equal(await visit(rotating, (s) => s.userId), null, 'the device is signed out');
      assert.ok(destroyed.length >= 1 && destroyed.every((e) => e.userId === user), 'named under its user, never __moved__');
      // The cycled record leads no cookie anywhere, but names the new record for a minute.
      assert.equal(await sessions.revoke(listedCycled!), true);
      assert.equal(await visit(cycling, (s) => s.userId), null);
      assert.equal(await sessions.revoke(listedCycled!), false, 'nothing left to end');
      assert.equal(await visit(other, (s) => s.userId), user);
    });

    it('revoke(handle) of a forwarder past its grace window ends nothing and says so', async () => {
      const { sessions, visit, clock } = app({ rotation: { afterSeconds: 3600, grace: 30 } });
      const user = `g-${randomBytes(3).toString('hex')}`;
      const device = new CookieJar();
      await visit(device, (s) => s.login(user));
      const listed = await visit(device, (s) => s.handle);
      await visit(device, (s) => s.rotate());
      clock.advance(31);
      const destroyed: string[] = [];
      sessions.events.on('destroyed', (e) => destroyed.push(e.handle));
      assert.equal(await sessions.revoke(listed!), false);
      assert.deepEqual(destroyed, []);
      assert.equal(await visit(device, (s) => s.userId), user, 'the device was not ended');
    });

    it('refuses revokeUser for a guest, a reserved id or an except that is not an array, ending nothing', async () => {
      const { sessions, visit } = app();
      const guest = new CookieJar();
      await visit(guest, (s) => s.set('cart', [1]));
      for (const bad of [null, '', '__guest__', '__moved__']) {
        await assert.rejects(sessions.revokeUser(bad as string), { code: 'ERR_CONFIG' });
      }
      await assert.rejects(sessions.revokeUser('alice', { except: 'handle' as unknown as string[] }), { code: 'ERR_CONFIG' });
      assert.deepEqual(await visit(guest, (s) => s.get('cart')), [1]);
    });

    it('kills by user, guests and everyone (within this store)', async () => {
      const { sessions, visit } = app();
      const user = `k-${randomBytes(3).toString('hex')}`;
      const [member, guest, other] = [new CookieJar(), new CookieJar(), new CookieJar()];
      await visit(member, (s) => s.login(user));
      await visit(guest, (s) => s.set('cart', [1]));
      await visit(other, (s) => s.login(`${user}-other`));
      assert.equal(await sessions.killSessionsByUser(user), 1);
      assert.equal(await visit(member, (s) => s.userId), null);
      assert.ok((await sessions.killSessionsByUser('__guest__')) >= 1);
      assert.equal(await visit(guest, (s) => s.get('cart')), undefined);
      assert.equal(await visit(other, (s) => s.userId), `${user}-other`);
      assert.ok((await sessions.killSessionsByUser()) >= 1);
      assert.equal(await visit(other, (s) => s.userId), null);
    });

    it('evicts the oldest session past maxSessionsPerUser', async () => {
      const { visit, clock } = app({ maxSessionsPerUser: 2 });
      const user = `m-${randomBytes(3).toString('hex')}`;
      const browsers = [new CookieJar(), new CookieJar(), new CookieJar()];
      for (const b of browsers) {
        await visit(b, (s) => s.login(user));
        clock.advance(1);
      }
      assert.equal(await visit(browsers[0]!, (s) => s.userId), null);
      assert.equal(await visit(browsers[2]!, (s) => s.userId), user);
    });

    it('spends a one-time CSRF token exactly once across parallel requests', async () => {
      const { sessions, visit } = app();
      const jar = new CookieJar();
      const token = await visit(jar, (s) => s.getSecurityKey({ data: { form: 'pay' } }));
      const parallel = Array.from({ length: 10 }, () => sessions.open({ cookieHeader: jar.header(), https: false }));
      await Promise.all(parallel.map((s) => s.load()));
      const results = await Promise.all(parallel.map((s) => s.validateSecurityKey(token)));
      assert.equal(results.filter((r) => r !== false).length, 1);
    });

    it('rotates ids without forking parallel requests', async () => {
      const { sessions, visit, clock } = app({ rotation: { afterSeconds: 60, grace: 30 } });
      const jar = new CookieJar();
      await visit(jar, (s) => s.set('start', true));
      clock.advance(61);
      const parallel = Array.from({ length: 5 }, () => sessions.open({ cookieHeader: jar.header(), https: false }));
      await Promise.all(parallel.map((s) => s.load()));
      parallel.forEach((s, i) => s.set(`k${i}`, i));
      const results = await Promise.all(parallel.map((s) => s.commit(200)));
      const cookies = new Set(results.map((r) => r!.setCookie.find((c) => c.startsWith('sid='))!.split(';')[0]));
      assert.equal(cookies.size, 1);
      const next = new CookieJar();
      next.apply([...cookies].map(String));
      assert.deepEqual(Object.keys(await visit(next, (s) => s.toJSON())).sort(), ['k0', 'k1', 'k2', 'k3', 'k4', 'start']);
    });

    it('sweeps expired sessions in batches (a no-op where the store expires them natively)', async () => {
      const { sessions, visit, clock } = app({ idleTimeout: 60 });
      for (let i = 0; i < 12; i++) await visit(new CookieJar(), (s) => s.set('i', i));
      // Past expiry and past the sweep slack SQLite may add (an eighth of the 60 s lifetime).
      clock.advance(61 + 60 / 8);
      const result = await sessions.clearExpired({ batchSize: 5 });
      if (name === 'redis') assert.equal(result.deleted, 0, 'Redis expires keys itself');
      else {
        assert.ok(result.deleted >= 12, `deleted ${result.deleted}`);
        assert.ok(result.batches >= 3);
      }
      assert.equal((await sessions.clearExpired({ batchSize: 5 })).deleted, 0);
    });
  });
}
