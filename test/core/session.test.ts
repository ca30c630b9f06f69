import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSessions, type Session, type SessionsOptions } from '../../src/index.js';
import { hashToken } from '../../src/core/token.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { JsonValue } from '../../src/types.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { setup } from '../helpers/harness.js';

const token = (jar: CookieJar) => jar.get('sid');

describe('dictionary API', () => {
  it('gets with and without a default, requires, sets, has', async () => {
    const { visit } = setup();
    await visit((s) => {
      assert.equal(s.get('missing'), undefined);
      assert.equal(s.get('missing', 42), 42);
      s.set('a', 1);
      assert.equal(s.get('a', 42), 1);
      assert.equal(s.require('a'), 1);
      assert.equal(s.has('a'), true);
      assert.equal(s.has('b'), false);
      assert.throws(() => s.require('b'), (e: Error & { code?: string }) => e.code === 'ERR_MISSING_KEY' && /"b"/.test(e.message));
    });
  });

  it('deletes (missing key throws), pops with and without default, setDefault, update', async () => {
    const { visit } = setup();
    await visit((s) => {
      s.set('a', 1).set('b', 2);
      s.delete('a');
      assert.equal(s.has('a'), false);
      assert.throws(() => s.delete('a'), { code: 'ERR_MISSING_KEY' });
      assert.equal(s.pop('b'), 2);
      assert.equal(s.pop('b', 'gone'), 'gone');
      assert.throws(() => s.pop('b'), { code: 'ERR_MISSING_KEY' });
      assert.equal(s.setDefault('c', 3), 3);
      assert.equal(s.setDefault('c', 4), 3);
      s.update({ d: [1], e: { f: null } });
      assert.deepEqual(s.entries(), [
        ['c', 3],
        ['d', [1]],
        ['e', { f: null }],
      ]);
      assert.deepEqual(s.keys(), ['c', 'd', 'e']);
      assert.deepEqual(s.values(), [3, [1], { f: null }]);
      assert.equal(s.size, 3);
      assert.equal(s.isEmpty(), false);
      s.clear();
      assert.equal(s.isEmpty(), true);
    });
  });

  it('refuses non-JSON values at set time, naming the key, and keeps the old value', async () => {
    const { visit } = setup();
    await visit((s) => {
      s.set('k', 'kept');
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      class Thing {}
      const bad: [unknown, RegExp][] = [
        [() => 1, /functions/],
        [new Date(), /Date instances .*toISOString/],
        [new Map(), /Map instances .*Object\.fromEntries/],
        [new Set([1]), /Set instances .*\[\.\.\.set\]/],
        [10n, /BigInt/],
        [undefined, /undefined/],
        [[1, undefined], /\[1\]: undefined/],
        [{ a: { b: new Map() } }, /\.a: \.b: Map/],
        [cyclic, /cycle/],
        [new Thing(), /Thing instances are not JSON \(convert it to a plain object/],
        [NaN, /finite/],
        [Infinity, /finite/],
        [Symbol('x'), /symbols/],
        ['a\u0000b', /NUL/],
        ['\uD800 alone', /unpaired surrogates/],
        ['tail \uDC00', /unpaired surrogates/],
        [{ ['k\u0000']: 1 }, /key/],
        // JSON.stringify would store something else than the value set.
        [Object.assign([1, 2], { toJSON: () => ({ injected: true }) }), /named properties/],
        [Object.defineProperty({ a: 1 }, 'toJSON', { value: () => 'other' }), /toJSON/],
        [new (class List extends Array {})(), /subclasses/],
        [Object.assign([1], { extra: 'dropped' }), /named properties/],
        // eslint-disable-next-line no-sparse-arrays -- the hole is the point
        [[1, , 3], /hole at index 1/],
        [new Array(2), /hole at index 0/],
      ];
      for (const [value, pattern] of bad) {
        assert.throws(
          () => s.set('k', value as JsonValue),
          (e: Error & { code?: string; key?: string }) => e.code === 'ERR_INVALID_VALUE' && e.key === 'k' && pattern.test(e.message),
          String(pattern),
        );
      }
      assert.throws(() => s.update({ ok: 1, bad: (() => 1) as unknown as JsonValue }), { code: 'ERR_INVALID_VALUE' });
      assert.equal(s.has('ok'), false, 'update is all-or-nothing');
      for (const notAnObject of [null, 'hi', ['a'], new Map([['a', 1]]), 5]) {
        assert.throws(() => s.update(notAnObject as unknown as Record<string, JsonValue>), { code: 'ERR_CONFIG' }, String(notAnObject));
      }
      assert.equal(s.has('0'), false, 'a string is not read as keys');
      assert.equal(s.get('k'), 'kept');
      assert.throws(() => s.set('', 1), { code: 'ERR_INVALID_VALUE' });
      assert.throws(() => s.set('bad\u0000key', 1), { code: 'ERR_INVALID_VALUE' });
      s.set('emoji', '🧥 paired surrogates are fine');
      assert.equal(s.get('emoji'), '🧥 paired surrogates are fine');
      s.set('doc', { toJSON: 'a key of that name holding data is fine' });
      assert.deepEqual(s.get('doc'), { toJSON: 'a key of that name holding data is fine' });
    });
  });

  it('refuses undefined and non-JSON values in the types as at run time (typecheck: npm run typecheck)', () => {
    interface Item {
      id: string;
      qty: number;
    }
    const typed = createSessions<{ nick?: string; cart: Item[]; seen: Date | string }>({ store: memoryStore({ sweepInterval: 0 }) });
    const s = typed.open({ cookieHeader: undefined, https: false });
    // @ts-expect-error undefined is not JSON: delete the key instead
    assert.throws(() => s.set('nick', undefined), { code: 'ERR_INVALID_VALUE' });
    // @ts-expect-error a Date is not JSON: store date.toISOString()
    assert.throws(() => s.set('seen', new Date()), { code: 'ERR_INVALID_VALUE' });
    // @ts-expect-error the same through update
    assert.throws(() => s.update({ seen: new Date() }), { code: 'ERR_INVALID_VALUE' });
    s.set('seen', new Date(0).toISOString());
    s.set('nick', 'ok');
    const cart: Item[] = [{ id: 'a', qty: 1 }];
    s.update({ cart, nick: 'b' });
    assert.deepEqual(s.toJSON(), { seen: '1970-01-01T00:00:00.000Z', nick: 'b', cart });
  });

  it('refuses non-JSON values nested inside objects and arrays in the types too', () => {
    interface Profile {
      name: string;
      nickname?: string;
      tags: readonly string[];
      pair: [number, string];
      since: Date | string;
      extra: { note?: string; at: Date | number }[];
    }
    const typed = createSessions<{ profile: Profile; anything: JsonValue }>({ store: memoryStore({ sweepInterval: 0 }) });
    const s = typed.open({ cookieHeader: undefined, https: false });
    const good = { name: 'a', tags: ['x'], pair: [1, 'b'], since: 'today', extra: [{ at: 1 }, { note: 'n', at: 2 }] } satisfies Profile;
    s.set('profile', good);
    s.set('profile', { ...good, nickname: 'optional members may be left out' });
    const withDate = { ...good, since: new Date(0) };
    // @ts-expect-error a Date one level down
    assert.throws(() => s.set('profile', withDate), { code: 'ERR_INVALID_VALUE' });
    const deeper = { ...good, extra: [{ at: new Date(0) }] };
    // @ts-expect-error a Date inside an array of objects
    assert.throws(() => s.update({ profile: deeper }), { code: 'ERR_INVALID_VALUE' });
    const undefinedMember = { ...good, name: undefined };
    // @ts-expect-error undefined as a member's value
    assert.throws(() => s.set('profile', undefinedMember), { code: 'ERR_INVALID_VALUE' });
    const value: JsonValue = { deep: [1, { ok: true }] };
    s.set('anything', value);
    // @ts-expect-error a Map inside plain JSON-looking data
    assert.throws(() => s.set('anything', { m: new Map() }), { code: 'ERR_INVALID_VALUE' });
    assert.deepEqual(s.get('anything'), value);
  });

  it('treats __proto__, constructor and method names as plain data', async () => {
    const { visit } = setup();
    await visit((s) => {
      s.set('__proto__', { isAdmin: true });
      s.set('constructor', 'c');
      s.set('get', 'not a method');
      s.set('toString', 't');
    });
    const { value } = await visit((s) => ({
      proto: s.get('__proto__'),
      keys: s.keys().sort(),
      getIsMethod: typeof s.get,
      isAdminLeak: (s as unknown as { isAdmin?: unknown }).isAdmin,
      objectLeak: ({} as { isAdmin?: unknown }).isAdmin,
      json: s.toJSON(),
    }));
    assert.deepEqual(value.proto, { isAdmin: true });
    assert.deepEqual(value.keys, ['__proto__', 'constructor', 'get', 'toString']);
    assert.equal(value.getIsMethod, 'function');
    assert.equal(value.isAdminLeak, undefined);
    assert.equal(value.objectLeak, undefined);
    assert.equal(Object.getPrototypeOf(value.json), Object.prototype);
  });
});

describe('loading and saving', () => {
  it('costs nothing when the session is never used: no store call, no cookie', async () => {
    const { store, sessions, jar, visit } = setup();
    await visit((s) => s.set('a', 1));
    store.resetCounts();
    const session = sessions.open({ cookieHeader: jar.header(), https: false });
    assert.equal(await session.commit(200), null);
    assert.equal(store.totalCalls(), 0);
  });

  it('writes nothing and sets no cookie for a session that was read but never given data', async () => {
    const { store, visit } = setup();
    const { setCookie } = await visit((s) => s.get('anything'));
    assert.deepEqual(setCookie, []);
    assert.equal(store.totalCalls(), 0, 'no cookie means no store read either');
  });

  it('places a cookie once something is stored, then reads it back with one store call', async () => {
    const { store, jar, visit } = setup();
    const first = await visit((s) => s.set('name', 'Ada'));
    assert.equal(first.setCookie.length, 1);
    assert.match(first.setCookie[0]!, /^sid=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax$/);
    store.resetCounts();
    const second = await visit((s) => s.get('name'));
    assert.equal(second.value, 'Ada');
    assert.deepEqual(store.calls, { get: 1 });
    assert.deepEqual(second.setCookie, [], 'a read-only request sets no cookie');
    assert.ok(token(jar));
  });

  it('writes only the keys a request changed, detecting in-place mutation of nested values', async () => {
    const { store, visit } = setup();
    await visit((s) => s.update({ cart: ['apple'], profile: { name: 'Ada' }, untouched: 'x' }));
    const updates: unknown[] = [];
    const original = store.update.bind(store);
    store.update = async (id, patch) => {
      updates.push(patch);
      return original(id, patch);
    };
    await visit((s) => {
      (s.get('cart') as string[]).push('pear');
      (s.get('profile') as { name: string }).name = 'Grace';
    });
    assert.equal(updates.length, 1);
    assert.deepEqual((updates[0] as { data: unknown }).data, { set: { cart: ['apple', 'pear'], profile: { name: 'Grace' } } });
    const { value } = await visit((s) => s.toJSON());
    assert.deepEqual(value, { cart: ['apple', 'pear'], profile: { name: 'Grace' }, untouched: 'x' });
  });

  it('refuses at save a non-JSON value smuggled in by in-place mutation', async () => {
    const { visit } = setup();
    await visit((s) => s.set('list', []));
    await assert.rejects(
      visit((s) => {
        (s.get('list') as unknown[]).push(new Date());
      }),
      { code: 'ERR_INVALID_VALUE' },
    );
  });

  it('markChanged forces a write even without a detected change', async () => {
    const { store, visit } = setup();
    await visit((s) => s.set('a', 1));
    store.resetCounts();
    await visit((s) => s.markChanged());
    assert.equal(store.calls.update, 1);
  });

  it('saves nothing when the response is a 5xx', async () => {
    const { store, visit } = setup();
    await visit((s) => s.set('a', 1));
    store.resetCounts();
    const { setCookie } = await visit((s) => s.set('a', 2), { status: 503 });
    assert.deepEqual(setCookie, []);
    assert.equal(store.calls.update ?? 0, 0);
    assert.equal((await visit((s) => s.get('a'))).value, 1);
    const fresh = setup();
    const created = await fresh.visit((s) => s.set('a', 1), { status: 500 });
    assert.deepEqual(created.setCookie, []);
    assert.equal(fresh.store.calls.create ?? 0, 0);
  });

  it('expires the cookie and deletes the record when a request empties the session', async () => {
    const { store, jar, visit } = setup();
    await visit((s) => s.set('a', 1));
    const id = hashToken(token(jar)!);
    const { setCookie } = await visit((s) => s.clear());
    assert.equal(setCookie.length, 1);
    assert.match(setCookie[0]!, /^sid=; Max-Age=0;/);
    assert.equal(await store.get(id), null);
    assert.equal(token(jar), undefined);
  });

  it('clear() removes data keys only: the user, a setExpiry choice and the CSRF token stay (flush ends them)', async () => {
    const { jar, visit } = setup();
    await visit(async (s) => {
      await s.login('ana');
      s.set('cart', [1]);
      s.setExpiry(86_400);
      s.csrfToken();
    });
    const before = token(jar);
    const staticToken = (await visit((s) => s.csrfToken())).value;
    const cleared = await visit((s) => {
      s.clear();
      return s.isEmpty();
    });
    assert.equal(cleared.value, true);
    assert.ok(!cleared.setCookie.some((c) => /Max-Age=0/.test(c)), 'a session that still holds a user keeps its cookie');
    assert.equal(token(jar), before);
    const after = await visit((s) => [s.userId, s.has('cart'), s.getExpiryAge(), s.csrfToken()]);
    assert.deepEqual(after.value, ['ana', false, 86_400, staticToken]);
    await visit((s) => s.flush());
    assert.equal(token(jar), undefined);
  });

  it('keeps what a parallel request stored when a stale request empties its own view', async () => {
    const { sessions, jar, visit, store } = setup();
    await visit((s) => s.update({ cart: ['apple'], note: 'x' }));
    const open = () => sessions.open({ cookieHeader: jar.header(), https: false });
    const [a, b] = [open(), open()];
    await Promise.all([a.load(), b.load()]);
    b.set('language', 'de');
    b.delete('note');
    await b.commit(200);
    a.delete('cart');
    a.delete('note');
    const { setCookie } = (await a.commit(200))!;
    assert.deepEqual(setCookie, [], 'the cookie stays: the session is not empty');
    assert.deepEqual((await visit((s) => s.toJSON())).value, { language: 'de' });
    // With nothing new left in it, an emptied record is deleted; a request still holding it cannot revive it.
    const [c, d] = [open(), open()];
    await Promise.all([c.load(), d.load()]);
    c.delete('language');
    await c.commit(200);
    assert.equal(await store.get(hashToken(token(jar)!)), null, 'emptied with nothing new: deleted');
    d.flash('saved');
    await assert.rejects(d.commit(200), { code: 'ERR_SESSION_GONE' });
  });

  it('keeps a stale emptied session whose removals were saved when the re-read or delete then fails', async () => {
    const { sessions, visit, jar, store } = setup();
    await visit((s) => s.flash('Saved!'));
    const session = sessions.open({ cookieHeader: jar.header(), https: false });
    await session.load();
    assert.equal(session.consumeFlashes().length, 1);
    const [get, destroy, destroyIfEmpty] = [store.get.bind(store), store.destroy.bind(store), store.destroyIfEmpty];
    store.get = () => Promise.reject(new Error('ECONNRESET'));
    store.destroy = () => Promise.reject(new Error('ECONNRESET'));
    store.destroyIfEmpty = () => Promise.reject(new Error('ECONNRESET'));
    const result = await session.commit(200); // not a 503: the consumed flash is gone already
    store.get = get;
    store.destroy = destroy;
    store.destroyIfEmpty = destroyIfEmpty;
    assert.deepEqual(result?.setCookie, []);
    assert.deepEqual((await visit((s) => s.consumeFlashes())).value, []);
  });

  it('refuses to resurrect a session destroyed by another request', async () => {
    const { sessions, jar, visit } = setup();
    await visit((s) => s.set('a', 1));
    const stale = sessions.open({ cookieHeader: jar.header(), https: false });
    await stale.load();
    await visit((s) => s.flush()); // logout elsewhere
    stale.set('b', 2);
    await assert.rejects(stale.commit(200), (e: Error & { code?: string; status?: number }) => e.code === 'ERR_SESSION_GONE' && e.status === 409);
    const again = sessions.open({ cookieHeader: `sid=${'x'.repeat(43)}`, https: false });
    await again.load();
    assert.equal(again.isNew, true);
  });

  it('throws a clear error when data is used before load on a request with a cookie', async () => {
    const { sessions, jar, visit } = setup();
    await visit((s) => s.set('a', 1));
    const session = sessions.open({ cookieHeader: jar.header(), https: false });
    assert.throws(() => session.get('a'), { code: 'ERR_NOT_LOADED' });
    await session.load();
    assert.equal(session.get('a'), 1);
  });

  it('shares one store read between concurrent load() calls', async () => {
    const { store, sessions, jar, visit } = setup();
    await visit((s) => s.set('a', 1));
    store.resetCounts();
    const session = sessions.open({ cookieHeader: jar.header(), https: false });
    await Promise.all([session.load(), session.load(), session.load()]);
    assert.equal(store.calls.get, 1);
  });

  it('refuses one oversize value at set time, counting UTF-8 bytes, with status 413', async () => {
    const { visit, store } = setup({ maxDataSize: 1000 });
    await visit((s) => {
      assert.throws(() => s.set('big', 'x'.repeat(2000)), (e: Error & { code?: string; status?: number }) => e.code === 'ERR_TOO_LARGE' && e.status === 413);
      assert.throws(() => s.set('euro', '€'.repeat(400)), { code: 'ERR_TOO_LARGE' }, '400 chars but 1200 bytes');
      assert.throws(() => s.update({ ok: 1, big: 'x'.repeat(2000) }), { code: 'ERR_TOO_LARGE' });
      assert.equal(s.has('ok'), false);
      s.set('fits', '€'.repeat(300));
    });
    assert.equal(store.calls.create, 1);
  });

  it('counts engine meta such as flash messages toward the limit, and caps the flash queue', async () => {
    const { visit } = setup({ maxDataSize: 2000 });
    await assert.rejects(
      visit((s) => {
        for (let i = 0; i < 50; i++) s.flash('m'.repeat(100));
      }),
      { code: 'ERR_TOO_LARGE' },
    );
    const roomy = setup();
    await roomy.visit((s) => {
      for (let i = 0; i < 500; i++) s.flash(`message ${i}`);
    });
    const flashes = (await roomy.visit((s) => s.consumeFlashes())).value;
    assert.equal(flashes.length, 100);
    assert.equal(flashes[0]!.message, 'message 400', 'the newest are kept');
  });

  it('refuses session data over maxDataSize at save and writes nothing', async () => {
    const { store, visit } = setup({ maxDataSize: 1000 });
    await assert.rejects(visit((s) => s.set('big', 'x'.repeat(2000))), { code: 'ERR_TOO_LARGE' });
    assert.equal(store.calls.create ?? 0, 0);
  });
});

describe('cookies and ids', () => {
  it('issues 256-bit url-safe tokens and stores only their SHA-256', async () => {
    const { store, jar, visit } = setup();
    await visit((s) => s.set('a', 1));
    const raw = token(jar)!;
    assert.match(raw, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(raw, 'base64url').length, 32);
    assert.equal(await store.get(raw), null, 'the raw token is not a store key');
    assert.ok(await store.get(hashToken(raw)));
  });

  it('rejects malformed tokens before any store call and never adopts unknown ones', async () => {
    const { store, sessions } = setup();
    const events: string[] = [];
    sessions.events.on('invalidCookie', (e) => events.push(e.reason));
    for (const header of ['sid=short', 'sid=' + '!'.repeat(43), 'sid=' + 'a'.repeat(5000), 'sid=a\u0000b', 'sid=%E0%A4%A']) {
      const session = sessions.open({ cookieHeader: header, https: false });
      await session.load();
      assert.equal(session.isNew, true);
    }
    assert.equal(store.totalCalls(), 0);
    const attackerToken = 'A'.repeat(43);
    const session = sessions.open({ cookieHeader: `sid=${attackerToken}`, https: false });
    await session.load();
    session.set('x', 1);
    const result = await session.commit(200);
    assert.equal(store.calls.get, 1);
    assert.ok(!result!.setCookie[0]!.includes(attackerToken), 'fixation: the attacker-chosen id is not adopted');
    assert.equal(await store.get(hashToken(attackerToken)), null);
    assert.ok(events.includes('malformed') && events.includes('unknown'));
  });

  it('treats two different values for the session cookie as no session', async () => {
    const { jar, sessions, visit } = setup();
    await visit((s) => s.set('a', 1));
    const session = sessions.open({ cookieHeader: `${jar.header()}; sid=${'B'.repeat(43)}`, https: false });
    await session.load();
    assert.equal(session.isNew, true);
    const same = sessions.open({ cookieHeader: `${jar.header()}; ${jar.header()}`, https: false });
    await same.load();
    assert.equal(same.get('a'), 1, 'an identical duplicate is harmless');
  });

  it('uses a __Host- cookie with Secure on HTTPS and never reads a spoofed prefix', async () => {
    const { visit, sessions } = setup();
    const https = new CookieJar();
    const { setCookie } = await visit((s) => s.set('a', 1), { https: true, browser: https });
    assert.match(setCookie[0]!, /^__Host-sid=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    const value = https.get('__Host-sid')!;
    for (const spoof of [`__%48ost-sid=${value}`, `"__Host-sid"=${value}`, `_[Host-sid=${value}`, `__host-sid=${value}`]) {
      const session = sessions.open({ cookieHeader: spoof, https: true });
      await session.load();
      assert.equal(session.isNew, true, spoof);
    }
  });

  it('sends Max-Age only for persistent cookies', async () => {
    const persistent = setup({ cookie: { persistent: true }, idleTimeout: 600 });
    const { setCookie } = await persistent.visit((s) => s.set('a', 1));
    assert.match(setCookie[0]!, /; Max-Age=600;/);
  });

  it('throws at setup on misconfiguration', () => {
    const store = memoryStore({ sweepInterval: 0 });
    const bad: [Partial<SessionsOptions>, RegExp][] = [
      [{ cookie: { sameSite: 'none' } }, /requires cookie.secure/],
      [{ cookie: { name: '__Host-sid', secure: true, domain: 'example.com' } }, /__Host-/],
      [{ cookie: { name: '__Secure-sid', secure: false } }, /__Secure-/],
      [{ cookie: { name: 'bad name;' } }, /not a valid cookie name/],
      [{ cookie: { path: 'relative' } }, /path/],
      [{ idleTimeout: 0 }, /idleTimeout/],
      [{ idleTimeout: 60, touchInterval: 60 }, /touchInterval/],
      [{ idleTimeout: 600, touchInterval: 301 }, /touchInterval must be at most half of idleTimeout/],
      [{ absoluteTimeout: -1 }, /absoluteTimeout/],
      [{ persistentFieldsOnLogin: 'language' as unknown as string[] }, /persistentFieldsOnLogin/],
      // Values that would inject attributes or fail on every request instead of here.
      [{ cookie: { path: '/; Domain=evil.example' } }, /cookie.path/],
      [{ cookie: { domain: 'ex ample.com' } }, /cookie.domain/],
      [{ cookie: { domain: '' } }, /cookie.domain/],
      // Strings from environment variables, and values no timer can hold.
      [{ storeTimeout: '5000' as unknown as number }, /storeTimeout/],
      [{ storeTimeout: Infinity }, /storeTimeout/],
      [{ maxDataSize: '1000' as unknown as number }, /maxDataSize/],
      [{ trustProxy: 'false' as unknown as boolean }, /trustProxy must be true or false/],
      [{ cookie: { persistent: 'false' as unknown as boolean } }, /cookie.persistent/],
      [{ cookie: { httpOnly: 'false' as unknown as boolean } }, /cookie.httpOnly/],
      [{ binding: { ip: 'yes' as unknown as boolean } }, /binding.ip/],
      [{ keepDataOnHttpsUpgrade: 1 as unknown as boolean }, /keepDataOnHttpsUpgrade/],
      [{ rotation: null as unknown as { afterSeconds: number } }, /rotation must be an object/],
      [{ maxSessionsPerUser: null as unknown as number }, /maxSessionsPerUser/],
      // Date.now itself is a function, not a clock: every request would throw.
      [{ clock: Date.now as unknown as { now(): number } }, /clock must be an object with a now\(\) method/],
      [{ clock: null as unknown as { now(): number } }, /clock/],
      // null is not "the default" (some options read it so, others refused it).
      [{ idleTimeout: null as unknown as number }, /idleTimeout is null: leave it out/],
      [{ storeTimeout: null as unknown as number }, /storeTimeout is null/],
      [{ maxDataSize: null as unknown as number }, /maxDataSize is null/],
      [{ cookie: { persistent: null as unknown as boolean } }, /cookie.persistent is null/],
      [{ cookie: { sameSite: null as unknown as 'lax' } }, /cookie.sameSite is null: coatcheck always sends the SameSite attribute/],
      [{ rotation: { afterSeconds: 60, grace: null as unknown as number } }, /rotation.grace is null/],
      // Past a JavaScript Date's range every deadline broke at request time (Invalid Date, SQL errors).
      [{ absoluteTimeout: Number.MAX_SAFE_INTEGER }, /absoluteTimeout must be at most 3153600000 seconds \(100 years\)/],
      [{ idleTimeout: 1e13 }, /idleTimeout must be at most/],
      [{ rotation: { afterSeconds: 1e17 } }, /rotation.afterSeconds must be at most/],
      [{ rotation: { afterRequests: 1.5 } }, /rotation.afterRequests must be a whole number of requests/],
      [{ rotation: { afterRequests: 0 } }, /rotation.afterRequests must be a whole number of requests/],
    ];
    for (const [options, pattern] of bad) {
      assert.throws(() => createSessions({ store, ...options }), (e: Error & { code?: string }) => e.code === 'ERR_CONFIG' && pattern.test(e.message), String(pattern));
    }
    assert.throws(() => createSessions({} as SessionsOptions), { code: 'ERR_CONFIG' });
    // A request count is not a duration: "practically never" is accepted.
    assert.doesNotThrow(() => createSessions({ store, rotation: { afterRequests: Number.MAX_SAFE_INTEGER } }));
  });

  it('refuses option names it does not have: typos, and express-session options with their replacement', () => {
    const store = memoryStore({ sweepInterval: 0 });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ idleTimout: 60 }, /unknown option idleTimout: did you mean idleTimeout\?/],
      [{ secret: 'x'.repeat(32) }, /unknown option secret: server-side sessions need no secret/],
      [{ rolling: true }, /unknown option rolling: sessions always slide/],
      [{ saveUninitialized: false }, /unknown option saveUninitialized/],
      [{ cookie: { maxAge: 1_800_000 } }, /unknown option cookie\.maxAge: use idleTimeout/],
      [{ cookie: { sameSite: 'lax', secur: true } }, /unknown option cookie\.secur: did you mean secure\?/],
      [{ binding: { ip: true, agent: true } }, /unknown option binding\.agent/],
      [{ rotation: { afterSeconds: 60, graceSeconds: 5 } }, /unknown option rotation\.graceSeconds/],
      [{ maxSessionsPerUser: { limit: 3, strategie: 'refuse-new' } }, /unknown option maxSessionsPerUser\.strategie: did you mean strategy\?/],
      [{ cookie: 'sid' }, /cookie must be an object/],
    ];
    for (const [options, pattern] of bad) {
      assert.throws(() => createSessions({ store, ...options } as SessionsOptions), (e: Error & { code?: string }) => e.code === 'ERR_CONFIG' && pattern.test(e.message), String(pattern));
    }
    // A number given as a string (an environment variable) shows as a string.
    assert.throws(() => createSessions({ store, idleTimeout: '1800' as unknown as number }), /idleTimeout must be a positive number of seconds, got "1800"/);
  });
});

