import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { serve } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { Hono } from 'hono';
import { setCookie } from 'hono/cookie';
import { stream } from 'hono/streaming';
import { getSession as getFetchSession, withSessions as withFetchSessions } from '../../src/adapters/fetch.js';
import { getSession, honoSessions } from '../../src/adapters/hono.js';
import { currentSession } from '../../src/core/context.js';
import { hashToken } from '../../src/core/token.js';
import { ConfigError } from '../../src/errors.js';
import { createSessions, type Sessions, StoreError } from '../../src/index.js';
import type { JsonValue } from '../../src/types.js';
import { memoryStore } from '../../src/stores/memory.js';
import { instrument } from '../helpers/instrumented-store.js';
import { rawRequest } from '../helpers/raw-http.js';
import { betweenMounts, scenarioRoute } from './scenario-app.js';
import { runAdapterScenarios, type RunningApp } from './scenarios.js';

function listen(app: Hono): Promise<RunningApp> {
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) => {
      resolve({ url: `http://127.0.0.1:${info.port}`, close: () => new Promise((done) => server.close(() => done())) });
    });
  });
}

runAdapterScenarios('hono on @hono/node-server', async (sessions) => scenarioApp([sessions]), scenarioApp);

function scenarioApp(engines: Sessions<Record<string, JsonValue>>[]): Promise<RunningApp> {
  const app = new Hono();
  engines.forEach((sessions, i) => {
    if (i > 0) app.use((c, next) => betweenMounts(() => getSession(c)).then(next));
    app.use(honoSessions(sessions));
  });
  app.all('*', async (c) => {
    const reply = await scenarioRoute(c.req.method, new URL(c.req.url), () => getSession(c));
    if (reply.appCookie) setCookie(c, 'theme', 'dark', { path: '/' });
    if (reply.cacheControl) c.header('Cache-Control', reply.cacheControl);
    if (typeof reply.body === 'string') return c.text(reply.body, reply.status as 200);
    return c.json(reply.body, reply.status as 200);
  });
  return listen(app);
}

function sessionCookie(res: Response): string | undefined {
  return res.headers.getSetCookie().find((c) => /^(__Host-)?sid=/.test(c));
}

