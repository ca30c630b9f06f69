/**
 * Id rotation against parallel requests that loaded the session before it rotated: nothing they
 * saved is lost, nothing outlives a logout, the old id dies when the grace window ends, a
 * one-time token is spent once, and a store failure mid-rotation leaves the session usable.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CookieJar } from '../helpers/cookie-jar.js';
import { setup } from '../helpers/harness.js';
import { hashToken } from '../../src/core/token.js';
import { createSessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { SessionRecord, Store } from '../../src/stores/types.js';
import { ManualClock } from '../helpers/clock.js';

/** A browser still holding `value` as its session cookie (a stale tab, or a thief). */
function holding(value: string): CookieJar {
  const jar = new CookieJar();
  jar.apply([`sid=${value}`]);
  return jar;
}

describe('id rotation against parallel requests', () => {
  it('rotate() keeps what a parallel request saved after the rotating request loaded', async () => {
    const { sessions, visit, jar } = setup();
    await visit((s) => s.set('a', 1));
    const rotating = sessions.open({ cookieHeader: jar.header(), https: false });
    await rotating.load();
    await visit((s) => s.set('cart', ['book'])); // saved to the old record before the claim
    await rotating.rotate();
    rotating.set('role', 'admin');
    jar.apply((await rotating.commit(200))?.setCookie ?? []);
    assert.deepEqual((await visit((s) => s.toJSON())).value, { a: 1, cart: ['book'], role: 'admin' });
  });

  it('automatic rotation does the same, and this request wins on a key both changed', async () => {
    const { sessions, visit, jar, clock } = setup({ rotation: { afterSeconds: 60 } });
    await visit((s) => s.update({ a: 1, shared: 'old' }));
    clock.advance(58);
    const slow = sessions.open({ cookieHeader: jar.header(), https: false });
    await slow.load();
    await visit((s) => s.update({ cart: ['book'], shared: 'parallel' }));
    clock.advance(3); // rotation is due when the slow request commits
    slow.update({ x: 1, shared: 'slow' });
    const before = jar.get('sid');
    jar.apply((await slow.commit(200))?.setCookie ?? []);
    assert.notEqual(jar.get('sid'), before, 'the slow request rotated the id');
    assert.deepEqual((await visit((s) => s.toJSON())).value, { a: 1, cart: ['book'], shared: 'slow', x: 1 });
  });

  it('carries over a key a parallel request deleted', async () => {
    const { sessions, visit, jar } = setup();
    await visit((s) => s.update({ a: 1, gone: true }));
    const rotating = sessions.open({ cookieHeader: jar.header(), https: false });
    await rotating.load();
    await visit((s) => s.delete('gone'));
    await rotating.rotate();
    jar.apply((await rotating.commit(200))?.setCookie ?? []);
    assert.deepEqual((await visit((s) => s.toJSON())).value, { a: 1 });
  });

  it('logout() after a parallel rotation also ends the rotated copy', async () => {
    const { sessions, visit, jar, clock } = setup({ rotation: { afterSeconds: 60 } });
    await visit(async (s) => {
      await s.login('alice');
      s.set('cart', [1]);
    });
    clock.advance(61);
    const signOut = sessions.open({ cookieHeader: jar.header(), https: false });
    await signOut.load();
    const poll = sessions.open({ cookieHeader: jar.header(), https: false });
    await poll.load();
    const polled = await poll.commit(200); // commits first: rotates the id
    assert.equal(polled?.setCookie.length, 1);
    await signOut.logout();
    const signedOut = await signOut.commit(200);
    assert.deepEqual(await sessions.listByUser('alice'), []);
    // The poll's response (the rotated cookie) reaches the browser last.
    const browser = new CookieJar();
    browser.apply(signedOut?.setCookie ?? []);
    browser.apply(polled?.setCookie ?? []);
    assert.equal((await visit((s) => s.userId, { browser })).value, null);
  });

  it('a rotation that lands while a logout is deleting the old record leaves no signed-in copy', async () => {
    const { sessions, visit, jar, clock, store } = setup({ rotation: { afterSeconds: 60 } });
    await visit((s) => s.login('alice'));
    clock.advance(61);
    // The poll (a thief holding the same cookie) loaded before the logout began.
    const poll = sessions.open({ cookieHeader: jar.header(), https: false });
    await poll.load();
    const signOut = sessions.open({ cookieHeader: jar.header(), https: false });
    await signOut.load();
    // The logout's delete is slow (a remote store's round trip): the poll rotates meanwhile.
    const destroy = store.destroy.bind(store);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let gated = false;
    store.destroy = async (id) => {
      if (!gated) {
        gated = true;
        await gate;
      }
      return destroy(id);
    };
    const loggingOut = signOut.logout();
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(gated, 'the logout is deleting');
    const polled = await poll.commit(200).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
    release();
    await loggingOut;
    await signOut.commit(200);
    assert.deepEqual(await sessions.listByUser('alice'), []);
    const thief = new CookieJar();
    thief.apply([`sid=${jar.get('sid')}`]);
    if (!(polled instanceof Error)) thief.apply(polled?.setCookie ?? []);
    assert.equal((await visit((s) => s.userId, { browser: thief })).value, null, 'no cookie the poll got is signed in');
  });

  it('a binding mismatch through an old cookie in its grace window ends the session it was rotated into', async () => {
    const { visit, jar, store } = setup({ binding: { userAgent: true }, rotation: { afterSeconds: 3600 } });
    await visit((s) => s.login('alice'));
    const old = jar.get('sid')!;
    await visit((s) => s.rotate());
    assert.notEqual(jar.get('sid'), old);
    assert.equal((await visit((s) => s.userId, { browser: holding(old), userAgent: 'thief' })).value, null);
    assert.equal((await visit((s) => s.userId)).value, null, 'the victim is signed out too, as through the current cookie');
    assert.deepEqual(await store.listByUser('alice'), []);
  });

  it('the old id dies with the grace window even when the session has a fixed expiry date', async () => {
    const { visit, jar, clock } = setup();
    await visit(async (s) => {
      await s.login('alice');
      s.setExpiry(new Date(clock.now() + 86_400_000));
    });
    const old = jar.get('sid') as string;
    await visit((s) => s.rotate());
    clock.advance(10);
    assert.equal((await visit((s) => s.userId, { browser: holding(old) })).value, 'alice', 'within the grace window');
    clock.advance(600);
    assert.equal((await visit((s) => s.userId, { browser: holding(old) })).value, null, 'after it');
    assert.equal((await visit((s) => s.userId)).value, 'alice');
  });

  it('a parallel idle-timer refresh does not extend the old id past the grace window', async () => {
    const { sessions, visit, jar, clock } = setup({ idleTimeout: 3600, touchInterval: 300 });
    await visit((s) => s.login('alice'));
    const old = jar.get('sid') as string;
    clock.advance(400); // a refresh is due on the next request
    const parallel = sessions.open({ cookieHeader: jar.header(), https: false });
    await parallel.load();
    await visit((s) => s.rotate());
    const refreshed = await parallel.commit(200);
    assert.match(refreshed?.setCookie[0] ?? '', /^sid=/, 'the refresh followed the session to its new id');
    assert.notEqual(refreshed?.setCookie[0]?.split(';')[0], `sid=${old}`);
    clock.advance(600);
    assert.equal((await visit((s) => s.userId, { browser: holding(old) })).value, null);
    assert.equal((await visit((s) => s.userId)).value, 'alice');
  });

  it("a rotation's carry-over keeps a longer expiry choice a parallel request saved to the new record", async () => {
    const clock = new ManualClock();
    const inner = memoryStore({ clock, sweepInterval: 0 });
    // Runs once, when the rotating request reads the old record back for its carry-over.
    let beforeCarryOver: (() => Promise<void>) | null = null;
    const store: Store = {
      ...inner,
      get(id: string) {
        const record = inner.get(id) as SessionRecord | null;
        const hook = beforeCarryOver;
        if (hook === null || record?.meta['moved'] === undefined) return record;
        beforeCarryOver = null;
        return hook().then(() => inner.get(id));
      },
    };
    const sessions = createSessions({ store, clock, idleTimeout: 3600 });
    const jar = new CookieJar();
    const open = () => sessions.open({ cookieHeader: jar.header(), https: false });
    const first = open();
    await first.load();
    first.set('a', 1);
    first.getSecurityKey(); // an outstanding token: the new record differs, so the carry-over writes
    jar.apply((await first.commit(200))!.setCookie);
    const rotating = open();
    await rotating.load();
    const rememberMe = open();
    await rememberMe.load();
    await rotating.rotate();
    rememberMe.setExpiry(30 * 86_400);
    let rememberMeCookies: string[] = [];
    beforeCarryOver = async () => {
      rememberMeCookies = (await rememberMe.commit(200))!.setCookie;
    };
    jar.apply((await rotating.commit(200))!.setCookie);
    jar.apply(rememberMeCookies);
    assert.equal(beforeCarryOver, null, 'the parallel request committed between the claim and the carry-over');
    const record = inner.get(hashToken(jar.get('sid')!)) as SessionRecord;
    assert.equal(record.meta['expiry'], 2_592_000);
    assert.ok(record.expiresAt - clock.now() > 86_400_000, `deadline ${(record.expiresAt - clock.now()) / 1000} s`);
    clock.advance(2 * 3600);
    const later = open();
    await later.load();
    assert.equal(later.get('a'), 1, 'alive after 2 idle hours');
  });

  it('a one-time token cannot be spent twice across a rotation', async () => {
    const { sessions, visit, jar, clock } = setup();
    let token = '';
    await visit((s) => {
      s.set('x', 1);
      token = s.getSecurityKey();
    });
    const old = jar.get('sid') as string;
    const parallel = sessions.open({ cookieHeader: jar.header(), https: false });
    await parallel.load();
    await visit((s) => s.rotate());
    assert.equal(await parallel.validateSecurityKey(token), true, 'spent once, on the rotated session');
    assert.equal((await visit((s) => s.validateSecurityKey(token))).value, false, 'never twice');
    // Spending on the old record would also have pushed its life past the grace window.
    clock.advance(600);
    assert.equal((await visit((s) => s.get('x'), { browser: holding(old) })).value, undefined);
  });

  it('a token spent before the rotation stays spent in the rotated session', async () => {
    const { sessions, visit, jar } = setup();
    let token = '';
    await visit((s) => {
      s.set('x', 1);
      token = s.getSecurityKey();
    });
    const rotating = sessions.open({ cookieHeader: jar.header(), https: false });
    await rotating.load(); // still sees the token as outstanding
    assert.equal((await visit((s) => s.validateSecurityKey(token))).value, true);
    await rotating.rotate();
    jar.apply((await rotating.commit(200))?.setCookie ?? []);
    assert.equal((await visit((s) => s.validateSecurityKey(token))).value, false);
  });

  it('a token spent on the old record while a rotation is under way is never spendable on the new one', async () => {
    const { sessions, visit, jar, store } = setup();
    let token = '';
    await visit((s) => {
      s.set('x', 1);
      token = s.getSecurityKey();
    });
    const old = jar.get('sid') as string;
    const rotating = sessions.open({ cookieHeader: jar.header(), https: false });
    await rotating.load(); // still sees the token as outstanding
    await rotating.rotate();
    assert.equal((await visit((s) => s.validateSecurityKey(token), { browser: holding(old) })).value, true, 'spent on the old record');
    // Right after the claim (the new record is reachable through the forwarder) and before the
    // carry-over, a request with the old cookie tries to spend it again.
    const inner = store.update.bind(store);
    let again: unknown = null;
    store.update = ((id: string, patch: Parameters<typeof inner>[1]) => {
      const claim = patch.meta?.set?.['moved'] !== undefined;
      return Promise.resolve(inner(id, patch)).then(async (result) => {
        if (claim) {
          store.update = inner;
          again = (await visit((s) => s.validateSecurityKey(token), { browser: holding(old) })).value;
        }
        return result;
      });
    }) as typeof store.update;
    jar.apply((await rotating.commit(200))?.setCookie ?? []);
    store.update = inner;
    assert.equal(again, false, 'not spendable again through the forwarder');
    assert.equal((await visit((s) => s.validateSecurityKey(token))).value, false, 'nor on the rotated session');
    assert.equal((await visit((s) => s.get('x'))).value, 1);
  });

  it('cycleId() after a logout elsewhere fails the request instead of bringing the session back', async () => {
    const { sessions, visit, jar } = setup();
    await visit(async (s) => {
      await s.login('alice');
      s.set('x', 1);
    });
    const stolen = jar.get('sid') as string;
    const slow = sessions.open({ cookieHeader: jar.header(), https: false }); // e.g. a 2FA check
    await slow.load();
    await visit((s) => s.logout());
    await sessions.killSessionsByUser('alice');
    await slow.cycleId();
    await assert.rejects(slow.commit(200), { code: 'ERR_SESSION_GONE' });
    assert.deepEqual(await sessions.listByUser('alice'), [], 'nothing signed in came back');
    assert.equal((await visit((s) => s.userId, { browser: holding(stolen) })).value, null);
  });

  it('cycleId() keeps what parallel requests saved, and tokens they spent stay spent', async () => {
    const { sessions, visit, jar } = setup();
    let token = '';
    await visit(async (s) => {
      await s.login('bob');
      s.set('a', 1);
      token = s.getSecurityKey();
    });
    const old = jar.get('sid') as string;
    const cycling = sessions.open({ cookieHeader: jar.header(), https: false });
    await cycling.load();
    await visit((s) => s.set('cart', ['book']), { browser: holding(old) });
    assert.equal((await visit((s) => s.validateSecurityKey(token), { browser: holding(old) })).value, true);
    await cycling.cycleId();
    cycling.set('role', 'admin');
    jar.apply((await cycling.commit(200))?.setCookie ?? []);
    assert.notEqual(jar.get('sid'), old);
    const { value } = await visit((s) => ({ user: s.userId, data: s.toJSON() }));
    assert.deepEqual(value, { user: 'bob', data: { a: 1, cart: ['book'], role: 'admin' } });
    assert.equal((await visit((s) => s.validateSecurityKey(token))).value, false, 'spent once only');
    assert.equal((await visit((s) => s.userId, { browser: holding(old) })).value, null, 'the old cookie leads nowhere');
    assert.equal((await sessions.listByUser('bob')).length, 1);
  });

  it('cycleId() after a parallel rotation cycles the rotated session, and no old cookie follows it', async () => {
    const { sessions, visit, jar, clock } = setup();
    await visit(async (s) => {
      await s.login('carol');
      s.set('a', 1);
    });
    const old = jar.get('sid') as string;
    const cycling = sessions.open({ cookieHeader: jar.header(), https: false });
    await cycling.load();
    await visit(async (s) => {
      await s.rotate();
      s.set('b', 2);
    }, { browser: holding(old) });
    await cycling.cycleId();
    jar.apply((await cycling.commit(200))?.setCookie ?? []);
    assert.deepEqual((await visit((s) => ({ user: s.userId, data: s.toJSON() }))).value, { user: 'carol', data: { a: 1, b: 2 } });
    assert.equal((await visit((s) => s.userId, { browser: holding(old) })).value, null, 'the old cookie does not follow');
    assert.equal((await sessions.listByUser('carol')).length, 1, 'one device, not two');
    clock.advance(61); // the cycled mark stays a minute, for a racing logout to follow
    assert.deepEqual(await sessions.listByUser('__moved__'), [], 'no forwarder left behind');
  });

  it('cycleId(): a store that fails after the claim leaves no phantom device and the old cookie working', async () => {
    for (const failing of ['get', 'destroy'] as const) {
      const { sessions, visit, jar, store } = setup();
      await visit(async (s) => {
        await s.login('dora');
        s.set('x', 1);
      });
      const old = jar.get('sid') as string;
      const cycling = sessions.open({ cookieHeader: jar.header(), https: false });
      await cycling.load();
      await cycling.cycleId();
      store.fault = 'reject';
      store.faultOnly = [failing];
      const committed = cycling.commit(200).then(
        (result) => ({ ok: true as const, result }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      const outcome = await committed;
      store.fault = 'none';
      if (failing === 'destroy') {
        // Deleting the claimed record is clean-up: the commit stands, with the new cookie.
        assert.equal(outcome.ok, true, 'a failed clean-up does not fail the request');
        jar.apply(outcome.ok ? (outcome.result?.setCookie ?? []) : []);
        assert.deepEqual((await visit((s) => ({ user: s.userId, x: s.get('x') }))).value, { user: 'dora', x: 1 });
        assert.equal((await visit((s) => s.userId, { browser: holding(old) })).value, null, 'the old cookie leads nowhere');
      } else {
        assert.equal(outcome.ok, false, 'the carry-over could not read the old record');
        assert.deepEqual((await visit((s) => ({ user: s.userId, x: s.get('x') }), { browser: holding(old) })).value, { user: 'dora', x: 1 }, 'the old cookie works again');
      }
      assert.equal((await sessions.listByUser('dora')).length, 1, `${failing}: one device, no phantom`);
    }
  });

  it('cycleId(): a kill racing a commit that then fails is not undone (the old record is not given back)', async () => {
    for (const scope of ['user', 'revoke'] as const) {
      const base = memoryStore({ sweepInterval: 0 });
      let armed = false;
      const admin: { sessions?: { killSessionsByUser(user: string): Promise<number>; revokeUser(user: string): Promise<number> } } = {};
      // The claim of the old record arms the fault: the admin kills the user (finding only the new
      // record, the old one being under the reserved __moved__), then the carry-over's read fails.
      const store: Store = Object.assign(Object.create(base) as Store, {
        async update(id: string, patch: Parameters<Store['update']>[1]) {
          const done = await base.update(id, patch);
          if (done && patch.userId === '__moved__') armed = true;
          return done;
        },
        async get(id: string) {
          if (armed) {
            armed = false;
            if (scope === 'user') await admin.sessions!.killSessionsByUser('fay');
            else await admin.sessions!.revokeUser('fay');
            throw new Error('transient store failure');
          }
          return base.get(id);
        },
      });
      const sessions = createSessions({ store });
      admin.sessions = sessions;
      const browser = new CookieJar();
      const first = sessions.open({ cookieHeader: undefined, https: false });
      await first.load();
      await first.login('fay');
      first.set('secret', 42);
      browser.apply((await first.commit(200))?.setCookie ?? []);
      const cycling = sessions.open({ cookieHeader: browser.header(), https: false });
      await cycling.load();
      await cycling.cycleId();
      await assert.rejects(cycling.commit(200), { code: 'ERR_STORE' });
      const after = sessions.open({ cookieHeader: browser.header(), https: false });
      await after.load();
      assert.deepEqual([after.userId, after.get('secret')], [null, undefined], `${scope}: the killed session stays dead`);
      assert.deepEqual(await sessions.listByUser('fay'), [], `${scope}: no device listed`);
      await sessions.close();
    }
  });

  it('cycleId(): when the release of the claim fails too, no phantom device is left under the user', async () => {
    const base = memoryStore({ sweepInterval: 0 });
    let phase = 0; // 1: claimed, the next read fails; 2: the next update (the release) fails
    const store: Store = Object.assign(Object.create(base) as Store, {
      async update(id: string, patch: Parameters<Store['update']>[1]) {
        if (phase === 2) {
          phase = 3;
          throw new Error('transient update failure');
        }
        const done = await base.update(id, patch);
        if (done && patch.userId === '__moved__') phase = 1;
        return done;
      },
      async get(id: string) {
        if (phase === 1) {
          phase = 2;
          throw new Error('transient read failure');
        }
        return base.get(id);
      },
    });
    const sessions = createSessions({ store, maxSessionsPerUser: { limit: 1, strategy: 'refuse-new' } });
    const browser = new CookieJar();
    const first = sessions.open({ cookieHeader: undefined, https: false });
    await first.load();
    await first.login('gus');
    browser.apply((await first.commit(200))?.setCookie ?? []);
    const cycling = sessions.open({ cookieHeader: browser.header(), https: false });
    await cycling.load();
    await cycling.cycleId();
    await assert.rejects(cycling.commit(200), { code: 'ERR_STORE' });
    assert.deepEqual(await sessions.listByUser('gus'), [], 'no device without a browser');
    const again = sessions.open({ cookieHeader: undefined, https: false });
    await again.load();
    await again.login('gus'); // not refused by a phantom session
    await sessions.close();
  });

  it('cycleId() reports the ended record under its user, never the reserved __moved__', async () => {
    const { sessions, visit } = setup();
    const destroyed: { userId: string | null; reason: string }[] = [];
    sessions.events.on('destroyed', (event) => destroyed.push({ userId: event.userId, reason: event.reason }));
    await visit((s) => s.login('erin'));
    await visit((s) => s.cycleId());
    assert.deepEqual(destroyed, [{ userId: 'erin', reason: 'cycled' }]);
  });

  for (const failing of ['create', 'update'] as const) {
    it(`a store failure while rotating (${failing}) answers an error and leaves the session as it was`, async () => {
      const { visit, jar, clock, store, sessions } = setup({ rotation: { afterSeconds: 60 } });
      await visit(async (s) => {
        await s.login('alice');
        s.set('cart', ['book']);
      });
      const before = jar.get('sid') as string;
      clock.advance(61);
      store.fault = 'reject';
      store.faultOnly = [failing];
      const session = sessions.open({ cookieHeader: jar.header(), https: false });
      await session.load();
      await assert.rejects(session.commit(200), { code: 'ERR_STORE' });
      store.fault = 'none';
      assert.equal((await sessions.listByUser('alice')).length, 1, 'no half-made record is left signed in');
      const { value } = await visit((s) => ({ user: s.userId, cart: s.get('cart') }), { browser: holding(before) });
      assert.deepEqual(value, { user: 'alice', cart: ['book'] }, 'the untouched cookie still works');
    });
  }

  it('keeps nothing of a rotation whose user was signed out everywhere meanwhile', async () => {
    const { sessions, visit, jar, store } = setup();
    await visit((s) => s.login('alice'));
    const rotating = sessions.open({ cookieHeader: jar.header(), https: false });
    await rotating.load();
    await rotating.rotate();
    // Another request ends alice's sessions between this request's claim and its re-read.
    const inner = store.get.bind(store);
    let reads = 0;
    store.get = ((id: string) => {
      reads++;
      return sessions.killSessionsByUser('alice').then(() => inner(id));
    }) as typeof store.get;
    const result = await rotating.commit(200);
    store.get = inner;
    assert.equal(reads, 1);
    // The new cookie leads nowhere: the kill ended the record it names.
    jar.apply(result!.setCookie);
    assert.equal((await visit((s) => s.userId)).value, null);
    assert.deepEqual(await sessions.listByUser('alice'), []);
  });

  it('gives up a rotation whose browser signed out in a parallel request meanwhile, keeping nothing', async () => {
    const { sessions, visit, jar, store } = setup();
    await visit((s) => s.login('alice'));
    const rotating = sessions.open({ cookieHeader: jar.header(), https: false });
    await rotating.load();
    await rotating.rotate();
    rotating.set('cart', ['book']);
    const inner = store.get.bind(store);
    store.get = ((id: string) => {
      store.get = inner;
      // The old cookie follows the forwarder to the new record and signs it out.
      return visit((s) => s.logout()).then(() => inner(id));
    }) as typeof store.get;
    // The logout, arriving through the old cookie, ended the forwarder too: the rotation finds
    // its old record gone and keeps nothing.
    await assert.rejects(rotating.commit(200), { code: 'ERR_SESSION_GONE' });
    assert.deepEqual((await visit((s) => ({ user: s.userId, data: s.toJSON() }))).value, { user: null, data: {} });
    assert.deepEqual(await sessions.listByUser('alice'), []);
    assert.deepEqual(await sessions.listByUser('__moved__'), [], 'no forwarder left behind');
  });

  it('a logout that loaded before a parallel cycleId() committed ends the cycled session too', async () => {
    const { sessions, visit, jar, store } = setup();
    await visit((s) => s.login('alice'));
    const signOut = sessions.open({ cookieHeader: jar.header(), https: false });
    await signOut.load();
    const twoFactor = new CookieJar();
    twoFactor.apply([`sid=${jar.get('sid')}`]);
    await visit((s) => s.cycleId(), { browser: twoFactor }); // commits fully first
    await signOut.logout();
    await signOut.commit(200);
    assert.deepEqual(await store.listByUser('alice'), []);
    assert.equal((await visit((s) => s.userId, { browser: twoFactor })).value, null);
  });

  it('spares the session a listed handle became when a parallel request rotated it (revokeUser except)', async () => {
    const { sessions, visit } = setup();
    const laptop = new CookieJar();
    await visit((s) => s.login('alice'), { browser: laptop });
    await visit((s) => s.login('alice'));
    const mine = (await visit((s) => s.handle)).value;
    await visit((s) => s.rotate()); // this browser's parallel poll, say
    assert.equal(await sessions.revokeUser('alice', { except: [mine] }), 1);
    assert.equal((await visit((s) => s.userId)).value, 'alice');
    assert.equal((await visit((s) => s.userId, { browser: laptop })).value, null);
  });

  it('evicts a device (maxSessionsPerUser) whose id rotated between the listing and the delete', async () => {
    const { sessions, visit, store } = setup({ maxSessionsPerUser: { limit: 1 } });
    const first = new CookieJar();
    await visit((s) => s.login('alice'), { browser: first });
    const list = store.listByUser.bind(store);
    store.listByUser = (async (userId: string) => {
      const listed = await list(userId);
      store.listByUser = list;
      await visit((s) => s.rotate(), { browser: first }); // lands after the listing
      return listed;
    }) as typeof store.listByUser;
    await visit((s) => s.login('alice'));
    assert.equal((await visit((s) => s.userId, { browser: first })).value, null, 'the first device is evicted');
    assert.equal((await sessions.listByUser('alice')).length, 1);
  });

  it('reports each ended record once when a request through an old cookie cycles and then logs out', async () => {
    const { sessions, visit, jar } = setup();
    await visit((s) => s.login('alice'));
    const old = jar.get('sid') as string;
    await visit((s) => s.rotate());
    const ended: string[] = [];
    sessions.events.on('destroyed', (e) => ended.push(e.handle));
    await visit(async (s) => {
      await s.cycleId();
      await s.logout();
    }, { browser: holding(old) });
    assert.equal(new Set(ended).size, ended.length, `no record reported twice: ${ended.join(', ')}`);
    assert.equal((await visit((s) => s.userId)).value, null);
  });

  it('a binding mismatch through a forwarder written without movedTo (an older version) still ends the session', async () => {
    const { visit, jar, store, clock } = setup({ binding: { userAgent: true }, rotation: { afterSeconds: 3600 } });
    await visit((s) => s.login('alice'));
    const old = jar.get('sid') as string;
    await visit((s) => s.rotate());
    const forwarder = hashToken(old);
    const now = clock.now();
    await store.update(forwarder, { meta: { unset: ['movedTo'] }, lastSeenAt: now, expiresAt: (await store.get(forwarder))!.expiresAt });
    assert.equal((await store.get(forwarder))?.meta.movedTo, undefined);
    assert.equal((await visit((s) => s.userId, { browser: holding(old), userAgent: 'thief' })).value, null);
    assert.equal((await visit((s) => s.userId)).value, null, 'the victim is signed out, as through the current cookie');
  });

  it('kills a user whose device rotates while the kill runs, on a store that reads its index and deletes apart (as Redis)', async () => {
    const { sessions, visit, store } = setup();
    await visit((s) => s.login('alice'));
    // Redis-like destroyByUser: the user's ids are read, then each is deleted if still the user's.
    let pause: (() => Promise<void>) | null = null;
    store.destroyByUser = (async (userId: string | null, except: readonly string[] = []) => {
      const ids = (await store.listByUser(userId as string)).map((s) => s.id).filter((id) => !except.includes(id));
      if (pause) await pause();
      let deleted = 0;
      for (const id of ids) {
        const record = await store.get(id);
        if (record?.userId === userId) {
          await store.destroy(id);
          deleted++;
        }
      }
      return deleted;
    }) as typeof store.destroyByUser;
    pause = async () => {
      pause = null;
      await visit((s) => s.rotate()); // lands between the read and the deletes
    };
    await sessions.killSessionsByUser('alice');
    assert.deepEqual(await sessions.listByUser('alice'), []);
    assert.equal((await visit((s) => s.userId)).value, null, 'the rotated cookie is signed out too');
  });

  it('reports a cycled record ended once, and revoke() of a handle whose session is gone resolves false', async () => {
    const { sessions, visit, jar } = setup();
    await visit((s) => s.login('alice'));
    const old = jar.get('sid') as string;
    const oldHandle = (await visit((s) => s.handle)).value!;
    const ended: string[] = [];
    sessions.events.on('destroyed', (e) => ended.push(`${e.handle}:${e.reason}:${e.userId}`));
    const signOut = sessions.open({ cookieHeader: `sid=${old}`, https: false });
    await signOut.load();
    await visit((s) => s.cycleId());
    await signOut.logout(); // follows the cycled record to the new session
    await signOut.commit(200);
    assert.equal(new Set(ended).size, ended.length, ended.join(' | '));
    assert.equal(ended.filter((e) => e.startsWith(`${oldHandle}:`)).length, 1, 'the cycled record once');
    assert.ok(ended.every((e) => e.endsWith(':alice')), ended.join(' | '));
    assert.equal(await sessions.revoke(oldHandle), false, 'nothing signed in is left to end');
  });

  it('an old cookie whose cycled record has outlived its minute is an unknown cookie, not an expired session of __moved__', async () => {
    const { sessions, visit, jar, clock } = setup();
    await visit((s) => s.login('alice'));
    const old = jar.get('sid') as string;
    await visit((s) => s.cycleId());
    clock.advance(61);
    const events: string[] = [];
    for (const name of ['expired', 'destroyed', 'invalidCookie'] as const) sessions.events.on(name, (e) => events.push(`${name}:${'userId' in e ? String(e.userId) : ''}`));
    assert.equal((await visit((s) => s.userId, { browser: holding(old) })).value, null);
    assert.deepEqual(events, ['invalidCookie:']);
    assert.equal((await visit((s) => s.userId)).value, 'alice');
  });

  it('refuses killSessionsByUser for the reserved __moved__ (it names every forwarder, no user)', async () => {
    const { sessions } = setup();
    await assert.rejects(sessions.killSessionsByUser('__moved__'), { code: 'ERR_CONFIG' });
  });
});