describe('lifecycle', () => {
  it('login resets the session keeping only persistent fields; the old id is dead at once', async () => {
    const { store, jar, visit } = setup();
    await visit((s) => s.update({ language: 'de', cart: ['x'] }));
    const before = token(jar)!;
    const { value } = await visit(async (s) => {
      await s.login('alice');
      assert.equal(await store.get(hashToken(before)), null, 'old record deleted before the response');
      return { language: s.get('language'), cart: s.get('cart'), user: s.userId };
    });
    assert.deepEqual(value, { language: 'de', cart: undefined, user: 'alice' });
    assert.notEqual(token(jar), before);
    const replay = new CookieJar();
    replay.apply([`sid=${before}`]);
    assert.equal((await visit((s) => s.userId, { browser: replay })).value, null);
    assert.equal((await visit((s) => s.userId)).value, 'alice');
  });

  it('keeps an expiry set before login() ("remember me"), unless the session was another user\'s', async () => {
    const { visit } = setup({ idleTimeout: 600 });
    const { setCookie } = await visit(async (s) => {
      s.setExpiry(3600);
      await s.login('alice');
    });
    assert.match(setCookie[0]!, /Max-Age=3600/);
    assert.equal((await visit((s) => s.getExpiryAge())).value, 3600);
    const browserClose = await visit(async (s) => {
      s.setExpiry(0);
      await s.login('alice');
      return s.getExpireAtBrowserClose();
    });
    assert.equal(browserClose.value, true);
    assert.doesNotMatch(browserClose.setCookie[0]!, /Max-Age|Expires/);
    await visit((s) => s.setExpiry(3600));
    // Another user signing in on this browser starts from the defaults.
    const other = await visit(async (s) => {
      await s.login('bob');
      return s.getExpiryAge();
    });
    assert.equal(other.value, 600);
  });

  it('refuses a user id no store can keep as given (NUL, lone surrogate) before ending the old session', async () => {
    const { jar, visit } = setup();
    await visit((s) => s.login('alice'));
    const before = token(jar);
    for (const userId of ['x\u0000y', 'mallory\uD800', '\uDC00x']) {
      await assert.rejects(visit((s) => s.login(userId)), { code: 'ERR_INVALID_VALUE', key: 'userId' });
    }
    assert.equal(token(jar), before);
    assert.equal((await visit((s) => s.userId)).value, 'alice');
  });

  it('logout resets keeping persistentFieldsOnLogout and clears the user', async () => {
    const { jar, visit, store } = setup({ persistentFieldsOnLogout: ['language', 'theme'] });
    await visit(async (s) => {
      await s.login('bob');
      s.update({ language: 'fr', theme: 'dark', secret: 1 });
    });
    const before = token(jar)!;
    await visit((s) => s.logout());
    const { value } = await visit((s) => ({ user: s.userId, data: s.toJSON() }));
    assert.deepEqual(value, { user: null, data: { language: 'fr', theme: 'dark' } });
    assert.notEqual(token(jar), before);
    assert.deepEqual(await store.listByUser('bob'), []);
  });

  it('logout with nothing to keep expires the cookie and creates no record', async () => {
    const { jar, visit, store } = setup({ persistentFieldsOnLogout: [] });
    await visit((s) => s.login('bob'));
    store.resetCounts();
    const { setCookie } = await visit((s) => s.logout());
    assert.match(setCookie[0]!, /Max-Age=0/);
    assert.equal(store.calls.create ?? 0, 0);
    assert.equal(jar.header(), undefined);
  });

  it('reset() with an explicit keep list', async () => {
    const { visit } = setup();
    await visit((s) => s.update({ a: 1, b: 2, c: 3 }));
    await visit((s) => s.reset({ keep: ['b'] }));
    assert.deepEqual((await visit((s) => s.toJSON())).value, { b: 2 });
  });

  it('refuses a property written onto the session (express-session habit) instead of dropping it unsaved', async () => {
    const { visit } = setup();
    await visit((s) => {
      assert.throws(() => {
        (s as unknown as Record<string, unknown>).views = 1;
      }, TypeError);
      assert.equal((s as unknown as Record<string, unknown>).views, undefined);
      s.set('views', 1); // the way that is saved
    });
    assert.equal((await visit((s) => s.get('views'))).value, 1);
  });

  it('reset() refuses a keep list that is not an array of names before ending anything', async () => {
    const { visit, jar } = setup();
    await visit((s) => s.update({ language: 'de' }));
    const before = token(jar);
    for (const keep of ['language', null, [1]]) {
      await visit(async (s) => {
        await assert.rejects(s.reset({ keep: keep as unknown as string[] }), { code: 'ERR_CONFIG' }, JSON.stringify(keep));
      });
    }
    assert.equal(token(jar), before, 'the session was not reset');
    assert.deepEqual((await visit((s) => s.toJSON())).value, { language: 'de' }, 'and kept its data');
    await visit((s) => s.reset(null as unknown as undefined)); // no options: keeps nothing, as reset()
    assert.deepEqual((await visit((s) => s.toJSON())).value, {});
  });

  it('cycleId keeps data and creation time under a new id; the old id leads nowhere', async () => {
    const { jar, visit, store, clock } = setup();
    await visit(async (s) => {
      await s.login('carol');
      s.set('cart', ['a']);
    });
    const before = token(jar)!;
    const created = (await visit((s) => s.createdAt.getTime())).value;
    clock.advance(60);
    await visit((s) => s.cycleId());
    assert.notEqual(token(jar), before);
    // Kept a minute as a mark no cookie can follow (a racing logout follows its movedTo instead).
    assert.equal((await store.get(hashToken(before)))?.meta.moved, 'cycled');
    const replay = new CookieJar();
    replay.apply([`sid=${before}`]);
    assert.equal((await visit((s) => s.isNew, { browser: replay })).value, true, 'the old cookie has no session');
    const { value } = await visit((s) => ({ data: s.toJSON(), user: s.userId, created: s.createdAt.getTime() }));
    assert.deepEqual(value, { data: { cart: ['a'] }, user: 'carol', created });
    clock.advance(61);
    const mark = await store.get(hashToken(before));
    assert.ok(mark === null || mark.expiresAt <= clock.now(), 'expired once its minute is over');
  });

  it('flush and destroy delete data and record and expire the cookie', async () => {
    for (const method of ['flush', 'destroy'] as const) {
      const { jar, visit, store } = setup();
      await visit((s) => s.set('a', 1));
      const id = hashToken(token(jar)!);
      const { setCookie } = await visit((s) => s[method]());
      assert.match(setCookie[0]!, /Max-Age=0/);
      assert.equal(await store.get(id), null);
    }
  });

  it('emits created, destroyed and expired events with handles, never tokens', async () => {
    const { sessions, visit, jar, clock } = setup();
    const seen: string[] = [];
    sessions.events.on('created', (e) => seen.push(`created:${e.handle.length}`));
    sessions.events.on('destroyed', (e) => seen.push(`destroyed:${e.reason}`));
    sessions.events.on('expired', (e) => seen.push(`expired:${e.reason}`));
    sessions.events.on('created', () => {
      throw new Error('a listener bug must not break the request');
    });
    await visit((s) => s.set('a', 1));
    const raw = token(jar)!;
    await visit((s) => s.login('u'));
    clock.advance(3601);
    await visit((s) => s.get('a'));
    assert.deepEqual(seen, ['created:43', 'destroyed:login', 'created:43', 'expired:idle', 'destroyed:expired']);
    assert.ok(!JSON.stringify(seen).includes(raw));
  });
});