describe('hono adapter specifics', () => {
  it('works without a server: app.request() and app.fetch()', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const app = new Hono();
    app.use(honoSessions(createSessions({ store })));
    app.get('/health', (c) => c.text('ok'));
    app.post('/visit', async (c) => {
      const session = await c.get('session').load();
      session.set('visits', (session.get('visits', 0) as number) + 1);
      return c.json({ visits: session.get('visits') });
    });
    const first = await app.request('/visit', { method: 'POST' });
    assert.deepEqual(await first.json(), { visits: 1 });
    const cookie = sessionCookie(first)!.split(';')[0]!;
    const second = await app.fetch(new Request('http://localhost/visit', { method: 'POST', headers: { cookie } }));
    assert.deepEqual(await second.json(), { visits: 2 });
    store.resetCounts();
    const health = await app.request('/health', { headers: { cookie } });
    assert.equal(await health.text(), 'ok');
    assert.equal(health.headers.get('vary'), null);
    assert.equal(store.totalCalls(), 0);
  });

  it('uses a __Host- cookie for https URLs, and behind a proxy only with trustProxy', async () => {
    const handler = (trustProxy: boolean) => {
      const app = new Hono();
      app.use(honoSessions(createSessions({ store: memoryStore({ sweepInterval: 0 }), trustProxy })));
      app.post('/', async (c) => {
        (await c.get('session').load()).set('a', 1);
        return c.text('ok');
      });
      return app;
    };
    const https = await handler(false).request('https://example.test/', { method: 'POST' });
    assert.match(sessionCookie(https) ?? '', /^__Host-sid=.*; Secure/);
    const spoofed = await handler(false).request('http://example.test/', { method: 'POST', headers: { 'x-forwarded-proto': 'https' } });
    assert.match(sessionCookie(spoofed) ?? '', /^sid=/);
    const proxied = await handler(true).request('http://example.test/', { method: 'POST', headers: { 'x-forwarded-proto': 'https' } });
    assert.match(sessionCookie(proxied) ?? '', /^__Host-sid=.*; Secure/);
  });

  it('on @hono/node-server, takes HTTPS from the connection: an absolute https:// request target over plain HTTP is not HTTPS', async () => {
    const app = new Hono();
    app.use(honoSessions(createSessions({ store: memoryStore({ sweepInterval: 0 }) })));
    app.get('/', async (c) => {
      (await c.get('session').load()).set('a', 1);
      return c.text(c.req.url);
    });
    const running = await listen(app);
    try {
      const { port } = new URL(running.url);
      // Hono builds c.req.url from this target, so the URL says https: while the socket does not.
      const spoofed = await rawRequest(running.url, 'GET', `https://127.0.0.1:${port}/`);
      assert.equal(spoofed.body, `https://127.0.0.1:${port}/`);
      const cookie = spoofed.headers['set-cookie']?.[0] ?? '';
      assert.match(cookie, /^sid=/, 'the plain-HTTP cookie');
      assert.doesNotMatch(cookie, /Secure/);
    } finally {
      await running.close();
    }
  });

  it('records the client IP from @hono/node-server, by default and through getConnInfo', async () => {
    for (const options of [{}, { getClientIp: (c: Parameters<typeof getConnInfo>[0]) => getConnInfo(c).remote.address }]) {
      const store = memoryStore({ sweepInterval: 0 });
      const app = new Hono();
      app.use(honoSessions(createSessions({ store }), options));
      app.post('/', async (c) => {
        (await c.get('session').load()).set('a', 1);
        return c.text('ok');
      });
      const running = await listen(app);
      try {
        const res = await fetch(running.url, { method: 'POST' });
        const token = /^sid=([\w-]+)/.exec(sessionCookie(res)!)![1]!;
        assert.equal((await store.get(hashToken(token)))?.ip, '127.0.0.1');
      } finally {
        await running.close();
      }
    }
  });

  it("never adds a session cookie to the app's own Response: one it returns again carries no earlier user's cookie", async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = new Hono();
    app.use(honoSessions(sessions));
    let ACCEPTED: Response | undefined; // a module constant, made once the server has set up its Response class
    app.post('/login', async (c) => {
      await (await c.get('session').load()).login('carol');
      return ACCEPTED!;
    });
    app.post('/ping', (c) => {
      void c.get('session').load();
      return ACCEPTED!;
    });
    const running = await listen(app);
    try {
      // Without a server, and on @hono/node-server (its own lightweight Response class).
      for (const send of [(path: string) => app.request(path, { method: 'POST' }), (path: string) => fetch(running.url + path, { method: 'POST' })]) {
        ACCEPTED = new Response(null, { status: 202, headers: { 'x-app': '1' } });
        const carol = await send('/login');
        assert.equal(carol.status, 202);
        assert.equal(carol.headers.get('x-app'), '1');
        assert.match(sessionCookie(carol) ?? '', /^sid=/);
        const dave = await send('/ping');
        assert.equal(dave.status, 202);
        assert.deepEqual(dave.headers.getSetCookie(), []);
        assert.deepEqual(ACCEPTED.headers.getSetCookie(), [], 'no cookie ever lands on the shared Response');
        // Headers that are the same for every user are set in place (as Hono's cors/etag do).
        assert.equal(ACCEPTED.headers.get('vary'), 'Cookie');
      }
    } finally {
      await running.close();
    }
  });

  it("keeps the app's cookies on redirects and fetched (immutable) responses", async () => {
    const app = new Hono();
    app.use(honoSessions(createSessions({ store: memoryStore({ sweepInterval: 0 }) })));
    app.post('/redirect', async (c) => {
      (await c.get('session').load()).set('a', 1);
      setCookie(c, 'theme', 'dark');
      c.header('Vary', 'Accept');
      return c.redirect('/next', 303);
    });
    app.post('/immutable', async () => {
      (await currentSession().load()).set('a', 1);
      const upstream = Response.redirect('http://localhost/elsewhere', 302);
      return upstream;
    });
    const redirect = await app.request('/redirect', { method: 'POST' });
    assert.equal(redirect.status, 303);
    const cookies = redirect.headers.getSetCookie();
    assert.match(cookies[0] ?? '', /^theme=dark/);
    assert.match(cookies[1] ?? '', /^sid=/);
    assert.equal(redirect.headers.get('vary'), 'Accept, Cookie');
    assert.equal(redirect.headers.get('cache-control'), 'private');
    const immutable = await app.request('/immutable', { method: 'POST' });
    assert.equal(immutable.status, 302);
    assert.equal(immutable.headers.get('location'), 'http://localhost/elsewhere');
    assert.match(sessionCookie(immutable) ?? '', /^sid=/);
  });

  it('turns a store failure into 503 whether thrown by the handler or met while committing', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const app = new Hono();
    app.use(honoSessions(createSessions({ store })));
    app.post('/commit', async (c) => {
      const session = await c.get('session').load();
      store.fault = 'reject';
      session.set('a', 1);
      setCookie(c, 'theme', 'dark');
      return c.json({ ok: true });
    });
    app.get('/thrown', async () => {
      throw new StoreError('memory', 'get', new Error('down'));
    });
    app.get('/bug', async () => {
      throw new Error('bug');
    });
    try {
      const commit = await app.request('/commit', { method: 'POST' });
      assert.equal(commit.status, 503);
      assert.match(await commit.text(), /^Service Unavailable/);
      assert.equal(commit.headers.get('cache-control'), 'no-store');
      assert.deepEqual(commit.headers.getSetCookie(), []);
      const thrown = await app.request('/thrown');
      assert.equal(thrown.status, 503);
      const bug = await app.request('/bug');
      assert.equal(bug.status, 500);
    } finally {
      store.fault = 'none';
    }
  });

  it("leaves a failure the app's onError answered alone, and takes a custom onError", async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const app = new Hono();
    app.onError((error, c) => c.text(`app: ${(error as { code?: string }).code}`, 502));
    app.use(honoSessions(sessions, { onError: (error, c) => c.text(`custom ${(error as { status: number }).status}`, 599 as 500) }));
    app.post('/', async (c) => {
      (await c.get('session').load()).set('a', 1);
      return c.text('ok');
    });
    app.get('/read', async (c) => c.json((await c.get('session').load()).toJSON()));
    const cookie = sessionCookie(await app.request('/', { method: 'POST' }))!.split(';')[0]!;
    store.fault = 'reject';
    try {
      const read = await app.request('/read', { headers: { cookie } });
      assert.equal(read.status, 502);
      assert.equal(await read.text(), 'app: ERR_STORE');
      const write = await app.request('/', { method: 'POST' });
      assert.equal(write.status, 599);
      assert.equal(await write.text(), 'custom 503');
    } finally {
      store.fault = 'none';
    }
  });

  it("cancels the app's streamed body when the commit fails, so its stream() callback is not left waiting", async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const app = new Hono();
    app.use(honoSessions(createSessions({ store })));
    let aborted = false;
    app.get('/', async (c) => {
      (await c.get('session').load()).set('n', 1);
      return stream(c, async (body) => {
        body.onAbort(() => {
          aborted = true;
        });
        for (let i = 0; i < 100 && !aborted; i++) await body.write(new Uint8Array(64 * 1024));
      });
    });
    store.fault = 'reject';
    store.faultOnly = ['create'];
    const res = await app.request('/');
    assert.equal(res.status, 503);
    await res.text();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(aborted, true);
  });
});

