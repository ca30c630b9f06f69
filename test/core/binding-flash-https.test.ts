import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashToken } from '../../src/core/token.js';
import { cookieStore } from '../../src/stores/cookie.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { setup } from '../helpers/harness.js';

describe('client binding (check_ip / check_user_agent)', () => {
  it('is off by default: a new IP or browser keeps the session', async () => {
    const { visit } = setup();
    await visit((s) => s.set('a', 1), { ip: '192.0.2.1', userAgent: 'A' });
    assert.equal((await visit((s) => s.get('a'), { ip: '198.51.100.7', userAgent: 'B' })).value, 1);
  });

  it('ends the session on an IP change when enabled, with an event', async () => {
    const { visit, sessions, store, jar } = setup({ binding: { ip: true } });
    const mismatches: string[] = [];
    sessions.events.on('bindingMismatch', (e) => mismatches.push(e.field));
    await visit((s) => s.set('a', 1), { ip: '192.0.2.1' });
    const id = hashToken(jar.get('sid')!);
    assert.equal((await visit((s) => s.get('a'), { ip: '192.0.2.1', userAgent: 'other' })).value, 1, 'UA not bound');
    const { value, setCookie } = await visit((s) => s.get('a'), { ip: '198.51.100.7' });
    assert.equal(value, undefined);
    assert.deepEqual(mismatches, ['ip']);
    assert.equal(await store.get(id), null, 'the hijacked session is ended, not just hidden');
    assert.match(setCookie[0]!, /Max-Age=0/);
  });

  it('ends the session on a User-Agent change when enabled', async () => {
    const { visit } = setup({ binding: { userAgent: true } });
    await visit((s) => s.set('a', 1), { userAgent: 'Firefox' });
    assert.equal((await visit((s) => s.get('a'), { userAgent: 'Firefox', ip: '203.0.113.1' })).value, 1);
    assert.equal((await visit((s) => s.get('a'), { userAgent: 'curl' })).value, undefined);
  });
});

describe('flash messages (integrate_flash)', () => {
  it('shows each message once and survives a redirect', async () => {
    const { visit } = setup();
    await visit((s) => {
      s.flash('Saved');
      s.flash('Check your inbox', 'warning');
    });
    await visit(() => undefined); // the redirect response itself
    const { value } = await visit((s) => s.consumeFlashes());
    assert.deepEqual(value, [
      { message: 'Saved', category: 'info' },
      { message: 'Check your inbox', category: 'warning' },
    ]);
    assert.deepEqual((await visit((s) => s.consumeFlashes())).value, []);
  });

  it('a flash alone is enough to start a session, and consuming the last one empties it', async () => {
    const { visit, jar } = setup();
    const { setCookie } = await visit((s) => s.flash('Hello'));
    assert.equal(setCookie.length, 1);
    const consumed = await visit((s) => s.consumeFlashes());
    assert.equal(consumed.value.length, 1);
    assert.match(consumed.setCookie[0]!, /Max-Age=0/);
    assert.equal(jar.header(), undefined);
  });

  it('refuses a flash with NUL or a lone surrogate when queued, as set() does, not at save', async () => {
    const { visit } = setup();
    await visit((s) => {
      assert.throws(() => s.flash('hello\u0000'), { code: 'ERR_INVALID_VALUE' });
      assert.throws(() => s.flash('ok', '\uD800'), { code: 'ERR_INVALID_VALUE' });
      s.flash('fine');
    });
    assert.deepEqual((await visit((s) => s.consumeFlashes())).value, [{ message: 'fine', category: 'info' }]);
  });

  it('keeps flashes out of the app data', async () => {
    const { visit } = setup();
    await visit((s) => {
      s.set('a', 1);
      s.flash('x');
    });
    assert.deepEqual((await visit((s) => s.keys())).value, ['a']);
  });

  it('refuses a flash over maxDataSize when queued, so the rest of the request still saves', async () => {
    const { visit } = setup({ maxDataSize: 1000 });
    await visit((s) => {
      s.set('cart', ['x']);
      assert.throws(() => s.flash('y'.repeat(2000)), { code: 'ERR_TOO_LARGE' });
    });
    assert.deepEqual((await visit((s) => s.get('cart'))).value, ['x']);
  });

  it("carries this request's flashes through login, logout and reset (not flush), never earlier ones", async () => {
    for (const end of ['login', 'logout', 'reset'] as const) {
      const { visit } = setup();
      await visit((s) => s.flash('from an earlier page'));
      await visit(async (s) => {
        s.flash(`before ${end}`);
        await (end === 'login' ? s.login('alice') : s[end]());
      });
      assert.deepEqual((await visit((s) => s.consumeFlashes())).value, [{ message: `before ${end}`, category: 'info' }], end);
    }
    const { visit, jar } = setup();
    await visit((s) => s.set('a', 1));
    const { setCookie } = await visit(async (s) => {
      s.flash('gone');
      await s.flush();
    });
    assert.match(setCookie[0] ?? '', /Max-Age=0/, 'a flush leaves no new session behind');
    assert.equal(jar.header(), undefined);
  });
});