describe('expiry', () => {
  it('enforces the idle timeout on the server clock', async () => {
    const { visit, clock } = setup({ idleTimeout: 600 });
    await visit((s) => s.set('a', 1));
    clock.advance(599);
    assert.equal((await visit((s) => s.get('a'))).value, 1);
    clock.advance(601);
    const { value, setCookie } = await visit((s) => s.get('a'));
    assert.equal(value, undefined);
    assert.match(setCookie[0]!, /Max-Age=0/, 'the dead cookie is cleared');
  });

  it("keeps a parallel request's longer expiry choice: a save or touch of a request that loaded before it never cuts the deadline", async () => {
    for (const variant of ['write', 'touch', 'spend a token'] as const) {
      const { visit, clock, jar, sessions, store } = setup({ idleTimeout: 3600 });
      const token = (await visit((s) => s.getSecurityKey())).value;
      const open = () => sessions.open({ cookieHeader: jar.header(), https: false, ip: '192.0.2.1', userAgent: 'test-agent' });
      if (variant === 'touch') clock.advance(301); // a touch is due for a read-only request
      const stale = open();
      await stale.load();
      const rememberMe = open();
      await rememberMe.load();
      rememberMe.setExpiry(30 * 86_400);
      await rememberMe.commit(200);
      if (variant === 'write') stale.set('cart', ['item']);
      if (variant === 'spend a token') assert.equal(await stale.validateSecurityKey(token), true);
      await stale.commit(200);
      const record = await store.get(hashToken(jar.get('sid')!));
      assert.equal(record?.meta['expiry'], 2_592_000, variant);
      assert.ok(record!.expiresAt - clock.now() > 86_400_000, `${variant}: the deadline is the long one`);
      clock.advance(2 * 3600);
      assert.equal((await visit((s) => s.isNew)).value, false, `${variant}: alive after 2 idle hours`);
    }
  });

  it('enforces the absolute timeout however active the session is', async () => {
    const { visit, clock } = setup({ idleTimeout: 600, absoluteTimeout: 1800, touchInterval: 60 });
    await visit((s) => s.set('a', 1));
    for (let i = 0; i < 5; i++) {
      clock.advance(300);
      assert.equal((await visit((s) => s.get('a'))).value, 1, `request ${i}`);
    }
    clock.advance(301);
    assert.equal((await visit((s) => s.get('a'))).value, undefined);
  });

  it('refreshes the idle timer at most once per touchInterval', async () => {
    const { visit, clock, store } = setup({ idleTimeout: 600, touchInterval: 120 });
    await visit((s) => s.set('a', 1));
    store.resetCounts();
    clock.advance(60);
    await visit((s) => s.get('a'));
    assert.equal(store.calls.update ?? 0, 0);
    clock.advance(61);
    await visit((s) => s.get('a'));
    // A touch is a guarded update (never the unguarded store.touch: see the rotation tests).
    assert.equal(store.calls.update, 1);
    assert.equal(store.calls.touch ?? 0, 0);
    clock.advance(30);
    await visit((s) => s.get('a'));
    assert.equal(store.calls.update, 1);
    clock.advance(500); // 651 s since the first write, 530 since the touch
    assert.equal((await visit((s) => s.get('a'))).value, 1);
  });

  it('setExpiry: seconds of inactivity, a fixed Date, 0 for browser close, null for the default', async () => {
    const { visit, clock } = setup({ idleTimeout: 600, cookie: { persistent: true } });
    const start = clock.now();
    let r: { value: Record<string, unknown>; setCookie: string[] } = await visit((s) => {
      s.set('a', 1);
      s.setExpiry(60);
      return { age: s.getExpiryAge(), date: s.getExpiryDate().getTime(), close: s.getExpireAtBrowserClose() };
    });
    assert.deepEqual(r.value, { age: 60, date: start + 60_000, close: false });
    assert.match(r.setCookie[0]!, /Max-Age=60;/);
    clock.advance(61);
    assert.equal((await visit((s) => s.get('a'))).value, undefined, 'custom idle expiry enforced');

    const fixed = new Date(clock.now() + 3_000_000);
    r = await visit((s) => {
      s.set('a', 2);
      s.setExpiry(fixed);
      return { age: s.getExpiryAge(), date: s.getExpiryDate().getTime(), close: s.getExpireAtBrowserClose() };
    });
    assert.deepEqual(r.value, { age: 3000, date: fixed.getTime(), close: false });

    r = await visit((s) => {
      s.setExpiry(0);
      return { age: s.getExpiryAge(), close: s.getExpireAtBrowserClose() };
    });
    assert.deepEqual(r.value, { age: 600, close: true });
    assert.ok(!/Max-Age/.test(r.setCookie[0]!), 'browser-close cookie has no Max-Age');

    r = await visit((s) => {
      s.setExpiry(null);
      return { age: s.getExpiryAge(), close: s.getExpireAtBrowserClose() };
    });
    assert.deepEqual(r.value, { age: 600, close: false });
    assert.throws(() => setup().sessions.open({ cookieHeader: undefined, https: false }).setExpiry(-5), { code: 'ERR_CONFIG' });
  });

  it('reports the expiry that holds when a read-only request does not refresh the idle timer', async () => {
    const { visit, clock } = setup({ idleTimeout: 3600 }); // touchInterval: 300 s
    await visit((s) => s.set('a', 1));
    const written = clock.now();
    clock.advance(200);
    const quiet = await visit((s) => ({ age: s.getExpiryAge(), date: s.getExpiryDate().getTime() }));
    assert.deepEqual(quiet.value, { age: 3400, date: written + 3_600_000 }, 'no write: the stored expiry stands');
    const changing = await visit((s) => {
      s.set('a', 2);
      return s.getExpiryAge();
    });
    assert.equal(changing.value, 3600, 'a change restarts the idle timer');
    clock.advance(301);
    assert.equal((await visit((s) => s.getExpiryAge())).value, 3600, 'a touch is due: it restarts it too');
  });

  it('reports the full idle expiry when rotation makes the request write anyway', async () => {
    const { visit, clock } = setup({ idleTimeout: 3600, rotation: { afterRequests: 100 } });
    await visit((s) => s.set('a', 1));
    clock.advance(120);
    assert.equal((await visit((s) => s.getExpiryAge())).value, 3600, 'afterRequests: every request saves its count');
  });

  it('ends a session whose stored expiry date does not parse, never passing NaN to the store', async () => {
    const { visit, store, jar, clock } = setup();
    await visit((s) => s.set('a', 1));
    const id = hashToken(jar.get('sid')!);
    const times = { lastSeenAt: clock.now(), expiresAt: clock.now() + 60_000 };
    await store.update(id, { meta: { set: { expiry: 'not a date' } }, ...times });
    const seen: unknown[] = [];
    const update = store.update.bind(store);
    store.update = (sid, patch) => {
      seen.push(patch.expiresAt);
      return update(sid, patch);
    };
    const { value } = await visit((s) => {
      s.set('b', 2);
      return s.get('a');
    });
    assert.equal(value, undefined, 'the corrupt session ended');
    assert.ok(seen.every((t) => Number.isFinite(t)));
  });

  it('a fixed expiry date ends the session at that date', async () => {
    const { visit, clock } = setup({ idleTimeout: 600 });
    await visit((s) => {
      s.set('a', 1);
      s.setExpiry(new Date(clock.now() + 100_000));
    });
    clock.advance(99);
    assert.equal((await visit((s) => s.get('a'))).value, 1);
    clock.advance(2);
    assert.equal((await visit((s) => s.get('a'))).value, undefined);
  });
});