describe('hono: a withSessions handler under app.mount()', () => {
  type Engine = Sessions<Record<string, JsonValue>>;
  /** honoSessions app-wide, a middleware using the session on /auth, and a mounted Fetch handler. */
  function mountedApp(sessions: Engine, mountOptions?: { replaceRequest: false }, onError?: (error: unknown) => Response) {
    const app = new Hono();
    app.use(honoSessions(sessions, onError ? { onError } : {}));
    app.post('/login', async (c) => {
      await (await getSession(c)).login('alice');
      return c.text('ok');
    });
    app.get('/me', async (c) => {
      const session = await getSession(c);
      return c.json({ user: session.userId, data: session.toJSON() });
    });
    app.use('/auth/*', async (c, next) => {
      (await getSession(c)).set('lastPath', c.req.path);
      await next();
    });
    app.mount(
      '/auth',
      withFetchSessions(sessions, async (request) => {
        const session = await getFetchSession(request);
        const path = new URL(request.url).pathname;
        if (path.endsWith('/login')) await session.login('bob');
        else if (path.endsWith('/logout')) await session.logout();
        return Response.json({ path, user: session.userId });
      }),
      mountOptions,
    );
    return app;
  }
  const sidOf = (res: Response) => res.headers.getSetCookie().filter((c) => /^sid=/.test(c));

  it('mounted with { replaceRequest: false }, uses the outer session for login and logout: one cookie, one commit', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const running = await listen(mountedApp(createSessions({ store }), { replaceRequest: false }));
    try {
      const login = await fetch(`${running.url}/auth/login`, { method: 'POST' });
      assert.equal(login.status, 200);
      assert.deepEqual(await login.json(), { path: '/auth/login', user: 'bob' });
      assert.equal(sidOf(login).length, 1, sidOf(login).join(' | '));
      assert.equal(store.calls.create, 1);
      const cookie = sidOf(login)[0]!.split(';')[0]!;
      assert.equal(((await (await fetch(`${running.url}/me`, { headers: { cookie } })).json()) as { user: string }).user, 'bob');

      const logout = await fetch(`${running.url}/auth/logout`, { method: 'POST', headers: { cookie } });
      assert.equal(logout.status, 200);
      assert.deepEqual(await logout.json(), { path: '/auth/logout', user: null });
      assert.equal(sidOf(logout).length, 1, sidOf(logout).join(' | '));
      assert.match(sidOf(logout)[0]!, /^sid=; Max-Age=0/);
      assert.deepEqual(await (await fetch(`${running.url}/me`, { headers: { cookie } })).json(), { user: null, data: {} });
    } finally {
      await running.close();
    }
  });

  it('never shares the session with a request that is not the mounted one (a cookieless sub-request, a call after the response)', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const seen: unknown[] = [];
    const track = withFetchSessions(sessions, async (request) => {
      const session = await getFetchSession(request);
      seen.push(session.get('visitor') ?? null);
      session.set('tracked', true);
      return new Response('tracked');
    });
    let later!: Promise<Response>;
    const app = new Hono();
    app.use(honoSessions(sessions));
    app.get('/page', async (c) => {
      (await getSession(c)).set('visitor', 'A');
      const sub = await track(new Request('http://localhost/track')); // cookieless, like this visitor
      await sub.text();
      later = new Promise((resolve) => setTimeout(() => resolve(track(new Request('http://localhost/track'))), 10));
      return c.text('page');
    });
    const running = await listen(app);
    try {
      const page = await fetch(`${running.url}/page`);
      assert.equal(await page.text(), 'page');
      const after = await later;
      assert.equal(await after.text(), 'tracked');
      assert.deepEqual(seen, [null, null], "neither call saw the visitor's session");
      assert.equal(after.headers.getSetCookie().length, 1, 'the later call got a session of its own');
    } finally {
      await running.close();
    }
  });

  it('with the default mount (a new Request), refuses two session cookies instead of sending both, with the context on too', async () => {
    const errors: unknown[] = [];
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const running = await listen(
      mountedApp(sessions, undefined, (error) => {
        errors.push(error);
        return new Response('refused', { status: 500 });
      }),
    );
    try {
      const login = await fetch(`${running.url}/auth/login`, { method: 'POST' });
      assert.equal(login.status, 500);
      assert.deepEqual(sidOf(login), []);
      assert.ok(errors[0] instanceof ConfigError && /replaceRequest: false/.test(errors[0].message), String(errors[0]));
      // A visitor with a session: the mounted login ends it, and the outer save finds it gone (409).
      const guest = await fetch(`${running.url}/auth/other`, { method: 'POST' });
      const cookie = sidOf(guest)[0]!.split(';')[0]!;
      const again = await fetch(`${running.url}/auth/login`, { method: 'POST', headers: { cookie } });
      assert.equal(again.status, 500); // this app's onError answers every failure with a 500
      assert.equal((errors.at(-1) as { code?: string }).code, 'ERR_SESSION_GONE');
      assert.deepEqual(sidOf(again), []);
    } finally {
      await running.close();
    }
  });

  it("refuses a second session without ending the browser's own (an outer rotation after a mounted save)", async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }), cookie: { persistent: true } });
    const app = new Hono();
    app.use(honoSessions(sessions, { onError: () => new Response('refused', { status: 500 }) }));
    app.post('/login', async (c) => {
      await (await getSession(c)).login('bob');
      return c.text('ok');
    });
    app.get('/me', async (c) => c.json({ user: (await getSession(c)).userId }));
    app.use('/account/*', async (c, next) => {
      await next();
      await (await getSession(c)).rotate();
    });
    app.mount(
      '/account',
      withFetchSessions(sessions, async (request) => {
        (await getFetchSession(request)).set('theme', 'dark'); // a persistent cookie: re-sent on every save
        return new Response('saved');
      }),
    );
    const running = await listen(app);
    try {
      const cookie = sidOf(await fetch(`${running.url}/login`, { method: 'POST' }))[0]!.split(';')[0]!;
      assert.equal((await fetch(`${running.url}/account/prefs`, { method: 'POST', headers: { cookie } })).status, 500);
      assert.deepEqual(await (await fetch(`${running.url}/me`, { headers: { cookie } })).json(), { user: 'bob' });
    } finally {
      await running.close();
    }
  });

  it('a sub-app with its own honoSessions under app.route(), or a Hono app inside withSessions, uses the outer session', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const sub = new Hono();
    sub.use(honoSessions(sessions));
    sub.post('/login', async (c) => {
      await (await getSession(c)).login('bob');
      return c.json({ user: (await getSession(c)).userId });
    });
    const app = new Hono();
    app.use(honoSessions(sessions));
    app.use('/sub/*', async (c, next) => {
      (await getSession(c)).set('language', 'de'); // kept by login(): the same session
      await next();
    });
    app.route('/sub', sub);
    app.get('/me', async (c) => {
      const session = await getSession(c);
      return c.json({ user: session.userId, data: session.toJSON() });
    });
    const running = await listen(app);
    try {
      const login = await fetch(`${running.url}/sub/login`, { method: 'POST' });
      assert.equal(login.status, 200);
      assert.equal(sidOf(login).length, 1, sidOf(login).join(' | '));
      const cookie = sidOf(login)[0]!.split(';')[0]!;
      assert.deepEqual(await (await fetch(`${running.url}/me`, { headers: { cookie } })).json(), { user: 'bob', data: { language: 'de' } });
      assert.equal(store.calls.create, 1);
    } finally {
      await running.close();
    }
    // The same app inside withSessions: a coatcheck 401 thrown in it is answered 401 (not the 500
    // Hono's error handler made of it), and what the route set is saved with the cookie.
    sub.post('/transfer', async (c) => {
      const session = await getSession(c);
      session.set('returnTo', '/transfer');
      session.requireFreshAuth(300);
      return c.text('done');
    });
    const wrapped = withFetchSessions(sessions, (request) => sub.fetch(request));
    const denied = await wrapped(new Request('http://localhost/transfer', { method: 'POST' }));
    assert.equal(denied.status, 401);
    const cookie = sidOf(denied)[0]!.split(';')[0]!;
    const me = withFetchSessions(sessions, async (request) => Response.json((await getFetchSession(request)).toJSON()));
    assert.deepEqual(await (await me(new Request('http://localhost/', { headers: { cookie } }))).json(), { returnTo: '/transfer' });
  });

  it('never shares the session with a sub-request made in the same context with another Cookie header', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const inner = withFetchSessions(sessions, async (request) => {
      const session = await getFetchSession(request);
      if (request.method === 'POST') await session.login('carol');
      return Response.json({ user: session.userId });
    });
    const app = new Hono();
    app.use(honoSessions(sessions));
    app.post('/login', async (c) => {
      await (await getSession(c)).login('alice');
      return c.text('ok');
    });
    app.get('/sub', async (c) => {
      const outer = await getSession(c);
      outer.set('seen', true);
      // Another client's request, made from inside this one: its own session, not alice's.
      const carol = await inner(new Request('http://localhost/x', { method: 'POST' }));
      const carolCookie = carol.headers.getSetCookie()[0]!.split(';')[0]!;
      const again = await inner(new Request('http://localhost/x', { headers: { cookie: carolCookie } }));
      return c.json({ outer: outer.userId, carol: await carol.json(), again: await again.json() });
    });
    const running = await listen(app);
    try {
      const cookie = sidOf(await fetch(`${running.url}/login`, { method: 'POST' }))[0]!.split(';')[0]!;
      assert.deepEqual(await (await fetch(`${running.url}/sub`, { headers: { cookie } })).json(), {
        outer: 'alice',
        carol: { user: 'carol' },
        again: { user: 'carol' },
      });
    } finally {
      await running.close();
    }
  });

  it('with context: false, works when mounted with { replaceRequest: false }, and never loses a login silently otherwise', async () => {
    const running = await listen(mountedApp(createSessions({ store: memoryStore({ sweepInterval: 0 }), context: false }), { replaceRequest: false }));
    try {
      const login = await fetch(`${running.url}/auth/login`, { method: 'POST' });
      assert.deepEqual(await login.json(), { path: '/auth/login', user: 'bob' });
      assert.equal(sidOf(login).length, 1);
      const cookie = sidOf(login)[0]!.split(';')[0]!;
      assert.equal(((await (await fetch(`${running.url}/me`, { headers: { cookie } })).json()) as { user: string }).user, 'bob');
    } finally {
      await running.close();
    }
    // The default mount hands on a new Request, which cannot lead back to the session without the
    // async context: two sessions would each set the cookie. Refused, not one silently dropped.
    const errors: unknown[] = [];
    const plain = await listen(
      mountedApp(createSessions({ store: memoryStore({ sweepInterval: 0 }), context: false }), undefined, (error) => {
        errors.push(error);
        return new Response('refused', { status: 500 });
      }),
    );
    try {
      const login = await fetch(`${plain.url}/auth/login`, { method: 'POST' });
      assert.equal(login.status, 500);
      await login.arrayBuffer();
      assert.deepEqual(sidOf(login), []);
      assert.ok(errors[0] instanceof ConfigError && /replaceRequest: false/.test(errors[0].message), String(errors[0]));
    } finally {
      await plain.close();
    }
  });
});