describe('HTTP to HTTPS (ViUR two cookies)', () => {
  it('re-keys a session created over HTTP and drops its data on the switch to HTTPS', async () => {
    const { visit, store, jar } = setup();
    await visit((s) => s.set('cart', ['x']), { https: false });
    const plain = jar.get('sid')!;
    const { value, setCookie } = await visit((s) => ({ cart: s.get('cart'), isNew: s.isNew }), { https: true });
    assert.deepEqual(value, { cart: undefined, isNew: true });
    assert.equal(await store.get(hashToken(plain)), null, 'the HTTP-born record is gone');
    assert.ok(setCookie.some((c) => /^sid=; Max-Age=0; Path=\//.test(c) && !/Secure/.test(c)), 'the plain cookie is cleared');
  });

  it('keeps the data under a new HTTPS-only id when keepDataOnHttpsUpgrade is set', async () => {
    const { visit, store, jar } = setup({ keepDataOnHttpsUpgrade: true });
    await visit((s) => s.set('cart', ['x']), { https: false });
    const plain = jar.get('sid')!;
    const { value, setCookie } = await visit((s) => s.get('cart'), { https: true });
    assert.deepEqual(value, ['x']);
    assert.equal(await store.get(hashToken(plain)), null);
    const secure = setCookie.find((c) => c.startsWith('__Host-sid='))!;
    assert.match(secure, /; Secure/);
    assert.notEqual(jar.get('__Host-sid'), plain);
    assert.deepEqual((await visit((s) => s.get('cart'), { https: true })).value, ['x']);
  });

  it('never carries the user or tokens of an HTTP-born session into HTTPS, even keeping its data', async () => {
    // A plain `sid` cookie can be planted (a sibling domain, anyone on the path): with
    // keepDataOnHttpsUpgrade the victim would otherwise be signed in as the attacker.
    const { visit } = setup({ keepDataOnHttpsUpgrade: true });
    const csrf = (
      await visit(async (s) => {
        await s.login('mallory');
        s.set('cart', ['x']);
        s.flash('hi');
        return s.csrfToken();
      }, { https: false })
    ).value;
    const { value } = await visit((s) => ({ user: s.userId, cart: s.get('cart'), csrf: s.validateStaticSecurityKey(csrf), flashes: s.consumeFlashes() }), { https: true });
    assert.deepEqual(value, { user: null, cart: ['x'], csrf: false, flashes: [] });
  });

  it('keeps the HTTP-born record until the upgraded one is saved, with its expiry choice and creation time', async () => {
    const { visit, sessions, jar } = setup({ keepDataOnHttpsUpgrade: true });
    const createdAt = (
      await visit((s) => {
        s.set('cart', ['book']);
        s.setExpiry(0);
        return s.createdAt.getTime();
      }, { https: false })
    ).value;
    // A first HTTPS request that fails (5xx saves nothing) must not lose the data.
    const failing = sessions.open({ cookieHeader: jar.header(), https: true });
    await failing.load();
    await failing.commit(500);
    const { value } = await visit((s) => ({ cart: s.get('cart'), created: s.createdAt.getTime(), browserClose: s.getExpireAtBrowserClose() }), { https: true });
    assert.deepEqual(value, { cart: ['book'], created: createdAt, browserClose: true });
  });

  it('clears only the plain cookie when an unknown one arrives over HTTPS, never the __Host- one it did not send', async () => {
    const { sessions } = setup();
    const session = sessions.open({ cookieHeader: `sid=${'a'.repeat(43)}`, https: true });
    await session.load();
    const result = await session.commit(200);
    assert.deepEqual(result?.setCookie.map((c) => c.split(';')[0]), ['sid=']);
  });

  it('with cookie.prefix: false (one name for both schemes), an HTTP-born session still never carries its user into HTTPS', async () => {
    for (const store of ['memory', 'cookie'] as const) {
      const { visit, jar } = setup({
        cookie: { prefix: false },
        keepDataOnHttpsUpgrade: true,
        ...(store === 'cookie' && { store: cookieStore({ secrets: ['s-and-e-secret-of-32-bytes-total'] }) }),
      });
      await visit(async (s) => {
        await s.login('mallory');
        s.set('cart', ['x']);
      }, { https: false });
      const plain = jar.get('sid')!;
      const upgraded = await visit((s) => ({ user: s.userId, cart: s.get('cart') }), { https: true });
      assert.deepEqual(upgraded.value, { user: null, cart: ['x'] }, store);
      assert.notEqual(jar.get('sid'), plain, `${store}: re-keyed`);
      // The upgraded session is an HTTPS one now: it keeps what is done over HTTPS.
      await visit((s) => s.login('alice'), { https: true });
      assert.equal((await visit((s) => s.userId, { https: true })).value, 'alice', store);
      // Born over HTTPS: never marked, whatever the scheme of a later request.
      const https = new CookieJar();
      await visit((s) => s.login('bob'), { https: true, browser: https });
      await visit((s) => s.set('seen', 1), { https: false, browser: https });
      assert.equal((await visit((s) => s.userId, { https: true, browser: https })).value, 'bob', store);
    }
  });

  it('never lets the HTTPS cookie fall back to an HTTP one when both are present', async () => {
    const { visit, jar } = setup();
    await visit((s) => s.set('where', 'https'), { https: true });
    const httpBrowser = new CookieJar();
    await visit((s) => s.set('where', 'http'), { https: false, browser: httpBrowser });
    jar.apply([`sid=${httpBrowser.get('sid')}`]);
    assert.equal((await visit((s) => s.get('where'), { https: true })).value, 'https');
  });
});