describe('test cookie', () => {
  it('round-trips a marker (Django set_test_cookie / test_cookie_worked)', async () => {
    const { visit } = setup();
    await visit((s) => {
      assert.equal(s.testCookieWorked(), false);
      s.setTestCookie();
    });
    assert.equal((await visit((s) => s.testCookieWorked())).value, true);
    await visit((s) => s.deleteTestCookie());
    assert.equal((await visit((s) => s.testCookieWorked())).value, false);
  });
});

describe('store failures', () => {
  it('fails closed on load: the error surfaces, nothing is written, the cookie is left alone', async () => {
    const { visit, store, sessions, jar } = setup();
    await visit((s) => s.set('a', 1));
    store.fault = 'reject';
    const session = sessions.open({ cookieHeader: jar.header(), https: false });
    await assert.rejects(session.load(), (e: Error & { code?: string; status?: number }) => e.code === 'ERR_STORE' && e.status === 503);
    assert.throws(() => session.get('a'), { code: 'ERR_STORE' });
    assert.deepEqual((await session.commit(503))?.setCookie, []);
    store.fault = 'none';
    assert.equal((await visit((s) => s.get('a'))).value, 1, 'the same cookie works once the store is back');
  });

  it('times out a hung store call', async () => {
    const { visit, store, sessions, jar } = setup({ storeTimeout: 50 });
    await visit((s) => s.set('a', 1));
    store.fault = 'hang';
    const started = Date.now();
    const session = sessions.open({ cookieHeader: jar.header(), https: false });
    await assert.rejects(session.load(), { code: 'ERR_STORE_TIMEOUT' });
    assert.ok(Date.now() - started < 1000);
  });

  it('fails the save when the store fails on write', async () => {
    const { visit, store } = setup();
    await visit((s) => s.set('a', 1));
    await assert.rejects(
      visit((s) => {
        s.set('a', 2);
        store.fault = 'reject';
      }),
      { code: 'ERR_STORE' },
    );
    store.fault = 'none';
    assert.equal((await visit((s) => s.get('a'))).value, 1);
  });

  it('fails closed the same way when a synchronous store throws instead of rejecting', async () => {
    const { visit, store, sessions, jar } = setup();
    await visit((s) => s.set('a', 1));
    store.fault = 'throw';
    const session = sessions.open({ cookieHeader: jar.header(), https: false });
    const loading = session.load();
    assert.ok(loading instanceof Promise, 'load() reports a thrown failure as a rejection');
    await assert.rejects(loading, (e: Error & { code?: string; status?: number }) => e.code === 'ERR_STORE' && e.status === 503);
    assert.throws(() => session.get('a'), { code: 'ERR_STORE' });
    store.fault = 'none';
    // A save whose update throws: commit() rejects, commitNow() throws, nothing is written.
    for (const how of ['commit', 'commitNow'] as const) {
      const saving = sessions.open({ cookieHeader: jar.header(), https: false });
      await saving.load();
      saving.set('a', 2);
      store.fault = 'throw';
      store.faultOnly = ['update'];
      try {
        if (how === 'commit') await assert.rejects(saving.commit(200), { code: 'ERR_STORE' });
        else assert.throws(() => saving.commitNow(200), { code: 'ERR_STORE' });
      } finally {
        store.fault = 'none';
        store.faultOnly = null;
      }
    }
    assert.equal((await visit((s) => s.get('a'))).value, 1);
  });

  it('loads and saves in the same tick with a synchronous store, and through promises otherwise', async () => {
    const { visit, store, sessions, jar } = setup();
    await visit((s) => s.set('a', 1));
    const session = sessions.open({ cookieHeader: jar.header(), https: false });
    void session.load();
    assert.equal(session.loaded, true, 'a synchronous store answers within load()');
    session.set('a', 2);
    assert.deepEqual(session.commitNow(200), { setCookie: [] });
    const original = store.get;
    store.get = async (id) => original(id);
    try {
      const later = sessions.open({ cookieHeader: jar.header(), https: false });
      const loading = later.load();
      assert.equal(later.loaded, false);
      await loading;
      assert.equal(later.get('a'), 2);
    } finally {
      store.get = original;
    }
  });

  it('answers a load() called again from a listener during a synchronous load without reading twice', async () => {
    const { visit, store, sessions, jar } = setup();
    await visit((s) => s.set('a', 1));
    const session = sessions.open({ cookieHeader: jar.header(), https: false });
    const order: string[] = [];
    let inner: Promise<unknown> | undefined;
    sessions.events.on('loaded', () => {
      order.push('loaded');
      inner = session.load().then(() => order.push('inner load'));
    });
    store.resetCounts();
    await session.load();
    order.push('outer load');
    await inner;
    assert.equal(store.calls.get, 1);
    assert.deepEqual(order, ['loaded', 'outer load', 'inner load']);
  });

  it('treats an undecodable record as no session instead of failing (rejected, or thrown by a synchronous store)', async () => {
    const { CorruptRecordError } = await import('../../src/errors.js');
    const corrupt = () => new CorruptRecordError('memory', 'garbage');
    const failures: Array<() => never | Promise<never>> = [
      () => Promise.reject(corrupt()),
      () => {
        throw corrupt();
      },
    ];
    for (const fail of failures) {
      const { visit, store, sessions, jar } = setup();
      await visit((s) => s.set('a', 1));
      store.get = fail;
      const reasons: string[] = [];
      sessions.events.on('invalidCookie', (e) => reasons.push(e.reason));
      const session = sessions.open({ cookieHeader: jar.header(), https: false });
      await session.load();
      assert.equal(session.isNew, true);
      assert.deepEqual(reasons, ['corrupt']);
    }
  });
});

