/**
 * Configuration changed across a restart, with live sessions in the store. Raising `idleTimeout`
 * must not sign out a user who keeps reading: the record's deadline was stored under the old,
 * shorter timeout, and the new `touchInterval` can be longer than what is left of it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSessions, type SessionsOptions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { JsonValue } from '../../src/types.js';
import { ManualClock } from '../helpers/clock.js';
import { CookieJar } from '../helpers/cookie-jar.js';

/** A browser's cookie store, as these tests need it (CookieJar, or the scope-aware one below). */
interface Browser {
  header(): string | undefined;
  apply(setCookies: readonly string[]): void;
}

/** One app version: each call is one request from `jar`, returning the user it saw. */
function app(store: ReturnType<typeof memoryStore>, clock: ManualClock, options: Partial<SessionsOptions>) {
  const sessions = createSessions<Record<string, JsonValue>>({ store, clock, ...options });
  return async (jar: Browser, write?: (s: { set(k: string, v: JsonValue): void; login(u: string): Promise<void> }) => Promise<void> | void) => {
    const session = sessions.open({ cookieHeader: jar.header(), https: false, ip: '192.0.2.1', userAgent: 'ua' });
    await session.load();
    if (write) await write(session);
    const user = session.userId;
    const result = await session.commit(200);
    jar.apply(result?.setCookie ?? []);
    return user;
  };
}

describe('configuration changes across a restart', () => {
  it('raising idleTimeout keeps a user who reads every minute signed in past the old deadline', async () => {
    const clock = new ManualClock();
    const store = memoryStore({ clock, sweepInterval: 0 });
    const jar = new CookieJar();
    // Version 1: a 4-minute idle timeout (touchInterval defaults to 2 minutes).
    await app(store, clock, { idleTimeout: 240 })(jar, (s) => s.login('ada'));
    // Version 2: two hours (touchInterval defaults to 5 minutes, longer than the old deadline's 4).
    const v2 = app(store, clock, { idleTimeout: 7200 });
    const seen: (string | null)[] = [];
    for (let minute = 1; minute <= 8; minute++) {
      clock.advance(60);
      seen.push(await v2(jar));
    }
    assert.deepEqual(seen, Array(8).fill('ada'));
  });

  it('a session near its absolute limit is not touched on every request', async () => {
    const clock = new ManualClock();
    const store = memoryStore({ clock, sweepInterval: 0 });
    let touches = 0;
    const counted = {
      ...store,
      touch: (...args: Parameters<typeof store.touch>) => (touches++, store.touch(...args)),
      update: (...args: Parameters<typeof store.update>) => (touches++, store.update(...args)),
    };
    const visit = app(counted as typeof store, clock, { idleTimeout: 3600, absoluteTimeout: 4000, touchInterval: 300 });
    const jar = new CookieJar();
    await visit(jar, (s) => s.login('ada'));
    // Reading every 250 s until 500 s before the absolute limit (the record's deadline from then on).
    for (let t = 250; t <= 3700; t += 250) {
      clock.advance(250);
      assert.equal(await visit(jar), 'ada');
    }
    touches = 0;
    for (let i = 0; i < 10; i++) {
      clock.advance(10);
      assert.equal(await visit(jar), 'ada');
    }
    // Read-only requests 10 s apart: one touch at most per touchInterval, as before.
    assert.ok(touches <= 1, `${touches} touches`);
  });
});

