/**
 * One scenario suite for every adapter, over real HTTP on loopback. Each adapter test starts
 * its framework serving `scenarioRoute` and calls `runAdapterScenarios`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createSessions, type Sessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { JsonValue } from '../../src/types.js';
import { ManualClock } from '../helpers/clock.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { instrument, type InstrumentedStore } from '../helpers/instrumented-store.js';

export interface RunningApp {
  /** Base URL, e.g. http://127.0.0.1:PORT */
  url: string;
  close(): Promise<void>;
  /** The client to reach it with, when global fetch cannot (an h2c server). */
  fetch?: typeof fetch;
}

export type StartApp = (sessions: Sessions<Record<string, JsonValue>>) => Promise<RunningApp>;

/**
 * The scenario app with the adapter mounted once per engine, in order, before the routes (the
 * same engine twice: app-wide and again on the routes; two engines: one mounted under the other),
 * and `betweenMounts` run between each two mounts.
 */
export type StartMounted = (engines: Sessions<Record<string, JsonValue>>[]) => Promise<RunningApp>;

class Browser {
  readonly jar = new CookieJar();
  constructor(
    private readonly base: () => string,
    private readonly client: () => typeof fetch,
  ) {}
  async request(method: string, path: string, headers: Record<string, string> = {}) {
    const cookie = this.jar.header();
    const response = await this.client()(this.base() + path, {
      method,
      headers: { ...(cookie && { cookie }), ...headers },
      redirect: 'manual',
    });
    const setCookie = response.headers.getSetCookie();
    this.jar.apply(setCookie.filter((c) => c.startsWith('sid=')));
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // plain text
    }
    return { status: response.status, headers: response.headers, setCookie, body };
  }
  get(path: string, headers?: Record<string, string>) {
    return this.request('GET', path, headers);
  }
  post(path: string, headers?: Record<string, string>) {
    return this.request('POST', path, headers);
  }
}