describe('operations', () => {
  it('kills sessions by user, guests or all; lists and revokes devices', async () => {
    const { sessions, visit } = setup();
    const browsers = Array.from({ length: 4 }, () => new CookieJar());
    await visit((s) => s.login('alice'), { browser: browsers[0] });
    await visit((s) => s.login('alice'), { browser: browsers[1] });
    await visit((s) => s.login('bob'), { browser: browsers[2] });
    await visit((s) => s.set('guest', true), { browser: browsers[3] });
    const current = (await visit((s) => s.handle, { browser: browsers[1] })).value;
    const devices = await sessions.listByUser('alice', { current });
    assert.equal(devices.length, 2);
    assert.deepEqual(devices.map((d) => d.current), [false, true]);
    assert.equal(devices[0]!.userAgent, 'test-agent');
    assert.equal(devices[0]!.ip, '192.0.2.1');
    await sessions.revoke(devices[0]!.id);
    assert.equal((await visit((s) => s.userId, { browser: browsers[0] })).value, null);
    assert.equal((await visit((s) => s.userId, { browser: browsers[1] })).value, 'alice');
    assert.equal(await sessions.killSessionsByUser('__guest__'), 1);
    assert.equal((await visit((s) => s.get('guest'), { browser: browsers[3] })).value, undefined);
    assert.equal(await sessions.killSessionsByUser('alice'), 1);
    assert.equal(await sessions.killSessionsByUser(), 1);
    assert.equal((await visit((s) => s.userId, { browser: browsers[2] })).value, null);
  });

  it('clears expired sessions in bounded batches', async () => {
    const { sessions, visit, clock } = setup({ idleTimeout: 600 });
    for (let i = 0; i < 25; i++) await visit((s) => s.set('i', i), { browser: new CookieJar() });
    clock.advance(700);
    await visit((s) => s.set('live', true), { browser: new CookieJar() });
    const progress: number[] = [];
    const result = await sessions.clearExpired({ batchSize: 10, onBatch: (p) => progress.push(p.deleted) });
    assert.equal(result.deleted, 25);
    assert.ok(result.batches >= 3);
    assert.deepEqual(progress.slice(0, 2), [10, 20]);
  });

  it('stops after maxBatches with a cursor to resume from, and refuses a limit below one batch', async () => {
    const { sessions, visit, clock } = setup({ idleTimeout: 600 });
    for (let i = 0; i < 25; i++) await visit((s) => s.set('i', i), { browser: new CookieJar() });
    clock.advance(700);
    const first = await sessions.clearExpired({ batchSize: 10, maxBatches: 1 });
    assert.deepEqual([first.deleted, first.batches, first.cursor !== null], [10, 1, true]);
    const rest = await sessions.clearExpired({ batchSize: 10, cursor: first.cursor });
    assert.equal(first.deleted + rest.deleted, 25);
    for (const maxBatches of [0, -1, 1.5, NaN, -Infinity]) {
      await assert.rejects(sessions.clearExpired({ maxBatches }), { code: 'ERR_CONFIG' }, String(maxBatches));
    }
    assert.equal((await sessions.clearExpired({ maxBatches: Infinity })).cursor, null, 'Infinity: no limit');
    // Every store takes a whole batch size (SQL LIMIT): Infinity or 1.5 is refused before any store call.
    for (const batchSize of [0, 1.5, Infinity, NaN, -1]) {
      await assert.rejects(sessions.clearExpired({ batchSize }), { code: 'ERR_CONFIG' }, String(batchSize));
    }
  });
});