describe('hono: errors and options', () => {
  it("answers a coatcheck error thrown in a handler with the error's own status (413, 401), saving a 4xx's changes", async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const app = new Hono();
    app.use(honoSessions(createSessions({ store, maxDataSize: 100 })));
    app.post('/note', async (c) => {
      (await getSession(c)).set('note', 'x'.repeat(200));
      return c.text('saved');
    });
    app.post('/transfer', async (c) => {
      const session = await getSession(c);
      session.set('returnTo', '/transfer');
      session.requireFreshAuth(300);
      return c.text('done');
    });
    app.get('/me', async (c) => c.json((await getSession(c)).toJSON()));
    const running = await listen(app);
    try {
      const note = await fetch(`${running.url}/note`, { method: 'POST' });
      assert.equal(note.status, 413);
      assert.match(await note.text(), /^Payload Too Large/);
      assert.deepEqual(note.headers.getSetCookie(), []);
      const transfer = await fetch(`${running.url}/transfer`, { method: 'POST' });
      assert.equal(transfer.status, 401);
      assert.match(await transfer.text(), /^Unauthorized/);
      // The 401 is an answer: returnTo is saved and its cookie sent, for the sign-in to come back to.
      const cookie = sessionCookie(transfer)!.split(';')[0]!;
      assert.deepEqual(await (await fetch(`${running.url}/me`, { headers: { cookie } })).json(), { returnTo: '/transfer' });
    } finally {
      await running.close();
    }
  });

  it('refuses binding.ip where it cannot find the client address, as the Fetch adapter does, and takes getClientIp', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }), binding: { ip: true } });
    const errors: unknown[] = [];
    const app = new Hono();
    app.onError((error, c) => {
      errors.push(error);
      return c.text('error', 500);
    });
    app.use(honoSessions(sessions));
    app.post('/', async (c) => {
      (await getSession(c)).set('a', 1);
      return c.text('ok');
    });
    app.get('/health', (c) => c.text('ok'));
    // Away from @hono/node-server (a Bun-style env): no address the default can read.
    const res = await app.fetch(new Request('http://localhost/', { method: 'POST' }), { requestIP: () => ({ address: '198.51.100.7' }) });
    assert.equal(res.status, 500);
    assert.deepEqual(res.headers.getSetCookie(), []);
    assert.ok(errors[0] instanceof ConfigError && /binding\.ip needs the client address.*getClientIp/.test(errors[0].message), String(errors[0]));
    // Only where the session is used: a route that never touches it answers (app.request in tests).
    assert.equal((await app.request('/health')).status, 200);
    // With the runtime's helper it binds to that address.
    const store = memoryStore({ sweepInterval: 0 });
    const bound = new Hono<{ Bindings: { requestIP: () => { address: string } } }>();
    bound.use(honoSessions(createSessions({ store, binding: { ip: true } }), { getClientIp: (c) => (c.env as { requestIP: () => { address: string } }).requestIP().address }));
    bound.post('/', async (c) => {
      (await getSession(c)).set('a', 1);
      return c.text('ok');
    });
    const ok = await bound.fetch(new Request('http://localhost/', { method: 'POST' }), { requestIP: () => ({ address: '198.51.100.7' }) });
    assert.equal(ok.status, 200);
    const token = /^sid=([\w-]+)/.exec(sessionCookie(ok)!)![1]!;
    assert.equal((await store.get(hashToken(token)))?.ip, '198.51.100.7');
    // On @hono/node-server the default finds the socket's address.
    const running = await listen(app);
    try {
      assert.equal((await fetch(running.url, { method: 'POST' })).status, 200);
    } finally {
      await running.close();
    }
  });

  it('calls getClientIp only for a request that uses its session (the conninfo helper throws under app.request)', async () => {
    let calls = 0;
    const app = new Hono();
    app.use(
      honoSessions(createSessions({ store: memoryStore({ sweepInterval: 0 }), binding: { ip: true } }), {
        getClientIp: (c) => {
          calls++;
          return getConnInfo(c).remote.address; // no node server behind app.request: throws
        },
      }),
    );
    app.get('/health', (c) => c.text('ok'));
    app.onError((error, c) => c.text(String(error), 500));
    app.post('/', async (c) => {
      (await getSession(c)).set('a', 1);
      return c.text('ok');
    });
    assert.equal((await app.request('/health')).status, 200);
    assert.equal(calls, 0);
    assert.equal((await app.request('/', { method: 'POST' })).status, 500);
    assert.equal(calls, 1);
  });

  it('rejects getSession where honoSessions did not run, naming the cause', async () => {
    const app = new Hono();
    let outcome: unknown;
    app.get('/', (c) => {
      outcome = getSession(c);
      return c.text('x');
    });
    await app.request('/');
    assert.ok(outcome instanceof Promise);
    await assert.rejects(outcome, (error: unknown) => error instanceof ConfigError && /app\.use\(honoSessions\(sessions\)\) before the routes/.test(error.message));
  });
});