describe('changing cookie.domain or cookie.path across a restart', () => {
  /** A browser keyed by name, Domain and Path, as real ones are: two `sid` cookies can coexist. */
  class ScopedJar {
    readonly cookies = new Map<string, { name: string; value: string }>();
    apply(setCookies: readonly string[]): void {
      for (const line of setCookies) {
        const [pair = '', ...attributes] = line.split(';').map((part) => part.trim());
        const name = pair.slice(0, pair.indexOf('='));
        const value = pair.slice(pair.indexOf('=') + 1);
        const attr = (key: string) => attributes.find((a) => a.toLowerCase().startsWith(`${key}=`))?.split('=')[1];
        const scope = `${name}|${attr('domain') ?? '(host)'}|${attr('path') ?? '/'}`;
        if (attr('max-age') === '0') this.cookies.delete(scope);
        else this.cookies.set(scope, { name, value });
      }
    }
    header(): string | undefined {
      return this.cookies.size === 0 ? undefined : [...this.cookies.values()].map((c) => `${c.name}=${c.value}`).join('; ');
    }
  }

  for (const [change, cookie] of [
    ['a Domain', { domain: 'example.test' }],
    ['a Path', { path: '/' }],
  ] as const) {
    it(`adding ${change} to the default scope: one more sign-in, then no login loop`, async () => {
      const clock = new ManualClock();
      const store = memoryStore({ clock, sweepInterval: 0 });
      const jar = new ScopedJar();
      const visit = (options: Partial<SessionsOptions>, write?: (s: { login(u: string): Promise<void> }) => Promise<void>) => app(store, clock, options)(jar, write);
      await visit({}, (s) => s.login('ada')); // version 1: host-only, Path=/
      const v2 = cookie.path === '/' ? { cookie: { path: '/app' } } : { cookie };
      assert.equal(await visit(v2), 'ada'); // the old cookie alone still works
      await visit(v2, (s) => s.login('ada')); // a new id, under the new scope: the browser now holds two
      assert.equal(jar.cookies.size, 2);
      // Both cookies arrive: no session (which of the two is ours is unknown), and the old-scope one
      // is cleared with the new-scope one. One more sign-in, and the session sticks.
      const seen = [await visit(v2), await visit(v2, (s) => s.login('ada')), await visit(v2), await visit(v2)];
      assert.deepEqual(seen, [null, 'ada', 'ada', 'ada'], `users seen: ${JSON.stringify(seen)}`);
      assert.equal(jar.cookies.size, 1, [...jar.cookies.keys()].join(', '));
    });
  }

  it('a cookie planted from a sibling subdomain (Domain=) never becomes the session: the client\'s own is not cleared for it', async () => {
    const clock = new ManualClock();
    const store = memoryStore({ clock, sweepInterval: 0 });
    const visit = app(store, clock, {});
    const attacker = new ScopedJar();
    await visit(attacker, (s) => s.login('mallory'));
    const planted = [...attacker.cookies.values()][0]!.value;
    const victim = new ScopedJar();
    await visit(victim, (s) => s.login('victim'));
    victim.apply([`sid=${planted}; Domain=example.test; Path=/`]);
    assert.equal(victim.cookies.size, 2);
    const seen = [await visit(victim), await visit(victim), await visit(victim)];
    assert.deepEqual(seen, [null, null, null], 'two values: no session, and never the planted one');
    assert.equal(victim.cookies.size, 2, "the victim's own cookie is kept, not cleared to leave the planted one alone");
  });

  it('from a Domain back to host-only: with previousScopes, one more sign-in, then no login loop', async () => {
    const clock = new ManualClock();
    const store = memoryStore({ clock, sweepInterval: 0 });
    const jar = new ScopedJar();
    const visit = (options: Partial<SessionsOptions>, write?: (s: { login(u: string): Promise<void> }) => Promise<void>) => app(store, clock, options)(jar, write);
    await visit({ cookie: { domain: 'example.test' } }, (s) => s.login('ada')); // version 1: Domain=example.test
    const v2 = { cookie: { previousScopes: [{ domain: 'example.test' }] } }; // version 2: host-only
    await visit(v2, (s) => s.login('ada')); // a new id under the new scope: two cookies now
    assert.equal(jar.cookies.size, 2);
    const seen = [await visit(v2), await visit(v2, (s) => s.login('ada')), await visit(v2), await visit(v2)];
    assert.deepEqual(seen, [null, 'ada', 'ada', 'ada'], `users seen: ${JSON.stringify(seen)}`);
    assert.equal(jar.cookies.size, 1, [...jar.cookies.keys()].join(', '));
    // Without previousScopes the old Domain cookie could never be cleared: every sign-in lasted one request.
    assert.throws(() => createSessions({ store, cookie: { previousScopes: [{ domain: 'bad domain' }] } }), /previousScopes\[0\]\.domain/);
  });
});

describe('lowering maxDataSize across a restart', () => {
  for (const rotation of [undefined, { afterRequests: 50 }, { afterSeconds: 1 }]) {
    it(`sessions already larger keep serving read-only requests (rotation ${JSON.stringify(rotation)})`, async () => {
      const clock = new ManualClock();
      const store = memoryStore({ clock, sweepInterval: 0 });
      const jar = new CookieJar();
      await app(store, clock, {})(jar, (s) => s.set('blob', 'x'.repeat(3_000)));
      const v2 = app(store, clock, { maxDataSize: 2_048, ...(rotation && { rotation }) });
      for (let i = 0; i < 3; i++) {
        clock.advance(2); // past afterSeconds: the rotation rewrites the whole session
        assert.equal(await v2(jar), null); // no user: the session itself is served, not refused
      }
      // Growing it further is refused.
      await assert.rejects(() => v2(jar, (s) => s.set('more', 'y'.repeat(100))), /maxDataSize/);
    });
  }
});

describe('cookie.previousScopes: validation and the headers it adds', () => {
  it('refuses malformed scopes, normalises domains, and clears with the cookie\'s own attributes', async () => {
    const { clearedOtherScopeCookies } = await import('../../src/core/session-cookie.js');
    const store = memoryStore({ sweepInterval: 0 });
    assert.throws(() => createSessions({ store, cookie: { previousScopes: [{ path: '/a', extra: 1 } as never] } }), /previousScopes\[0\] must be an object with only domain/);
    assert.throws(() => createSessions({ store, cookie: { previousScopes: [null as never] } }), /previousScopes\[0\]/);
    assert.throws(() => createSessions({ store, cookie: { previousScopes: [{ path: 'app' }] } }), /previousScopes\[0\]\.path/);
    // A scope equal to the configured one, in another spelling, adds nothing.
    const same = createSessions({ store, cookie: { domain: 'example.com', previousScopes: [{ domain: '.EXAMPLE.com' }] } });
    assert.deepEqual(clearedOtherScopeCookies(same.options.cookie, false), ['sid=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax']);
    // SameSite=None and Partitioned, as the session cookie's own clear has them.
    const partitioned = createSessions({ store, cookie: { secure: true, sameSite: 'none', partitioned: true, path: '/app', previousScopes: [{ path: '/old' }] } });
    assert.deepEqual(clearedOtherScopeCookies(partitioned.options.cookie, true), [
      '__Secure-sid=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=None; Partitioned',
      '__Secure-sid=; Max-Age=0; Path=/old; HttpOnly; Secure; SameSite=None; Partitioned',
    ]);
    // A __Host- cookie exists only at the default scope: nothing else to clear.
    const host = createSessions({ store, cookie: { secure: true, previousScopes: [{ domain: 'example.com' }] } });
    assert.deepEqual(clearedOtherScopeCookies(host.options.cookie, true), []);
  });
});
