/**
 * Time as the engine sees it against time as the world keeps it: a clock stepped back (or behind
 * another process's), stored deadlines written under older settings, and the expiry getters and
 * cookie Max-Age a request reports when it writes nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createSessions, type Session } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import { redisStore } from '../../src/stores/redis.js';
import type { Store } from '../../src/stores/types.js';
import type { JsonValue } from '../../src/types.js';
import { ManualClock } from '../helpers/clock.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { deleteRedisPrefix, REDIS_URL, serviceAvailable } from '../helpers/services.js';
import { setup } from '../helpers/harness.js';

type AnySession = Session<Record<string, JsonValue>>;

const maxAgeOf = (setCookie: string[]): number | null => {
  const match = /Max-Age=(\d+)/.exec(setCookie[0] ?? '');
  return match ? Number(match[1]) : null;
};

describe('a clock stepped back (or behind another process)', () => {
  it('touches at once, so a persistent cookie never lapses while the user is active', async () => {
    const { visit, clock } = setup({ idleTimeout: 4, cookie: { persistent: true } });
    const first = await visit((s) => s.set('x', 1));
    assert.equal(maxAgeOf(first.setCookie), 4);
    clock.advance(-30); // NTP steps the clock back 30 s
    for (let i = 0; i < 6; i++) {
      clock.advance(1);
      const { value, setCookie } = await visit((s) => s.get('x'));
      assert.equal(value, 1, `request ${i + 1} after the step still has the session`);
      // Each request while this clock is behind the record's last write re-sends the cookie, so
      // the browser's Max-Age (real time) never runs out under an active user.
      assert.equal(maxAgeOf(setCookie), 4, `request ${i + 1} refreshes the cookie`);
    }
  });

  it("keeps a parallel request's longer setExpiry() (remember me) when the touch comes from a clock behind", async () => {
    let real = Date.UTC(2026, 0, 1);
    const ahead = { now: () => real + 3000 };
    const behind = { now: () => real };
    const store = memoryStore({ clock: ahead, sweepInterval: 0 });
    const onA = createSessions<Record<string, JsonValue>>({ store, clock: ahead, idleTimeout: 3600, cookie: { persistent: true } });
    const onB = createSessions<Record<string, JsonValue>>({ store, clock: behind, idleTimeout: 3600, cookie: { persistent: true } });
    const jar = new CookieJar();
    const open = async (sessions: typeof onA) => {
      const session = sessions.open({ cookieHeader: jar.header(), https: false });
      await session.load();
      return session;
    };
    const done = async (session: AnySession) => jar.apply((await session.commit(200))?.setCookie ?? []);
    const first = await open(onA);
    await first.login('alice');
    await done(first);
    real += 500;
    const readOnB = await open(onB); // loads a record written 2.5 s ahead of this clock
    const remember = await open(onA);
    remember.setExpiry(30 * 86_400);
    await done(remember);
    await done(readOnB); // a read-only request: the clock-behind touch
    real += 2 * 3_600_000;
    const later = await open(onA);
    assert.equal(later.userId, 'alice', 'still signed in two hours later: the 30-day expiry held');
    await onA.close();
    await onB.close();
  });

  it('ignores a lag under a second (clocks of two processes a little apart): no write on every request', async () => {
    const { visit, clock, store } = setup({ idleTimeout: 3600 });
    await visit((s) => s.set('x', 1));
    clock.advance(-0.5);
    const writes = () => (store.calls.update ?? 0) + (store.calls.touch ?? 0);
    const before = writes();
    for (let i = 0; i < 5; i++) await visit((s) => s.get('x'));
    assert.equal(writes(), before);
  });
});

const redisUp = await serviceAvailable('redis');

describe('a clock stepped back, on Redis (a time to live that runs in real time)', { skip: redisUp ? false : 'Redis not reachable' }, () => {
  const prefix = `cc-clock-${randomBytes(4).toString('hex')}:`;
  after(() => deleteRedisPrefix(prefix));

  it('gives the key its whole idle timeout again on the first request after the step', async () => {
    const clock = new ManualClock(Date.now());
    const store = redisStore({ url: REDIS_URL, prefix, clock });
    const sessions = createSessions<Record<string, JsonValue>>({ store, clock, idleTimeout: 60 });
    const admin = new Redis(REDIS_URL);
    const jar = new CookieJar();
    const visit = async (fn: (s: AnySession) => unknown) => {
      const session = sessions.open({ cookieHeader: jar.header(), https: false });
      await session.load();
      const value = await fn(session);
      jar.apply((await session.commit(200))?.setCookie ?? []);
      return { value, handle: session.handle };
    };
    try {
      const { handle } = await visit((s) => s.set('x', 1));
      clock.advance(-40); // the record's lastSeenAt is now 40 s ahead of this clock
      clock.advance(1);
      assert.equal((await visit((s) => s.get('x'))).value, 1);
      const ttl = await admin.pttl(`${prefix}s:{${handle}}`);
      assert.ok(ttl > 55_000, `the key lives a full idle timeout from now (${ttl} ms); before the fix it kept counting from the last write`);
    } finally {
      admin.disconnect();
      await sessions.close();
    }
  });
});

describe('the deadline a request reports when it writes nothing', () => {
  it('getExpiryAge / getExpiryDate honour a shorter deadline stored under an older idleTimeout', async () => {
    const clock = new ManualClock();
    const store = memoryStore({ clock, sweepInterval: 0 });
    const jar = new CookieJar();
    const visitWith = async (idleTimeout: number, fn: (s: AnySession) => unknown) => {
      const sessions = createSessions<Record<string, JsonValue>>({ store, clock, idleTimeout });
      const session = sessions.open({ cookieHeader: jar.header(), https: false });
      await session.load();
      const value = await fn(session);
      jar.apply((await session.commit(200))?.setCookie ?? []);
      return value;
    };
    await visitWith(600, (s) => s.set('x', 1));
    clock.advance(100);
    const reported = await visitWith(3600, (s) => ({ age: s.getExpiryAge(), date: s.getExpiryDate().getTime() }));
    assert.deepEqual(reported, { age: 500, date: clock.now() + 500_000 });
    clock.advance(501);
    assert.equal(await visitWith(3600, (s) => s.get('x')), undefined, 'and it did end then');
  });

  it("a cookie re-sent without a write (a rotated-away cookie in its grace window) counts Max-Age to the record's deadline", async () => {
    const { visit, clock, jar } = setup({ idleTimeout: 600, touchInterval: 300, cookie: { persistent: true }, rotation: { afterSeconds: 60, grace: 30 } });
    await visit((s) => s.set('x', 1));
    const old = new CookieJar();
    old.apply([`sid=${jar.get('sid')}`]);
    clock.advance(61);
    await visit((s) => s.set('x', 2)); // rotates: the browser's jar now holds the new id
    clock.advance(10);
    const { value, setCookie } = await visit((s) => ({ x: s.get('x'), age: s.getExpiryAge() }), { browser: old });
    assert.deepEqual(value, { x: 2, age: 590 });
    assert.equal(maxAgeOf(setCookie), 590, 'the cookie does not outlive the session');
  });

  it('after a commit that wrote (a touch), the getters report the new deadline, not the one loaded', async () => {
    const { visit, clock } = setup({ idleTimeout: 3600, touchInterval: 300 });
    await visit((s) => s.set('x', 1));
    clock.advance(1000);
    const { session } = await visit(() => undefined); // a touch is due: written at commit
    assert.equal(session.getExpiryAge(), 3600);
    assert.equal(session.getExpiryDate().getTime(), clock.now() + 3_600_000);
  });

  it('rounds the age down and the cookie up: a session with 0.4 s left is not deleted by its own cookie', async () => {
    const { visit } = setup({ cookie: { persistent: true } });
    const { value, setCookie } = await visit((s) => {
      s.set('x', 1);
      s.setExpiry(1.5);
      return s.getExpiryAge();
    });
    assert.equal(value, 1);
    assert.equal(maxAgeOf(setCookie), 2);
    const short = await visit((s) => s.setExpiry(0.4), { browser: new CookieJar() });
    assert.equal(maxAgeOf(short.setCookie), 1);
  });
});

describe('maxSessionsPerUser after a deploy lowered the timeouts', () => {
  it('does not count (nor refuse a sign-in for) sessions dead under the current settings, though their stored deadline is later', async () => {
    const clock = new ManualClock();
    const store: Store = memoryStore({ clock, sweepInterval: 0 });
    const limit = { limit: 2, strategy: 'refuse-new' as const };
    const before = createSessions({ store, clock, idleTimeout: 86_400, maxSessionsPerUser: limit });
    for (let i = 0; i < 2; i++) {
      const s = before.open({ cookieHeader: undefined, https: false });
      await s.load();
      await s.login('alice');
      await s.commit(200);
    }
    const after = createSessions({ store, clock, idleTimeout: 3600, maxSessionsPerUser: limit });
    clock.advance(2 * 3600); // both devices idle for 2 h: dead under the new idleTimeout
    const s = after.open({ cookieHeader: undefined, https: false });
    await s.load();
    await s.login('alice');
    assert.ok(await s.commit(200));
    assert.equal((await store.listByUser('alice')).filter((d) => d.expiresAt > clock.now()).length, 3, 'nothing was evicted to make room');
  });

  it('reads no listed session at the limit when the settings have not changed (one listByUser, no get per session)', async () => {
    const { sessions, clock, store } = setup({ maxSessionsPerUser: { limit: 20, strategy: 'evict-oldest' } });
    const signIn = async () => {
      const s = sessions.open({ cookieHeader: undefined, https: false });
      await s.load();
      await s.login('alice');
      await s.commit(200);
      clock.advance(1);
    };
    for (let i = 0; i < 20; i++) await signIn();
    const gets = store.calls.get ?? 0;
    await signIn(); // at the limit: the oldest is evicted
    assert.equal((store.calls.get ?? 0) - gets, 0, 'none read to judge it');
    assert.equal((await sessions.listByUser('alice')).length, 20);
  });

  it('still refuses when the listed sessions are alive', async () => {
    const { sessions, clock } = setup({ maxSessionsPerUser: { limit: 1, strategy: 'refuse-new' } });
    const first = sessions.open({ cookieHeader: undefined, https: false });
    await first.load();
    await first.login('alice');
    await first.commit(200);
    clock.advance(60);
    const second = sessions.open({ cookieHeader: undefined, https: false });
    await second.load();
    await assert.rejects(second.login('alice'), { code: 'ERR_TOO_MANY_SESSIONS' });
  });
});

describe('listByUser after a deploy lowered absoluteTimeout', () => {
  it('leaves out a session past the absolute timeout as configured now, though its stored deadline is later', async () => {
    const clock = new ManualClock();
    const store: Store = memoryStore({ clock, sweepInterval: 0 });
    const before = createSessions({ store, clock, idleTimeout: 86_400, absoluteTimeout: 30 * 86_400 });
    const s = before.open({ cookieHeader: undefined, https: false });
    await s.load();
    await s.login('alice');
    await s.commit(200);
    clock.advance(2 * 3600);
    assert.equal((await before.listByUser('alice')).length, 1);
    const after = createSessions({ store, clock, idleTimeout: 3600, absoluteTimeout: 3600 });
    assert.deepEqual(await after.listByUser('alice'), []);
  });
});