describe('hono: a Request object handled again, and responses no server can send', () => {
  it('gives a Request object handled again after its answer a session of its own (a gateway trying another app on a 404)', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const api = new Hono();
    api.use(honoSessions(sessions));
    api.get('/api/me', async (c) => c.json((await getSession(c)).userId));
    const web = new Hono();
    web.use(honoSessions(sessions));
    web.post('/login', async (c) => {
      await (await getSession(c)).login('ada');
      return c.text('welcome');
    });
    const gateway = async (request: Request) => {
      const res = await api.fetch(request);
      return res.status === 404 ? web.fetch(request) : res;
    };
    const login = await gateway(new Request('http://localhost/login', { method: 'POST' }));
    assert.equal(login.status, 200);
    assert.equal(await login.text(), 'welcome');
    assert.match(sessionCookie(login) ?? '', /^sid=[\w-]{43};/);
    assert.equal(store.calls.create, 1);

    // Two engines, one per app: the second app's routes are not refused as a "second engine".
    const other = createSessions({ store: memoryStore({ sweepInterval: 0 }), cookie: { name: 'web_sid' } });
    const site = new Hono();
    site.use(honoSessions(other));
    site.get('/', (c) => c.text('home'));
    const request = new Request('http://localhost/');
    assert.equal((await api.fetch(request)).status, 404);
    const home = await site.fetch(request);
    assert.equal(home.status, 200);
    assert.equal(await home.text(), 'home');
    await sessions.close();
    await other.close();
  });

  it('saves nothing for a returned Response whose body was already read (no server can send it)', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const app = new Hono();
    app.use(honoSessions(sessions));
    app.post('/login', async (c) => {
      await (await getSession(c)).login('alice');
      const answer = new Response('hello');
      await answer.text();
      return answer;
    });
    const res = await app.request('/login', { method: 'POST' });
    assert.equal(res.bodyUsed, true);
    assert.equal(store.totalCalls(), 0, 'no login saved for an answer that cannot be sent');
    await sessions.close();
  });

  it('saves nothing on @hono/node-server for a returned stream body the app locked; an unread stream still goes out', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const app = new Hono();
    app.use(honoSessions(sessions));
    app.get('/:mode', async (c) => {
      (await getSession(c)).set('x', c.req.param('mode'));
      const body = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('streamed body'));
          controller.close();
        },
      });
      if (c.req.param('mode') === 'locked') void body.getReader().read();
      return new Response(body);
    });
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise((resolve) => server.once('listening', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const ok = await fetch(`${base}/stream`);
      assert.equal(await ok.text(), 'streamed body');
      assert.match(ok.headers.getSetCookie()[0] ?? '', /^sid=/);
      const creates = store.calls.create ?? 0;
      // The server fails this answer as it would without coatcheck (the stream cannot be read).
      const locked = await fetch(`${base}/locked`).catch(() => null);
      await locked?.text().catch(() => '');
      assert.deepEqual(locked?.headers.getSetCookie() ?? [], []);
      assert.equal(store.calls.create ?? 0, creates, 'nothing saved for the answer that could not be sent');
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await sessions.close();
    }
  });

  it('passes Response.error() on untouched and saves nothing for it, as for a 5xx', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const app = new Hono();
    app.use(honoSessions(sessions));
    app.get('/error', async (c) => {
      (await getSession(c)).set('a', 1);
      return Response.error();
    });
    const res = await app.request('/error');
    assert.equal(res.status, 0);
    assert.equal(res.type, 'error');
    assert.equal(store.totalCalls(), 0, 'no record created for a cookie that could never be sent');
    await sessions.close();
  });
});