describe('per-session expiry shorter than touchInterval', () => {
  it('refreshes often enough that an active session never times out', async () => {
    const { visit, clock } = setup({ idleTimeout: 3600, touchInterval: 300 });
    await visit((s) => {
      s.set('user', 'alice');
      s.setExpiry(120); // two minutes of inactivity, under the five-minute touchInterval
    });
    for (let i = 0; i < 5; i++) {
      clock.advance(100);
      assert.equal((await visit((s) => s.get('user'))).value, 'alice', `request ${i + 1}, 100 s after the previous one`);
    }
    clock.advance(121);
    assert.equal((await visit((s) => s.get('user'))).value, undefined, 'and still expires after 120 idle seconds');
  });
});

describe('an emptied session with rotation on', () => {
  for (const rotation of [{ afterRequests: 100 }, { afterSeconds: 600 }]) {
    it(`is deleted with its cookie: rotation's own counters do not keep it (${Object.keys(rotation)[0]})`, async () => {
      const { visit, store, clock } = setup({ rotation });
      await visit((s) => s.set('cart', [1]));
      clock.advance(1);
      await visit((s) => s.get('cart'));
      store.resetCounts();
      const cleared = await visit((s) => s.clear());
      assert.match(cleared.setCookie[0] ?? '', /^sid=;.*Max-Age=0/);
      assert.equal(store.calls.destroyIfEmpty, 1); // judged and deleted in one step
      assert.equal(store.calls.destroy, undefined);
      assert.equal((await visit((s) => s.isNew)).value, true);
    });
  }
});

