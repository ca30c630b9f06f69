import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createSessions } from '../../src/index.js';
import { cookieStore } from '../../src/stores/cookie.js';
import { memoryStore } from '../../src/stores/memory.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { setup } from '../helpers/harness.js';
import { ManualClock } from '../helpers/clock.js';
import { MAX_DURATION_SECONDS } from '../../src/core/options.js';

/** Where the cookie store keeps a user's watermark in its revocation store (see cookie.ts). */
const watermarkId = (userId: string) => createHash('sha256').update('coatcheck-watermark\0').update(userId).digest('base64url');

const OLD = 'old-secret-old-secret-old-secret-0123';
const NEW = 'new-secret-new-secret-new-secret-4567';

describe('cookie store (stateless, sealed with AES-256-GCM)', () => {
  it('keeps the whole session in an encrypted cookie', async () => {
    const { visit, jar } = setup({ store: cookieStore({ secrets: [NEW] }) });
    const { setCookie } = await visit((s) => s.update({ secret: 'top-secret-value', n: 1 }));
    assert.match(setCookie[0]!, /^sid=v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Lax$/);
    const raw = jar.get('sid')!;
    assert.ok(!Buffer.from(raw.split('.')[2]!, 'base64url').toString('latin1').includes('top-secret'), 'the data is not readable');
    assert.deepEqual((await visit((s) => s.toJSON())).value, { secret: 'top-secret-value', n: 1 });
    const read = await visit((s) => s.get('n'));
    assert.deepEqual(read.setCookie, [], 'a read-only request re-seals nothing');
  });

  it('treats any tampered, truncated or foreign cookie as no session, never a throw', async () => {
    const { visit, jar, sessions } = setup({ store: cookieStore({ secrets: [NEW] }) });
    await visit((s) => s.set('admin', false));
    const real = jar.get('sid')!;
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: real.length - 1 }), fc.constantFrom('A', 'b', '-', '_', '.'), fc.boolean(), async (at, ch, truncate) => {
        const forged = truncate ? real.slice(0, at) : real.slice(0, at) + ch + real.slice(at + 1);
        fc.pre(forged !== real);
        const session = sessions.open({ cookieHeader: `sid=${forged}`, https: false });
        await session.load();
        assert.equal(session.has('admin'), false);
      }),
      { numRuns: 300 },
    );
    const other = setup({ store: cookieStore({ secrets: [OLD] }) });
    const foreign = other.sessions.open({ cookieHeader: `sid=${real}`, https: false });
    await foreign.load();
    assert.equal(foreign.isNew, true, 'a cookie sealed under another secret opens nothing');
  });

  it('re-issues a cookie opened with an old key under the newest one; dropping the old key voids it', async () => {
    const before = setup({ store: cookieStore({ secrets: [OLD] }) });
    await before.visit((s) => s.set('kept', 'yes'));
    const oldCookie = before.jar.get('sid')!;
    const rotated = setup({ store: cookieStore({ secrets: [NEW, OLD] }) });
    rotated.jar.apply([`sid=${oldCookie}`]);
    const { value, setCookie } = await rotated.visit((s) => s.get('kept'));
    assert.equal(value, 'yes');
    assert.equal(setCookie.length, 1, 're-issued on a read-only request');
    const newCookie = rotated.jar.get('sid')!;
    const onlyNew = setup({ store: cookieStore({ secrets: [NEW] }) });
    onlyNew.jar.apply([`sid=${newCookie}`]);
    assert.equal((await onlyNew.visit((s) => s.get('kept'))).value, 'yes');
    const stale = new CookieJar();
    stale.apply([`sid=${oldCookie}`]);
    assert.equal((await onlyNew.visit((s) => s.get('kept'), { browser: stale })).value, undefined);
  });

  it('enforces expiry from inside the seal on the server clock: a replay after expiry is refused', async () => {
    const { visit, jar, clock } = setup({ store: cookieStore({ secrets: [NEW] }), idleTimeout: 600 });
    await visit((s) => s.set('a', 1));
    const captured = jar.get('sid')!;
    clock.advance(601);
    const replay = new CookieJar();
    replay.apply([`sid=${captured}`]);
    assert.equal((await visit((s) => s.get('a'), { browser: replay })).value, undefined);
  });

  it('with revocations, a copied cookie is refused after logout and after killSessionsByUser', async () => {
    const revocations = memoryStore({ sweepInterval: 0 });
    const { visit, jar, clock, sessions } = setup({ store: cookieStore({ secrets: [NEW], revocations }) });
    await visit((s) => s.login('alice'));
    const stolen = jar.get('sid')!;
    clock.advance(1);
    await visit((s) => s.logout());
    const thief = new CookieJar();
    thief.apply([`sid=${stolen}`]);
    assert.equal((await visit((s) => s.userId, { browser: thief })).value, null, 'replay after logout is anonymous');

    clock.advance(1);
    const laptop = new CookieJar();
    const phone = new CookieJar();
    await visit((s) => s.login('bob'), { browser: laptop });
    await visit((s) => s.login('bob'), { browser: phone });
    await visit((s) => s.login('carol'));
    clock.advance(1);
    await sessions.killSessionsByUser('bob');
    assert.equal((await visit((s) => s.userId, { browser: laptop })).value, null);
    assert.equal((await visit((s) => s.userId, { browser: phone })).value, null);
    assert.equal((await visit((s) => s.userId)).value, 'carol');
    clock.advance(1);
    await visit((s) => s.login('bob'), { browser: phone });
    assert.equal((await visit((s) => s.userId, { browser: phone })).value, 'bob', 'a new login after the kill works');
  });

  it('with revocations, a logged-out copy stays refused for as long as it could live: past 400 days, up to absoluteTimeout', async () => {
    const DAY = 86_400;
    const clock = new ManualClock();
    // The memory store as revocation store, its background sweep running (fast), on the app's clock.
    const revocations = memoryStore({ clock, sweepInterval: 5 });
    try {
      const lifetime = MAX_DURATION_SECONDS; // the longest absoluteTimeout allowed: 100 years
      const { visit, jar } = setup({ store: cookieStore({ secrets: [NEW], revocations }), clock, idleTimeout: lifetime, absoluteTimeout: lifetime });
      await visit(async (s) => {
        await s.login('alice');
        s.setExpiry(new Date(clock.now() + 730 * DAY * 1000)); // "remember me" for two years
      });
      const stolen = jar.get('sid')!;
      clock.advance(1);
      await visit((s) => s.logout());
      const replay = async () => {
        const thief = new CookieJar();
        thief.apply([`sid=${stolen}`]);
        return (await visit((s) => s.userId, { browser: thief })).value;
      };
      const sweep = async () => {
        await new Promise((resolve) => setTimeout(resolve, 20)); // the background sweep's turn
        await revocations.deleteExpired({ before: clock.now(), limit: 1000 }); // and surely one
      };
      assert.equal(await replay(), null, 'right after logout');
      for (const [days, label] of [[399, '399 days'], [2, '401 days'], [328, '729 days']] as const) {
        clock.advance(days * DAY);
        await sweep();
        assert.equal(await replay(), null, `replay after ${label}`);
      }
      // Without the "remember me", the same cookie could live the whole absoluteTimeout.
      const forever = new CookieJar();
      await visit((s) => s.login('bob'), { browser: forever });
      const copy = forever.get('sid')!;
      clock.advance(1);
      await visit((s) => s.logout(), { browser: forever });
      clock.advance(lifetime - 2 * DAY);
      await sweep();
      const thief = new CookieJar();
      thief.apply([`sid=${copy}`]);
      assert.equal((await visit((s) => s.userId, { browser: thief })).value, null, 'replay just before its absolute timeout');
    } finally {
      await revocations.close();
    }
  });

  it('with revocations, flush/destroy and reset of a signed-in session void its copies as logout does; login does not', async () => {
    for (const end of ['flush', 'destroy', 'reset'] as const) {
      const revocations = memoryStore({ sweepInterval: 0 });
      const { visit, jar, clock } = setup({ store: cookieStore({ secrets: [NEW], revocations }) });
      await visit((s) => s.login('alice'));
      const stolen = jar.get('sid')!;
      clock.advance(1);
      await visit((s) => s[end]());
      const thief = new CookieJar();
      thief.apply([`sid=${stolen}`]);
      assert.equal((await visit((s) => s.userId, { browser: thief })).value, null, `replay after ${end} is anonymous`);
    }
    // Signing another user in on this browser leaves the first user's other devices alone.
    const revocations = memoryStore({ sweepInterval: 0 });
    const { visit, clock } = setup({ store: cookieStore({ secrets: [NEW], revocations }) });
    const phone = new CookieJar();
    await visit((s) => s.login('alice'), { browser: phone });
    await visit((s) => s.login('alice'));
    clock.advance(1);
    await visit((s) => s.login('bob'));
    assert.equal((await visit((s) => s.userId, { browser: phone })).value, 'alice');
  });

  it('without revocations a copied cookie stays valid until it expires (the documented trade-off)', async () => {
    const { visit, jar } = setup({ store: cookieStore({ secrets: [NEW] }) });
    await visit((s) => s.login('alice'));
    const copy = jar.get('sid')!;
    await visit((s) => s.logout());
    const replay = new CookieJar();
    replay.apply([`sid=${copy}`]);
    assert.equal((await visit((s) => s.userId, { browser: replay })).value, 'alice');
  });

  it('refuses a cookie over 4096 bytes with a clear error and emits nothing', async () => {
    const { visit } = setup({ store: cookieStore({ secrets: [NEW] }) });
    await assert.rejects(visit((s) => s.set('big', 'x'.repeat(5000))), (e: Error & { code?: string }) => e.code === 'ERR_COOKIE_TOO_LARGE' && /4096/.test(e.message));
  });

  it("keeps a near-limit cookie when only coatcheck's own re-seal (newer key, touch with a longer user agent) would outgrow it: no 413 on reads", async () => {
    const clock = new ManualClock();
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }) => void warnings.push(warning.code ?? '');
    process.on('warning', onWarning);
    try {
      const before = setup({ store: cookieStore({ secrets: [OLD] }), clock, idleTimeout: 3600 });
      // The largest cart whose cookie still fits, found by bisection (each try in a fresh browser).
      const fits = async (n: number) =>
        before.visit((s) => s.set('cart', 'x'.repeat(n)), { browser: new CookieJar(), userAgent: 'ua' }).then(
          (r) => r.setCookie[0]!.split(';')[0]!,
          () => null,
        );
      let low = 1000;
      let high = 4096;
      while (high - low > 1) {
        const mid = (low + high) >> 1;
        if ((await fits(mid)) === null) high = mid;
        else low = mid;
      }
      const cookie = (await fits(low))!;
      const after = setup({ store: cookieStore({ secrets: [{ id: 'a-much-longer-key-id-for-2026-q4', secret: NEW }, OLD] }), clock, idleTimeout: 3600 });
      after.jar.apply([cookie]);
      const read = await after.visit((s) => s.get('cart'), { userAgent: 'ua' });
      assert.equal((read.value as string).length, low, 'read, not refused with a 413');
      assert.deepEqual(read.setCookie, [], 'the browser keeps the cookie it has');
      clock.advance(1900); // a touch is due, from a client with a longer user agent
      const touched = await after.visit((s) => s.get('cart'), { userAgent: 'a much longer user agent string' });
      assert.equal((touched.value as string).length, low);
      assert.deepEqual(touched.setCookie, []);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(warnings.filter((code) => code === 'COATCHECK_RESEAL_TOO_LARGE').length, 1, 'said once per process');
      // A change the app asks for still fails loudly: it would be lost otherwise.
      await assert.rejects(after.visit((s) => s.set('more', 1), { userAgent: 'ua' }), { code: 'ERR_COOKIE_TOO_LARGE' });
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('says clearly what stateless sessions cannot do', async () => {
    const { sessions, visit } = setup({ store: cookieStore({ secrets: [NEW] }) });
    await assert.rejects(sessions.listByUser('alice'), { code: 'ERR_CONFIG' });
    await assert.rejects(sessions.killSessionsByUser('alice'), { code: 'ERR_CONFIG' });
    await assert.rejects(sessions.killSessionsByUser('__guest__'), { code: 'ERR_CONFIG' });
    await assert.rejects(sessions.revoke('x'), { code: 'ERR_CONFIG' });
    assert.deepEqual(await sessions.clearExpired(), { deleted: 0, batches: 0, cursor: null });
    await assert.rejects(visit((s) => s.getSecurityKey()), { code: 'ERR_CONFIG' });
    assert.ok((await visit((s) => s.csrfToken())).value.length > 20, 'the static CSRF token works');
  });

  it('fails at setup on short or missing secrets and on rotation', () => {
    assert.throws(() => cookieStore({ secrets: ['too short'] }), { code: 'ERR_CONFIG' });
    assert.throws(() => cookieStore({ secrets: [] }), { code: 'ERR_CONFIG' });
    assert.throws(() => createSessions({ store: cookieStore({ secrets: [NEW] }), rotation: { afterSeconds: 60 } }), { code: 'ERR_CONFIG' });
  });

  it('only ever raises a user\'s revocation watermark, in any order and concurrently', async () => {
    const revocations = memoryStore({ sweepInterval: 0 });
    const store = cookieStore({ secrets: [NEW], revocations });
    const now = Date.now();
    await store.revokeUser!('u', now + 2_000);
    await store.revokeUser!('u', now + 1_000); // e.g. another server whose clock is behind
    assert.equal(await store.notValidBefore!('u'), now + 2_000);
    await store.revokeUser!('u', now + 3_000);
    assert.equal(await store.notValidBefore!('u'), now + 3_000);
    // Racing raises: whatever lands last, the highest wins.
    for (const order of [[5, 9, 7], [9, 5, 7], [7, 9, 5]]) {
      const user = `race-${order.join('')}`;
      await Promise.all(order.map((s) => store.revokeUser!(user, now + s * 1_000)));
      assert.equal(await store.notValidBefore!(user), now + 9_000, `order ${order.join(',')}`);
      await Promise.all(order.map((s) => store.revokeUser!(user, now + s * 1_000 + 10_000)));
      assert.equal(await store.notValidBefore!(user), now + 19_000, `again, order ${order.join(',')}`);
    }
    // A raise replaces the marks below it: the record does not grow with every revocation.
    for (let i = 1; i <= 20; i++) await store.revokeUser!('many', now + i);
    const record = await revocations.get(watermarkId('many'));
    assert.deepEqual(record?.meta, { [`nvb:${now + 20}`]: now + 20 });
  });

  it('reads a watermark written before marks (one notValidBefore key), and raises it', async () => {
    const revocations = memoryStore({ sweepInterval: 0 });
    const store = cookieStore({ secrets: [NEW], revocations });
    const now = Date.now();
    const id = watermarkId('legacy');
    const times = { createdAt: now, lastSeenAt: now, expiresAt: now + 86_400_000 };
    await revocations.create({ id, userId: null, data: {}, meta: { notValidBefore: now }, ...times, ip: null, userAgent: null });
    assert.equal(await store.notValidBefore!('legacy'), now);
    await store.revokeUser!('legacy', now - 1);
    assert.equal(await store.notValidBefore!('legacy'), now);
    await store.revokeUser!('legacy', now + 1);
    assert.equal(await store.notValidBefore!('legacy'), now + 1);
    assert.deepEqual((await revocations.get(id))?.meta, { [`nvb:${now + 1}`]: now + 1 });
  });

  it('revokes over an expired watermark that a SQL store still holds (never swept)', async () => {
    const { sqliteStore } = await import('../../src/stores/sqlite.js');
    const revocations = sqliteStore({ path: ':memory:' });
    const store = cookieStore({ secrets: [NEW], revocations });
    const now = Date.now();
    const id = watermarkId('dormant');
    await revocations.create({ id, userId: null, data: {}, meta: { 'nvb:1': 1 }, createdAt: 1, lastSeenAt: 1, expiresAt: now - 1, ip: null, userAgent: null });
    await store.revokeUser!('dormant', now);
    assert.equal(await store.notValidBefore!('dormant'), now);
    assert.ok(((await revocations.get(id))?.expiresAt ?? 0) > now);
    await revocations.close();
  });

  it('fails closed when the revocation store is down', async () => {
    const revocations = memoryStore({ sweepInterval: 0 });
    const { visit } = setup({ store: cookieStore({ secrets: [NEW], revocations }) });
    await visit((s) => s.login('alice'));
    revocations.get = () => Promise.reject(new Error('down'));
    await assert.rejects(visit((s) => s.userId), { code: 'ERR_STORE' });
  });
});
