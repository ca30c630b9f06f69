import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashToken } from '../../src/core/token.js';
import { memoryStore } from '../../src/stores/memory.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { setup } from '../helpers/harness.js';

describe('automatic id rotation with a grace window', () => {
  it('never lets an old id in its grace window reach a session that has expired since', async () => {
    const { visit, clock, jar } = setup({ rotation: { afterSeconds: 60, grace: 30 } });
    await visit((s) => s.login('alice'));
    const old = new CookieJar();
    old.apply([`sid=${jar.get('sid')}`]);
    clock.advance(61);
    await visit((s) => s.get('x')); // rotates; the old id forwards for 30 s
    clock.advance(1);
    await visit((s) => s.setExpiry(5));
    clock.advance(10); // the live session is 5 s past its idle expiry, the forwarder still within grace
    assert.equal((await visit((s) => s.userId, { browser: old })).value, null, 'the old cookie');
    assert.equal((await visit((s) => s.userId)).value, null, 'the current cookie');
  });

  it('never lists the rotated-away record as a device, nor counts it against maxSessionsPerUser', async () => {
    const { visit, sessions, clock } = setup({ rotation: { afterSeconds: 60, grace: 30 }, maxSessionsPerUser: 3 });
    const [desktop, laptop, phone] = [new CookieJar(), new CookieJar(), new CookieJar()];
    await visit((s) => s.login('alice'), { browser: desktop });
    clock.advance(1);
    await visit((s) => s.login('alice'), { browser: laptop });
    const laptopBefore = laptop.get('sid');
    clock.advance(61);
    const rotated = await visit((s) => s.set('x', 1), { browser: laptop });
    assert.equal(rotated.setCookie.length, 1, 'the laptop rotated');
    const devices = await sessions.listByUser('alice', { current: rotated.session.handle });
    assert.equal(devices.length, 2);
    assert.equal(devices.filter((d) => d.current).length, 1);
    await visit((s) => s.login('alice'), { browser: phone });
    assert.equal((await visit((s) => s.userId, { browser: desktop })).value, 'alice', 'a third device fits a limit of 3');
    assert.equal((await sessions.listByUser('alice')).length, 3);
    // Nor is the forwarder a guest session: killing guests leaves the laptop's grace window alone.
    const old = new CookieJar();
    old.apply([`sid=${laptopBefore}`]);
    assert.equal(await sessions.killSessionsByUser('__guest__'), 0);
    assert.equal((await visit((s) => s.userId, { browser: old })).value, 'alice', 'the old laptop cookie still follows');
    await assert.rejects(visit((s) => s.login('__moved__')), { code: 'ERR_CONFIG' });
  });

  it('treats an idle-timer refresh as a touch with rotation on, as without it', async () => {
    for (const rotation of [undefined, { afterSeconds: 3000 }]) {
      const { visit, clock, sessions, jar } = setup(rotation ? { rotation } : {});
      const touches: boolean[] = [];
      sessions.events.on('saved', (e) => touches.push(e.touch));
      await visit((s) => s.set('a', 1));
      clock.advance(400);
      await visit((s) => s.get('a'));
      assert.deepEqual(touches, [true], `saved events (creating is no save), rotation ${JSON.stringify(rotation)}`);
      clock.advance(400);
      // Revoked elsewhere while a read-only request runs: its refresh just drops the dead cookie.
      const session = sessions.open({ cookieHeader: jar.header(), https: false });
      await session.load();
      session.get('a');
      await sessions.revoke(session.handle!);
      const result = await session.commit(200);
      assert.equal(result?.setCookie.length, 1);
      assert.match(result!.setCookie[0]!, /^sid=; Max-Age=0/);
    }
  });

  it('rotates after `afterSeconds`, keeping data, user and creation time', async () => {
    const { visit, jar, clock, sessions } = setup({ rotation: { afterSeconds: 60, grace: 10 } });
    const rotated: string[] = [];
    sessions.events.on('rotated', (e) => rotated.push(`${e.from.length}->${e.to.length}`));
    await visit(async (s) => {
      await s.login('alice');
      s.set('cart', [1]);
    });
    const first = jar.get('sid')!;
    const created = (await visit((s) => s.createdAt.getTime())).value;
    clock.advance(30);
    assert.deepEqual((await visit((s) => s.get('cart'))).setCookie, [], 'not yet due');
    clock.advance(31);
    const { setCookie, value } = await visit((s) => s.get('cart'));
    assert.deepEqual(value, [1]);
    assert.equal(setCookie.length, 1);
    const second = jar.get('sid')!;
    assert.notEqual(second, first);
    assert.deepEqual(rotated, ['43->43']);
    const after = await visit((s) => ({ user: s.userId, created: s.createdAt.getTime(), cart: s.get('cart') }));
    assert.deepEqual(after.value, { user: 'alice', created, cart: [1] });
  });

  it('lets the old id resolve to the new session during the grace window only', async () => {
    const { visit, jar, clock } = setup({ rotation: { afterSeconds: 60, grace: 10 } });
    await visit((s) => s.set('n', 1));
    const old = jar.get('sid')!;
    clock.advance(61);
    await visit((s) => s.get('n'));
    const fresh = jar.get('sid')!;
    const straggler = new CookieJar();
    straggler.apply([`sid=${old}`]);
    const during = await visit((s) => s.get('n'), { browser: straggler });
    assert.equal(during.value, 1, 'a parallel request with the old cookie is not logged out');
    assert.equal(straggler.get('sid'), fresh, 'and is moved onto the new cookie');
    clock.advance(11);
    const late = new CookieJar();
    late.apply([`sid=${old}`]);
    assert.equal((await visit((s) => s.get('n'), { browser: late })).value, undefined, 'after the grace window the old id is dead');
    assert.equal((await visit((s) => s.get('n'))).value, 1);
  });

  it('never forks: of parallel requests that all find rotation due, one rotates and the others follow', async () => {
    const { sessions, visit, jar, clock } = setup({ rotation: { afterSeconds: 60, grace: 30 } });
    await visit((s) => s.set('start', true));
    clock.advance(61);
    const header = jar.header();
    const parallel = Array.from({ length: 8 }, () => sessions.open({ cookieHeader: header, https: false }));
    await Promise.all(parallel.map((s) => s.load()));
    parallel.forEach((s, i) => s.set(`k${i}`, i));
    const results = await Promise.all(parallel.map((s) => s.commit(200)));
    const cookies = new Set(results.map((r) => r!.setCookie.find((c) => c.startsWith('sid='))!.split(';')[0]));
    assert.equal(cookies.size, 1, `all responses carry the same new cookie, got ${cookies.size}`);
    const winner = new CookieJar();
    winner.apply([...cookies].map(String));
    const { value } = await visit((s) => s.toJSON(), { browser: winner });
    assert.deepEqual(Object.keys(value).sort(), ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'start']);
  });

  it('re-applies a stale in-flight write to the rotated session instead of losing or forking it', async () => {
    const { sessions, visit, jar, clock } = setup({ rotation: { afterSeconds: 60, grace: 30 } });
    await visit((s) => s.set('a', 1));
    clock.advance(61);
    const slow = sessions.open({ cookieHeader: jar.header(), https: false });
    await slow.load(); // loaded before the rotation
    await visit((s) => s.get('a')); // rotates
    slow.set('b', 2);
    const result = await slow.commit(200);
    assert.match(result!.setCookie[0]!, /^sid=/, 'the slow request is told the new cookie');
    assert.deepEqual((await visit((s) => s.toJSON())).value, { a: 1, b: 2 });
  });

  it('rotates after `afterRequests` requests', async () => {
    const { visit, jar } = setup({ rotation: { afterRequests: 3 } });
    await visit((s) => s.set('a', 1));
    const tokens = new Set([jar.get('sid')]);
    for (let i = 0; i < 6; i++) {
      await visit((s) => s.get('a'));
      tokens.add(jar.get('sid'));
    }
    assert.equal(tokens.size, 3);
  });

  it('rotate() forces a graceful rotation on demand; the store holds no usable token', async () => {
    const { visit, jar, store } = setup();
    await visit((s) => s.set('a', 1));
    const old = jar.get('sid')!;
    await visit((s) => s.rotate());
    const fresh = jar.get('sid')!;
    assert.notEqual(fresh, old);
    const forwarder = await store.get(hashToken(old));
    assert.ok(forwarder, 'the old record forwards during the grace window');
    const dump = JSON.stringify(forwarder);
    assert.ok(!dump.includes(fresh) && !dump.includes(old), 'neither token appears in the store');
  });

  it('rejects bad rotation options at setup', async () => {
    const { createSessions } = await import('../../src/index.js');
    const store = memoryStore({ sweepInterval: 0 });
    assert.throws(() => createSessions({ store, rotation: {} }), { code: 'ERR_CONFIG' });
    assert.throws(() => createSessions({ store, rotation: { afterRequests: 1.5 } }), { code: 'ERR_CONFIG' });
    assert.throws(() => createSessions({ store, rotation: { afterSeconds: 10, grace: 0 } }), { code: 'ERR_CONFIG' });
  });
});