describe('changes after commit', () => {
  it('throw HeadersSentError instead of being lost; reads still work', async () => {
    const { sessions, visit, jar } = setup();
    await visit((s) => s.set('cart', ['book']));
    const session = sessions.open({ cookieHeader: jar.header(), https: false });
    await session.load();
    await session.commit(200);
    assert.deepEqual(session.get('cart'), ['book']);
    const changes: Array<[string, () => unknown]> = [
      ['set', () => session.set('x', 1)],
      ['delete', () => session.delete('cart')],
      ['pop', () => session.pop('cart')],
      ['update', () => session.update({ x: 1 })],
      ['clear', () => session.clear()],
      ['markChanged', () => session.markChanged()],
      ['setExpiry', () => session.setExpiry(60)],
      ['setTestCookie', () => session.setTestCookie()],
      ['flash', () => session.flash('hi')],
      ['consumeFlashes', () => session.consumeFlashes()],
      ['getSecurityKey', () => session.getSecurityKey()],
      ['csrfToken (creating one)', () => session.csrfToken()],
    ];
    for (const [name, change] of changes) assert.throws(change, { code: 'ERR_HEADERS_SENT' }, name);
    for (const [name, change] of [
      ['login', () => session.login('alice')],
      ['logout', () => session.logout()],
      ['reset', () => session.reset()],
      ['flush', () => session.flush()],
      ['cycleId', () => session.cycleId()],
      ['rotate', () => session.rotate()],
    ] as const) {
      await assert.rejects(change(), { code: 'ERR_HEADERS_SENT' }, name);
    }
    assert.deepEqual((await visit((s) => s.toJSON())).value, { cart: ['book'] }, 'the stored session is untouched');
  });
  it('also for a session first used after a commit that found it unused (a streamed body)', async () => {
    const { sessions, visit, jar } = setup();
    await visit((s) => s.set('cart', ['book']));
    const session = sessions.open({ cookieHeader: jar.header(), https: false });
    assert.equal(await session.commit(200), null, 'unused: nothing to commit');
    await session.load();
    assert.deepEqual(session.get('cart'), ['book'], 'reading still works');
    assert.throws(() => session.set('late', 1), { code: 'ERR_HEADERS_SENT' });
    await assert.rejects(session.login('alice'), { code: 'ERR_HEADERS_SENT' });
    assert.deepEqual((await visit((s) => s.toJSON())).value, { cart: ['book'] });
  });
});

describe('cookie store revocations in the same millisecond as a sign-in', () => {
  for (const how of ['killSessionsByUser', 'logout'] as const) {
    it(`a session signed in right after ${how}() in the same request stays valid`, async () => {
      const { cookieStore } = await import('../../src/stores/cookie.js');
      const store = cookieStore({ secrets: ['s-secret-of-43-bytes-for-the-cookie-store-1'], revocations: memoryStore({ sweepInterval: 0 }), revokeOnLogout: true });
      const { visit, sessions, clock, jar } = setup({ store });
      await visit((s) => s.login('alice'));
      const copied = new CookieJar();
      copied.apply([`sid=${token(jar)}`]);
      await visit(async (s) => {
        if (how === 'killSessionsByUser') await sessions.killSessionsByUser('alice');
        else await s.logout();
        await s.login('alice'); // the clock has not moved: the same millisecond
      });
      clock.advance(1);
      assert.equal((await visit((s) => s.userId)).value, 'alice');
      assert.equal((await visit((s) => s.userId, { browser: copied })).value, null, 'the copy from before is void');
    });
  }
});

