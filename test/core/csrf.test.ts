import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CookieJar } from '../helpers/cookie-jar.js';
import { setup } from '../helpers/harness.js';

describe('static CSRF token (validateStaticSecurityKey)', () => {
  it('is stable for the session, persists it, and validates in constant time', async () => {
    const { visit } = setup();
    const first = await visit((s) => s.csrfToken());
    assert.equal(first.setCookie.length, 1, 'issuing a token starts a session');
    const again = await visit((s) => ({ token: s.csrfToken(), ok: s.validateStaticSecurityKey(first.value), bad: s.validateStaticSecurityKey('x'.repeat(43)) }));
    assert.deepEqual(again.value, { token: first.value, ok: true, bad: false });
    assert.equal((await visit((s) => s.validateStaticSecurityKey(undefined))).value, false);
    assert.equal((await visit((s) => s.validateStaticSecurityKey(first.value.slice(1)))).value, false);
  });

  it('changes on login (a new session), so a pre-login token is useless after', async () => {
    const { visit } = setup();
    const before = (await visit((s) => s.csrfToken())).value;
    await visit((s) => s.login('alice'));
    assert.equal((await visit((s) => s.validateStaticSecurityKey(before))).value, false);
  });
});

describe('one-time CSRF tokens (getSecurityKey / validateSecurityKey)', () => {
  it('validates once, returning custom data, then never again', async () => {
    const { visit } = setup();
    const token = (await visit((s) => s.getSecurityKey({ data: { form: 'checkout' } }))).value;
    assert.deepEqual((await visit((s) => s.validateSecurityKey(token))).value, { form: 'checkout' });
    assert.equal((await visit((s) => s.validateSecurityKey(token))).value, false);
  });

  it('keeps several outstanding at once for parallel forms', async () => {
    const { visit } = setup();
    const tokens = (await visit((s) => [s.getSecurityKey(), s.getSecurityKey(), s.getSecurityKey()])).value;
    assert.equal((await visit((s) => s.validateSecurityKey(tokens[1]))).value, true);
    assert.equal((await visit((s) => s.validateSecurityKey(tokens[0]))).value, true);
    assert.equal((await visit((s) => s.validateSecurityKey(tokens[2]))).value, true);
  });

  it('lets exactly one of 20 parallel requests spend a token', async () => {
    const { sessions, visit, jar } = setup();
    const token = (await visit((s) => s.getSecurityKey())).value;
    const parallel = Array.from({ length: 20 }, () => sessions.open({ cookieHeader: jar.header(), https: false }));
    await Promise.all(parallel.map((s) => s.load()));
    const results = await Promise.all(parallel.map((s) => s.validateSecurityKey(token)));
    assert.equal(results.filter((r) => r === true).length, 1);
    await Promise.all(parallel.map((s) => s.commit(200)));
    assert.equal((await visit((s) => s.validateSecurityKey(token))).value, false);
  });

  it('expires after its lifetime and is bound to its session', async () => {
    const { visit, clock } = setup();
    const token = (await visit((s) => s.getSecurityKey({ lifetime: 60 }))).value;
    const other = new CookieJar();
    await visit((s) => s.set('other', true), { browser: other });
    assert.equal((await visit((s) => s.validateSecurityKey(token), { browser: other })).value, false, 'another session cannot spend it');
    clock.advance(61);
    assert.equal((await visit((s) => s.validateSecurityKey(token))).value, false);
    for (const junk of [undefined, 42, '', 'short', 'x'.repeat(1000)]) {
      assert.equal((await visit((s) => s.validateSecurityKey(junk))).value, false);
    }
  });

  it('can be spent in the request that issued it, on a new session and on a stored one', async () => {
    const { visit } = setup();
    assert.equal((await visit(async (s) => s.validateSecurityKey(s.getSecurityKey()))).value, true, 'a new session');
    await visit((s) => s.set('stored', true));
    const { value } = await visit(async (s) => {
      const token = s.getSecurityKey();
      return { first: await s.validateSecurityKey(token), second: await s.validateSecurityKey(token), token };
    });
    assert.deepEqual([value.first, value.second], [true, false], 'a stored session');
    assert.equal((await visit((s) => s.validateSecurityKey(value.token))).value, false, 'and it stays spent');
  });

  it('issued in a request and spent there after its commit: spent in the store, so never again', async () => {
    const { sessions, visit, jar } = setup();
    await visit((s) => s.set('stored', true));
    const session = sessions.open({ cookieHeader: jar.header(), https: false });
    await session.load();
    const token = session.getSecurityKey();
    await session.commit(200);
    assert.equal(await session.validateSecurityKey(token), true);
    assert.equal((await visit((s) => s.validateSecurityKey(token))).value, false);
  });

  it('refuses falsy data, which validation could not tell from an invalid token (null came back as true)', async () => {
    const { visit } = setup();
    await visit((s) => {
      for (const data of [false, null, 0, '']) assert.throws(() => s.getSecurityKey({ data }), { code: 'ERR_CONFIG' }, JSON.stringify(data));
      // Misuse reads as misuse, not as a TypeError from inside.
      assert.ok(s.getSecurityKey(null as unknown as undefined).length > 0);
    });
    const token = (await visit((s) => s.getSecurityKey({ data: { ok: false } }))).value;
    assert.deepEqual((await visit((s) => s.validateSecurityKey(token))).value, { ok: false });
  });

  it('refuses data over maxDataSize when issued, so the rest of the request still saves', async () => {
    const { visit } = setup({ maxDataSize: 1000 });
    await visit((s) => {
      s.set('cart', ['x']);
      assert.throws(() => s.getSecurityKey({ data: 'y'.repeat(2000) }), { code: 'ERR_TOO_LARGE' });
    });
    assert.deepEqual((await visit((s) => s.get('cart'))).value, ['x']);
  });

  it('refuses a lifetime that is not a positive finite number of seconds', async () => {
    const { visit } = setup();
    await visit((s) => {
      for (const lifetime of [0, -1, Infinity, Number.MAX_VALUE, NaN, '60' as unknown as number]) {
        assert.throws(() => s.getSecurityKey({ lifetime }), { code: 'ERR_CONFIG' }, String(lifetime));
      }
    });
    const token = (await visit((s) => s.getSecurityKey({ lifetime: 365 * 24 * 3600 }))).value;
    assert.equal((await visit((s) => s.validateSecurityKey(token))).value, true, 'a long finite lifetime works');
  });

  it('lets exactly one of several parallel requests spend a token after a cycleId', async () => {
    const { sessions, visit, jar } = setup();
    const token = (await visit((s) => s.getSecurityKey())).value;
    const parallel = Array.from({ length: 3 }, () => sessions.open({ cookieHeader: jar.header(), https: false }));
    await Promise.all(parallel.map((s) => s.load()));
    await Promise.all(parallel.map((s) => s.cycleId()));
    const results = await Promise.all(parallel.map((s) => s.validateSecurityKey(token)));
    assert.deepEqual(results.sort(), [false, false, true]);
  });

  it('dies with the session', async () => {
    const { visit } = setup();
    const token = (await visit((s) => s.getSecurityKey())).value;
    await visit((s) => s.logout());
    assert.equal((await visit((s) => s.validateSecurityKey(token))).value, false);
  });
});