export function runAdapterScenarios(name: string, start: StartApp, startMounted?: StartMounted): void {
  describe(`adapter scenarios: ${name}`, () => {
    const clock = new ManualClock(Date.now());
    let store: InstrumentedStore;
    let app: RunningApp;
    before(async () => {
      store = instrument(memoryStore({ clock, sweepInterval: 0 }));
      const sessions = createSessions<Record<string, JsonValue>>({ store, clock, idleTimeout: 600, storeTimeout: 500 });
      app = await start(sessions);
    });
    after(async () => {
      await app?.close();
      await store?.close();
    });
    const browser = () => new Browser(() => app.url, () => app.fetch ?? fetch);

    it('never touches the session on a request that does not use it', async () => {
      const b = browser();
      await b.post('/set?key=a&value=1');
      store.resetCounts();
      const res = await b.get('/health');
      assert.equal(res.status, 200);
      assert.equal(res.body, 'ok');
      assert.deepEqual(res.setCookie, []);
      assert.equal(res.headers.get('vary'), null);
      assert.equal(store.totalCalls(), 0);
    });

    it('creates a session with a cookie only once data is stored', async () => {
      const b = browser();
      const empty = await b.get('/session');
      assert.deepEqual(empty.body, { user: null, data: {} });
      assert.deepEqual(empty.setCookie, []);
      const res = await b.post('/set?key=name&value=%22Ada%22');
      assert.equal(res.status, 200);
      assert.equal(res.setCookie.length, 1);
      assert.match(res.setCookie[0]!, /^sid=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax$/);
      assert.match(res.headers.get('vary') ?? '', /Cookie/i);
      assert.equal(res.headers.get('cache-control'), 'private');
    });

    it('reads and changes the session, setting no cookie on read-only requests', async () => {
      const b = browser();
      await b.post('/set?key=name&value=%22Ada%22');
      const read = await b.get('/session');
      assert.deepEqual(read.body, { user: null, data: { name: 'Ada' } });
      assert.deepEqual(read.setCookie, []);
      await b.post('/set?key=name&value=%22Grace%22');
      assert.deepEqual((await b.get('/session')).body, { user: null, data: { name: 'Grace' } });
    });

    it('keeps every write of concurrent requests to one session', async () => {
      const b = browser();
      await b.post('/set?key=start&value=true');
      await Promise.all(Array.from({ length: 20 }, (_, i) => b.post(`/set?key=k${i}&value=${i}`)));
      const { body } = await b.get('/session');
      const data = (body as { data: Record<string, unknown> }).data;
      for (let i = 0; i < 20; i++) assert.equal(data[`k${i}`], i);
    });

    it('login resets the session keeping persistent fields; the old cookie is dead', async () => {
      const b = browser();
      await b.post('/set?key=language&value=%22de%22');
      await b.post('/set?key=cart&value=%5B1%5D');
      const before = b.jar.get('sid');
      const res = await b.post('/login?user=alice');
      assert.deepEqual(res.body, { user: 'alice' });
      assert.notEqual(b.jar.get('sid'), before);
      assert.deepEqual((await b.get('/session')).body, { user: 'alice', data: { language: 'de' } });
      const replay = browser();
      replay.jar.apply([`sid=${before}`]);
      assert.deepEqual((await replay.get('/session')).body, { user: null, data: {} });
    });

    it('logout resets the session keeping persistent fields', async () => {
      const b = browser();
      await b.post('/set?key=language&value=%22fr%22');
      await b.post('/login?user=bob');
      const before = b.jar.get('sid');
      await b.post('/logout');
      assert.notEqual(b.jar.get('sid'), before);
      assert.deepEqual((await b.get('/session')).body, { user: null, data: { language: 'fr' } });
    });

    it('ends an idle session on the server clock and clears the cookie', async () => {
      const b = browser();
      await b.post('/set?key=a&value=1');
      clock.advance(601);
      const res = await b.get('/session');
      assert.deepEqual(res.body, { user: null, data: {} });
      assert.match(res.setCookie[0] ?? '', /^sid=; Max-Age=0/);
    });

    it('treats tampered and malformed cookies as no session, never a 500', async () => {
      const b = browser();
      await b.post('/set?key=a&value=1');
      const real = b.jar.get('sid')!;
      const flipped = (real[0] === 'A' ? 'B' : 'A') + real.slice(1);
      const headers = [
        `sid=${flipped}`,
        `sid=${real.slice(0, -1)}`,
        `sid=${real}x`,
        'sid=%ZZ%',
        `sid="${'a'.repeat(10)}`,
        'sid=\u00e9\u00e8',
        `sid=${'a'.repeat(8000)}`,
        ';;;=;sid;=sid=',
        `sid=${real}; sid=${flipped}`,
      ];
      for (const cookie of headers) {
        const res = await (app.fetch ?? fetch)(app.url + '/session', { headers: { cookie } });
        assert.equal(res.status, 200, cookie.slice(0, 40));
        const body = (await res.json()) as { data: Record<string, unknown> };
        assert.deepEqual(body.data, {}, cookie.slice(0, 40));
      }
    });

    for (const fault of ['reject', 'throw'] as const) {
      it(`answers 503 when the store is down (${fault === 'reject' ? 'rejecting' : 'throwing synchronously'}), without Set-Cookie, and recovers`, async () => {
        const b = browser();
        await b.post('/set?key=a&value=1');
        store.fault = fault;
        try {
          const res = await b.get('/session');
          assert.equal(res.status, 503);
          assert.deepEqual(res.setCookie.filter((c) => c.startsWith('sid=')), []);
          const write = await b.post('/set?key=a&value=2');
          assert.equal(write.status, 503);
        } finally {
          store.fault = 'none';
        }
        assert.deepEqual((await b.get('/session')).body, { user: null, data: { a: 1 } });
      });

      it(`answers 503 when the save fails (${fault === 'reject' ? 'rejecting' : 'throwing synchronously'}), keeping the stored data`, async () => {
        const b = browser();
        await b.post('/set?key=a&value=1');
        store.fault = fault;
        store.faultOnly = ['update'];
        try {
          const write = await b.post('/set?key=a&value=2');
          assert.equal(write.status, 503);
          assert.deepEqual(write.setCookie.filter((c) => c.startsWith('sid=')), []);
        } finally {
          store.fault = 'none';
          store.faultOnly = null;
        }
        assert.deepEqual((await b.get('/session')).body, { user: null, data: { a: 1 } });
      });
    }

    it('answers 503 within the store timeout when the store hangs', async () => {
      const b = browser();
      await b.post('/set?key=a&value=1');
      store.fault = 'hang';
      const started = Date.now();
      try {
        const res = await b.get('/session');
        assert.equal(res.status, 503);
      } finally {
        store.fault = 'none';
      }
      assert.ok(Date.now() - started < 3000);
    });

    it('saves nothing when the app answers 5xx', async () => {
      const b = browser();
      await b.post('/set?key=a&value=1');
      const res = await b.post('/fail');
      assert.equal(res.status, 500);
      assert.deepEqual((await b.get('/session')).body, { user: null, data: { a: 1 } });
    });

    it("appends Set-Cookie without clobbering the app's own cookies", async () => {
      const b = browser();
      const res = await b.post('/with-app-cookie');
      assert.ok(res.setCookie.some((c) => c.startsWith('theme=dark')));
      assert.ok(res.setCookie.some((c) => c.startsWith('sid=')));
    });

    it("keeps a response that hands out a session out of shared caches, whatever the app's Cache-Control", async () => {
      const cases: [string, string][] = [
        ['public, max-age=600', 'private, max-age=600'],
        ['max-age=60, s-maxage=600, stale-while-revalidate=30', 'private, max-age=60, stale-while-revalidate=30'],
        ['no-cache', 'private, no-cache'],
        ['private, max-age=5', 'private, max-age=5'],
        ['no-store', 'no-store'],
        ['public, no-store', 'no-store'],
      ];
      for (const [app, sent] of cases) {
        // A first visitor: no Cookie header, as every other first visitor; a new session's cookie.
        const res = await browser().post(`/cached?set&cc=${encodeURIComponent(app)}`);
        assert.equal(res.setCookie.filter((c) => c.startsWith('sid=')).length, 1, app);
        assert.equal(res.headers.get('cache-control'), sent, app);
        assert.match(res.headers.get('vary') ?? '', /Cookie/i);
      }
      // Without the session's cookie the app's value stands: Vary: Cookie keys it per session.
      const b = browser();
      await b.post('/set?key=a&value=1');
      const read = await b.get(`/cached?cc=${encodeURIComponent('public, max-age=600')}`);
      assert.deepEqual(read.setCookie.filter((c) => c.startsWith('sid=')), []);
      assert.equal(read.headers.get('cache-control'), 'public, max-age=600');
      assert.match(read.headers.get('vary') ?? '', /Cookie/i);
    });

    it('makes the session reachable through AsyncLocalStorage', async () => {
      const b = browser();
      await b.post('/set?key=a&value=%22deep%22');
      assert.deepEqual((await b.get('/current?key=a')).body, { value: 'deep' });
      assert.deepEqual((await b.get('/context')).body, { available: true });
    });
  });

  describe(`adapter scenarios: ${name} with context: false`, () => {
    let store: InstrumentedStore;
    let app: RunningApp;
    before(async () => {
      store = instrument(memoryStore({ sweepInterval: 0 }));
      app = await start(createSessions<Record<string, JsonValue>>({ store, context: false, storeTimeout: 500 }));
    });
    after(async () => {
      await app?.close();
      await store?.close();
    });

    it('serves sessions through the adapter without AsyncLocalStorage', async () => {
      const b = new Browser(() => app.url, () => app.fetch ?? fetch);
      assert.deepEqual((await b.post('/incr')).body, { count: 1 });
      assert.deepEqual((await b.post('/incr')).body, { count: 2 });
      assert.deepEqual((await b.get('/context')).body, { available: false });
      assert.deepEqual((await b.get('/session')).body, { user: null, data: { count: 2 } });
      store.resetCounts();
      assert.equal((await b.get('/health')).status, 200);
      assert.equal(store.totalCalls(), 0);
    });
  });

  if (!startMounted) return;
  describe(`adapter scenarios: ${name} mounted twice`, () => {
    it('keeps one session when mounted twice with the same engine: one cookie, one record, one commit', async () => {
      const store = instrument(memoryStore({ sweepInterval: 0 }));
      const sessions = createSessions<Record<string, JsonValue>>({ store, storeTimeout: 500 });
      const app = await startMounted([sessions, sessions]);
      try {
        const b = new Browser(() => app.url, () => app.fetch ?? fetch);
        const res = await b.post('/set?key=a&value=1');
        assert.equal(res.status, 200);
        assert.equal(res.setCookie.filter((c) => c.startsWith('sid=')).length, 1, res.setCookie.join(' | '));
        assert.equal(store.calls.create, 1);
        assert.deepEqual((await b.post('/incr')).body, { count: 1 });
        assert.deepEqual((await b.get('/session')).body, { user: null, data: { outer: true, a: 1, count: 1 } });
        assert.deepEqual((await b.get('/context')).body, { available: true });
        assert.equal(store.calls.create, 1);
      } finally {
        await app.close();
        await store.close();
      }
    });

    it("refuses a second engine on a request that already has another engine's session", async () => {
      const users = instrument(memoryStore({ sweepInterval: 0 }));
      const admins = instrument(memoryStore({ sweepInterval: 0 }));
      const app = await startMounted([
        createSessions<Record<string, JsonValue>>({ store: users, storeTimeout: 500 }),
        createSessions<Record<string, JsonValue>>({ store: admins, storeTimeout: 500, cookie: { name: 'admin_sid' } }),
      ]);
      try {
        const res = await (app.fetch ?? fetch)(app.url + '/login?user=root', { method: 'POST' });
        await res.arrayBuffer();
        // The framework's error path (a ConfigError, status 500): nobody is logged in anywhere.
        assert.equal(res.status, 500);
        assert.deepEqual(res.headers.getSetCookie().filter((c) => /^(admin_)?sid=/.test(c)), []);
        assert.equal(users.calls.create ?? 0, 0);
        assert.equal(admins.calls.create ?? 0, 0);
      } finally {
        await app.close();
        await users.close();
        await admins.close();
      }
    });
  });
}