describe('cookie store logout with clocks apart', () => {
  it('voids copies of a session made on a process whose clock runs ahead', async () => {
    const { cookieStore } = await import('../../src/stores/cookie.js');
    const secrets = ['s-secret-of-43-bytes-for-the-cookie-store-1'];
    const revocations = memoryStore({ sweepInterval: 0 });
    const ahead = setup({ store: cookieStore({ secrets, revocations }) });
    ahead.clock.advance(3); // this process's clock: 3 s ahead of the other's
    await ahead.visit((s) => s.login('alice'));
    const copied = new CookieJar();
    copied.apply([`sid=${token(ahead.jar)}`]);
    const behind = setup({ store: cookieStore({ secrets, revocations }) });
    behind.jar.apply([`sid=${token(ahead.jar)}`]);
    await behind.visit((s) => s.logout());
    assert.equal((await behind.visit((s) => s.userId, { browser: copied })).value, null, 'refused where the logout ran');
    assert.equal((await ahead.visit((s) => s.userId, { browser: copied })).value, null, 'and where the session was made');
  });
});

describe("re-authentication, Django's flags, iteration", () => {
  it('records when the user authenticated, keeps it through cycleId, and requires a fresh one at +1 ms past the limit', async () => {
    const { clock, visit } = setup();
    assert.equal((await visit((s) => s.authenticatedAt)).value, null);
    await visit((s) => s.login('alice'));
    const signedInAt = clock.now();
    clock.advance(240);
    await visit((s) => s.cycleId());
    clock.advance(60); // 5 minutes since login (the clock counts seconds)
    const atLimit = await visit((s) => [s.authenticatedAt?.getTime(), s.authenticatedWithin(300)] as const);
    assert.deepEqual(atLimit.value, [signedInAt, true]);
    await visit((s) => s.requireFreshAuth(300));
    clock.advance(0.001);
    const late = await visit((s) => {
      try {
        s.requireFreshAuth(300);
        return null;
      } catch (error) {
        return error as Error & { code: string; status: number };
      }
    });
    assert.equal(late.value?.code, 'ERR_REAUTH_REQUIRED');
    assert.equal(late.value?.status, 401);
    // The password was entered again: fresh from now on, saved with the session.
    await visit((s) => s.markAuthenticated());
    assert.equal((await visit((s) => s.authenticatedWithin(0))).value, true);
    await visit((s) => s.logout());
    const guest = await visit((s) => [s.authenticatedAt, s.authenticatedWithin(1e9)] as const);
    assert.deepEqual(guest.value, [null, false]);
    await assert.rejects(visit((s) => s.requireFreshAuth(300)), { code: 'ERR_REAUTH_REQUIRED' });
    await assert.rejects(visit((s) => s.markAuthenticated()), { code: 'ERR_CONFIG' });
    await assert.rejects(visit((s) => s.authenticatedWithin(-1)), { code: 'ERR_CONFIG' });
  });

  it('reports accessed and modified as Django does', async () => {
    const { sessions, visit } = setup();
    const idle = sessions.open({ cookieHeader: undefined, https: false });
    assert.deepEqual([idle.accessed, idle.modified], [false, false]);
    await visit((s) => s.set('a', 1));
    const read = await visit((s) => [s.accessed, s.modified, s.get('a')] as const);
    assert.deepEqual(read.value, [true, false, 1]);
    const nested = await visit((s) => {
      s.set('list', [1]);
      const before = s.modified;
      return [before, s.accessed];
    });
    assert.deepEqual(nested.value, [true, true]);
    const inPlace = await visit((s) => {
      (s.get('list') as number[]).push(2);
      return s.modified;
    });
    assert.equal(inPlace.value, true);
    // Judged by the stored form (README): writes that change nothing leave it false.
    const unchanged = await visit((s) => [s.set('a', 1).modified, s.update({}).modified]);
    assert.deepEqual(unchanged.value, [false, false]);
    assert.equal((await visit((s) => s.markChanged().modified)).value, true);
  });

  it('iterates [key, value] pairs and pops the most recently added item', async () => {
    const { visit } = setup();
    const { value } = await visit((s) => {
      s.update({ a: 1, b: 2, c: 3 });
      const seen = [...s];
      const popped = [s.popItem(), s.popItem()];
      return { seen, popped, left: s.toJSON(), emptyPop: (s.popItem(), s.popItem()) };
    });
    assert.deepEqual(value.seen, [['a', 1], ['b', 2], ['c', 3]]);
    assert.deepEqual(value.popped, [['c', 3], ['b', 2]]);
    assert.deepEqual(value.left, { a: 1 });
    assert.equal(value.emptyPop, undefined);
  });

  it('gives no session outside the cookie Path, as a browser would send no cookie there', async () => {
    const { visit } = setup({ cookie: { path: '/app' } });
    await visit((s) => s.set('a', 1), { path: '/app/settings' });
    const at = async (path: string | undefined) => (await visit((s) => [s.isNew, s.get('a', null)], { ...(path !== undefined && { path }) })).value;
    assert.deepEqual(await at('/app'), [false, 1]);
    assert.deepEqual(await at('/app/'), [false, 1]);
    assert.deepEqual(await at('/app?next=/x'), [false, 1]);
    assert.deepEqual(await at(undefined), [false, 1]); // an adapter that does not say: not checked
    assert.deepEqual(await at('/other'), [true, null]);
    assert.deepEqual(await at('/application'), [true, null]);
    assert.deepEqual(await at('/'), [true, null]);
    // Absolute-form targets (as sent to a proxy) are judged by their path.
    assert.deepEqual(await at('http://example.com/app/x'), [false, 1]);
    assert.deepEqual(await at('http://example.com/other'), [true, null]);
    assert.deepEqual(await at('*'), [true, null]);
  });

  it('refuses to store anything outside the cookie Path: its cookie would replace the real one and sign the user out', async () => {
    const { visit, store } = setup({ cookie: { path: '/app' } });
    await visit((s) => s.login('alice'), { path: '/app/login' });
    const creates = store.calls.create ?? 0;
    for (const change of [(s: Session) => s.set('theme', 'dark'), (s: Session) => s.csrfToken(), (s: Session) => s.flash('hi')]) {
      await assert.rejects(visit(change, { path: '/' }), (e: Error & { code?: string }) => e.code === 'ERR_CONFIG' && /outside cookie\.path "\/app"/.test(e.message));
    }
    // What stores nothing passes: a layout consuming (no) flashes, a guest's logout, reads.
    const quiet = await visit(async (s) => {
      const flashes = s.consumeFlashes();
      await s.logout();
      return [flashes, s.get('theme', null), s.pop('x', 0)];
    }, { path: '/' });
    assert.deepEqual(quiet.value, [[], null, 0]);
    assert.deepEqual(quiet.setCookie, []);
    assert.equal(store.calls.create ?? 0, creates);
    assert.equal((await visit((s) => s.userId, { path: '/app/home' })).value, 'alice');
  });

  it('counts lifecycle calls as modifications: cycleId, rotate, logout, flush', async () => {
    const { visit } = setup();
    await visit((s) => s.login('alice'));
    for (const call of [(s: Session) => s.cycleId(), (s: Session) => s.rotate(), (s: Session) => s.flush()]) {
      const { value } = await visit(async (s) => {
        const before = s.modified;
        await call(s);
        return [before, s.modified];
      });
      assert.deepEqual(value, [false, true]);
      await visit((s) => s.login('alice'));
    }
    const out = await visit(async (s) => {
      await s.logout();
      return s.modified;
    });
    assert.equal(out.value, true);
    // A guest with no cookie who logs out ends nothing: no write, not modified.
    const guest = await visit(async (s) => {
      await s.logout();
      return s.modified;
    }, { browser: new CookieJar() });
    assert.equal(guest.value, false);
  });
});
