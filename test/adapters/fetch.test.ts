import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { getSession, withSessions } from '../../src/adapters/fetch.js';
import { ConfigError, createSessions, HeadersSentError, ReauthenticationRequiredError, type Session, StoreError } from '../../src/index.js';
import type { JsonValue } from '../../src/types.js';
import { instrument } from '../helpers/instrumented-store.js';
import { memoryStore } from '../../src/stores/memory.js';
import { betweenMounts, scenarioRoute } from './scenario-app.js';
import { runAdapterScenarios, type RunningApp } from './scenarios.js';

/** Serves a Fetch handler over node:http (what @hono/node-server and similar do). */
async function serveFetch(handler: (request: Request) => Promise<Response>): Promise<RunningApp> {
  const server = createServer(async (req, res) => {
    const request = toRequest(req);
    const response = await handler(request);
    res.statusCode = response.status;
    response.headers.forEach((value, key) => {
      if (key !== 'set-cookie') res.setHeader(key, value);
    });
    const cookies = response.headers.getSetCookie();
    if (cookies.length) res.setHeader('Set-Cookie', cookies);
    res.end(Buffer.from(await response.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function toRequest(req: IncomingMessage): Request {
  const headers = new Headers();
  for (const [key, value] of Object.entries(req.headers)) {
    if (typeof value === 'string') headers.set(key, value);
    else if (Array.isArray(value)) for (const v of value) headers.append(key, v);
  }
  return new Request(`http://${req.headers.host}${req.url}`, { method: req.method, headers });
}

async function scenarioHandler(request: Request): Promise<Response> {
  const reply = await scenarioRoute(request.method, new URL(request.url), () => getSession(request));
  const headers = new Headers({ 'content-type': typeof reply.body === 'string' ? 'text/plain' : 'application/json' });
  if (reply.appCookie) headers.append('Set-Cookie', reply.appCookie);
  if (reply.cacheControl) headers.set('Cache-Control', reply.cacheControl);
  return new Response(typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body), { status: reply.status, headers });
}

runAdapterScenarios(
  'fetch',
  async (sessions) => serveFetch(withSessions(sessions, scenarioHandler)),
  // A wrapped handler called from a wrapped one; what the handler throws is the server's 500.
  async (engines) => {
    let handler = withSessions(engines.at(-1)!, scenarioHandler);
    for (const sessions of engines.slice(0, -1).reverse()) {
      const inner = handler;
      handler = withSessions(sessions, async (request) => {
        await betweenMounts(() => getSession(request));
        return inner(request);
      });
    }
    return serveFetch((request) => handler(request).catch((error: unknown) => new Response(String(error), { status: 500 })));
  },
);

describe('fetch adapter specifics', () => {
  it('refuses IP binding without getClientIp where it opens the session; nested, it uses the outer mount\'s', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }), binding: { ip: true } });
    const handler = async (request: Request) => {
      (await getSession(request)).set('a', 1);
      return new Response('ok');
    };
    const request = () => new Request('http://localhost/');
    await assert.rejects(withSessions(sessions, handler)(request()), /binding\.ip needs the client address[^]*getClientIp/);
    const inner = withSessions(sessions, handler);
    const outer = withSessions(sessions, (r: Request) => inner(r), { getClientIp: () => '192.0.2.1' });
    const response = await outer(request());
    assert.equal(response.status, 200);
    assert.equal(response.headers.getSetCookie().length, 1);
    // A getClientIp that gives no address for a request binds nothing: refused the same way,
    // only where the session is used.
    const bound = withSessions(sessions, async (r: Request) => (new URL(r.url).pathname === '/health' ? new Response('ok') : handler(r)), {
      getClientIp: (r: Request) => r.headers.get('x-real-ip'),
    });
    await assert.rejects(bound(request()), /binding\.ip needs the client address, and getClientIp[^]*gave none/);
    assert.equal((await bound(new Request('http://localhost/health'))).status, 200);
    assert.equal((await bound(new Request('http://localhost/', { headers: { 'x-real-ip': '192.0.2.9' } }))).status, 200);
    // Not even asked on a request that never uses its session.
    let calls = 0;
    const counted = withSessions(sessions, async () => new Response('ok'), { getClientIp: () => String(++calls) });
    assert.equal((await counted(request())).status, 200);
    assert.equal(calls, 0);
  });

  it("leaves an app's own cookie of the session cookie's name alone (a clearing one, another Path): no second-session refusal", async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const handler = withSessions(sessions, async (request: Request) => {
      const session = await getSession(request);
      const path = new URL(request.url).pathname;
      const headers = new Headers();
      if (path === '/login') {
        await session.login('alice');
        headers.append('Set-Cookie', 'sid=; Max-Age=0; Path=/old-app'); // an old deployment's cookie
        headers.append('Set-Cookie', 'sid=legacy; Path=/legacy');
        // Other scopes of a session-shaped value: another Domain, no Path (the request's directory).
        headers.append('Set-Cookie', `sid=${'a'.repeat(43)}; Domain=localhost; Path=/`);
        headers.append('Set-Cookie', `sid=${'b'.repeat(43)}`);
      }
      if (path === '/logout') {
        await session.logout();
        headers.append('Set-Cookie', 'sid=; Max-Age=0; Path=/'); // the app clears it too
      }
      return new Response('ok', { headers });
    });
    const login = await handler(new Request('http://localhost/login', { method: 'POST' }));
    assert.equal(login.status, 200);
    const cookie = login.headers.getSetCookie().find((c) => /^sid=[\w-]{43};/.test(c))!.split(';')[0]!;
    const logout = await handler(new Request('http://localhost/logout', { method: 'POST', headers: { cookie } }));
    assert.equal(logout.status, 200);
  });

  it("never adds a session cookie to the app's own Response: one it returns again carries no earlier user's cookie", async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const DONE = new Response(null, { status: 204, headers: { 'x-app': '1' } }); // a module constant
    const handler = withSessions(sessions, async (request: Request) => {
      if (new URL(request.url).pathname === '/login') await (await getSession(request)).login('alice');
      return DONE;
    });
    const alice = await handler(new Request('http://localhost/login', { method: 'POST' }));
    assert.equal(alice.status, 204);
    assert.equal(alice.headers.get('x-app'), '1');
    assert.match(alice.headers.getSetCookie()[0] ?? '', /^sid=/);
    assert.equal(alice.headers.get('vary'), 'Cookie');
    const bob = await handler(new Request('http://localhost/ping', { method: 'POST' }));
    assert.equal(bob.status, 204);
    assert.deepEqual(bob.headers.getSetCookie(), []);
    assert.equal(bob.headers.get('vary'), null);
    const left: [string, string][] = [];
    DONE.headers.forEach((value, name) => left.push([name, value]));
    assert.deepEqual(left, [['x-app', '1']], "the app's Response is unchanged");
  });

  it("sends the body of the app's Response through the copy that carries the session headers", async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const handler = withSessions(sessions, async (request: Request) => {
      (await getSession(request)).set('n', 1);
      return new Response('hello', { status: 201, statusText: 'Made', headers: { 'content-type': 'text/plain' } });
    });
    const response = await handler(new Request('http://localhost/', { method: 'POST' }));
    assert.equal(response.status, 201);
    assert.equal(response.statusText, 'Made');
    assert.equal(response.headers.get('content-type'), 'text/plain');
    assert.match(response.headers.getSetCookie()[0] ?? '', /^sid=/);
    assert.equal(await response.text(), 'hello');
  });

  it('adds session headers to immutable responses such as Response.redirect()', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const handler = withSessions(sessions, async (request) => {
      (await getSession(request)).set('after', 'redirect');
      return Response.redirect('http://localhost/next', 303);
    });
    const response = await handler(new Request('http://localhost/login', { method: 'POST' }));
    assert.equal(response.status, 303);
    assert.equal(response.headers.get('location'), 'http://localhost/next');
    assert.match(response.headers.getSetCookie()[0] ?? '', /^sid=/);
  });

  it('uses a __Host- cookie for https URLs and trusts X-Forwarded-Proto only with trustProxy', async () => {
    const plain = withSessions(createSessions({ store: memoryStore({ sweepInterval: 0 }) }), async (request) => {
      (await getSession(request)).set('a', 1);
      return new Response('ok');
    });
    const https = await plain(new Request('https://example.test/'));
    assert.match(https.headers.getSetCookie()[0] ?? '', /^__Host-sid=.*; Secure/);
    const spoofed = await plain(new Request('http://example.test/', { headers: { 'x-forwarded-proto': 'https' } }));
    assert.match(spoofed.headers.getSetCookie()[0] ?? '', /^sid=/);
    const proxied = withSessions(createSessions({ store: memoryStore({ sweepInterval: 0 }), trustProxy: true }), async (request) => {
      (await getSession(request)).set('a', 1);
      return new Response('ok');
    });
    const behindProxy = await proxied(new Request('http://internal/', { headers: { 'x-forwarded-proto': 'https' } }));
    assert.match(behindProxy.headers.getSetCookie()[0] ?? '', /^__Host-sid=.*; Secure/);
  });

  it("cancels the app's response body when the commit fails and the failure answer replaces it", async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    let cancelled = 0;
    const handler = withSessions(createSessions({ store }), async (request) => {
      (await getSession(request)).set('n', 1);
      const body = new ReadableStream({ pull: (controller) => controller.enqueue(new Uint8Array(1024)), cancel: () => void cancelled++ }, { highWaterMark: 1 });
      return new Response(body);
    });
    store.fault = 'reject';
    store.faultOnly = ['create'];
    const response = await handler(new Request('http://localhost/'));
    assert.equal(response.status, 503);
    await response.text();
    assert.equal(cancelled, 1);
  });

  it('saves the changes of a request whose handler throws a coatcheck 4xx, answered with the cookie; others save nothing', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const handler = withSessions(sessions, async (request) => {
      const session = await getSession(request);
      const path = new URL(request.url).pathname;
      if (path === '/transfer') {
        session.set('returnTo', '/transfer');
        session.requireFreshAuth(300); // ReauthenticationRequiredError, 401: answered here
      }
      if (path === '/forbidden') {
        session.set('denied', true);
        throw Object.assign(new Error('Forbidden'), { statusCode: 403, expose: true }); // http-errors' shape
      }
      if (path === '/bug') {
        session.set('bug', true);
        throw new Error('bug');
      }
      return Response.json(session.toJSON());
    });
    const transfer = await handler(new Request('http://localhost/transfer'));
    assert.equal(transfer.status, 401);
    assert.match(await transfer.text(), /^Unauthorized/);
    assert.equal(transfer.headers.get('cache-control'), 'no-store');
    const cookie = transfer.headers.getSetCookie()[0]!.split(';')[0]!;
    assert.match(cookie, /^sid=/);
    assert.deepEqual(await (await handler(new Request('http://localhost/', { headers: { cookie } }))).json(), { returnTo: '/transfer' });

    // Rethrown (another's 4xx, or anything else): the answer is built elsewhere and could not carry
    // a cookie the commit needs (a new session's, a login's), so nothing is saved.
    await assert.rejects(handler(new Request('http://localhost/forbidden', { headers: { cookie } })), /Forbidden/);
    await assert.rejects(handler(new Request('http://localhost/bug', { headers: { cookie } })), /bug/);
    assert.deepEqual(await (await handler(new Request('http://localhost/', { headers: { cookie } }))).json(), { returnTo: '/transfer' });
    store.resetCounts();
    for (let i = 0; i < 3; i++) await assert.rejects(handler(new Request('http://localhost/forbidden')), /Forbidden/);
    assert.equal(store.calls.create ?? 0, 0, 'no unreachable record per cookieless request');

    // A failed save is the usual 503, for an answered and for a rethrown error alike.
    store.fault = 'reject';
    store.faultOnly = ['update', 'create'];
    try {
      // New sessions: creating them fails.
      assert.equal((await handler(new Request('http://localhost/transfer'))).status, 503);
    } finally {
      store.fault = 'none';
      store.faultOnly = null;
    }
  });

  it('passes a 4xx answer through onError, with the cookie on it', async () => {
    const seen: unknown[] = [];
    const handler = withSessions(
      createSessions({ store: memoryStore({ sweepInterval: 0 }) }),
      async (request) => {
        (await getSession(request)).set('returnTo', '/x');
        throw new ReauthenticationRequiredError(null, 60);
      },
      { onError: (error) => (seen.push(error), Response.redirect('http://localhost/login', 303)) },
    );
    const res = await handler(new Request('http://localhost/x'));
    assert.equal(res.status, 303);
    assert.ok(seen[0] instanceof ReauthenticationRequiredError);
    assert.match(res.headers.getSetCookie()[0] ?? '', /^sid=/);
  });

  it('rejects getSession for a request no wrapper opened a session for, naming the cause', async () => {
    let outcome: unknown;
    assert.doesNotThrow(() => {
      outcome = getSession(new Request('http://localhost/'));
    });
    await assert.rejects(outcome as Promise<unknown>, (error: unknown) => error instanceof ConfigError && /not wrapped in withSessions/.test(error.message));
  });
  it('closes the session when the handler throws: a change left to a timer throws instead of being lost', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const outcomes: string[] = [];
    const laterChange = (session: Session<Record<string, JsonValue>>) =>
      new Promise<void>((resolve) =>
        setImmediate(() => {
          try {
            session.set('late', true);
            outcomes.push('accepted');
          } catch (error) {
            outcomes.push((error as Error).name);
          }
          resolve();
        }),
      );
    let pending: Promise<void> = Promise.resolve();
    const handler = withSessions(sessions, async (request: Request) => {
      const session = await getSession<Record<string, JsonValue>>(request);
      session.set('a', 1);
      pending = laterChange(session);
      throw new Error('boom');
    });
    await assert.rejects(handler(new Request('http://localhost/')), /boom/);
    await pending;
    const answered = withSessions(sessions, async (request: Request) => {
      const session = await getSession<Record<string, JsonValue>>(request);
      pending = laterChange(session);
      throw new StoreError('memory', 'get', new Error('store down'));
    });
    assert.equal((await answered(new Request('http://localhost/'))).status, 503);
    await pending;
    assert.deepEqual(outcomes, ['HeadersSentError', 'HeadersSentError']);
    await sessions.close();
  });

  it('getSession(request) still answers after the response: an async onError, a streamed body', async () => {
    const sessions = createSessions({ store: instrument(memoryStore({ sweepInterval: 0 })) });
    const failing = instrument(memoryStore({ sweepInterval: 0 }));
    const down = createSessions({ store: failing });
    const handler = withSessions(
      down,
      async (request) => {
        (await getSession(request)).set('language', 'fr');
        failing.fault = 'reject';
        return new Response('ok');
      },
      {
        async onError(_error, request) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          return new Response(`503 in ${String((await getSession(request)).get('language'))}`, { status: 503 });
        },
      },
    );
    const failed = await handler(new Request('http://localhost/'));
    assert.equal(failed.status, 503);
    assert.equal(await failed.text(), '503 in fr');
    const streaming = withSessions(sessions, async (request) => {
      (await getSession(request)).set('name', 'ada');
      let sent = 0;
      return new Response(
        new ReadableStream({
          async pull(controller) {
            const name = String((await getSession(request)).get('name'));
            controller.enqueue(new TextEncoder().encode(`chunk ${sent} for ${name}\n`));
            if (++sent === 2) controller.close();
          },
        }),
      );
    });
    const body = await (await streaming(new Request('http://localhost/stream'))).text();
    assert.equal(body, 'chunk 0 for ada\nchunk 1 for ada\n');
    await sessions.close();
    await down.close();
  });

  it('gives a Request object handled again after its answer a session of its own (a gateway trying another handler on a 404)', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const other = createSessions({ store: memoryStore({ sweepInterval: 0 }), cookie: { name: 'web_sid' } });
    const api = withSessions(sessions, async (request) => {
      if (new URL(request.url).pathname !== '/api/me') return new Response('not here', { status: 404 });
      return Response.json((await getSession(request)).userId);
    });
    const web = withSessions(sessions, async (request) => {
      await (await getSession(request)).login('ada');
      return new Response('welcome');
    });
    const gateway = async (request: Request) => {
      const res = await api(request);
      return res.status === 404 ? web(request) : res;
    };
    const request = new Request('http://localhost/login', { method: 'POST' });
    const login = await gateway(request);
    assert.equal(login.status, 200);
    assert.equal(await login.text(), 'welcome');
    assert.match(login.headers.getSetCookie()[0] ?? '', /^sid=[\w-]{43};/);
    assert.equal(store.calls.create, 1);
    // The same object through the same handler again: a session of its own, saved again.
    const counter = withSessions(sessions, async (request) => {
      const session = await getSession(request);
      session.set('n', (session.get('n', 0) as number) + 1);
      return Response.json(session.get('n'));
    });
    const count = new Request('http://localhost/count');
    for (let i = 0; i < 2; i++) {
      const res = await counter(count);
      assert.equal(await res.json(), 1);
      assert.equal(res.headers.getSetCookie().length, 1);
    }
    // Another engine's handler after the first one answered: no "second engine" refusal.
    const home = withSessions(other, async () => new Response('home'));
    assert.equal((await home(count)).status, 200);
    // After the answer the Request still leads to the last session opened for it (a streamed
    // body or an onError reading it), until another wrapper handles it.
    assert.equal((await getSession(count)).get('n'), undefined, "the other engine's, which stored nothing");
    await sessions.close();
    await other.close();
  });

  it('saves nothing for a returned Response whose body was already read or is locked (no server can send it)', async () => {
    for (const spoil of [(r: Response) => r.text(), (r: Response) => r.body!.getReader()] as const) {
      const store = instrument(memoryStore({ sweepInterval: 0 }));
      const sessions = createSessions({ store });
      const handler = withSessions(sessions, async (request: Request) => {
        await (await getSession(request)).login('alice');
        const answer = new Response('hello');
        await spoil(answer);
        return answer;
      });
      const res = await handler(new Request('http://localhost/login', { method: 'POST' }));
      assert.equal(res.bodyUsed || res.body?.locked, true, 'passed on untouched: the server answers its own failure');
      assert.equal(store.totalCalls(), 0, 'no login saved for an answer that cannot be sent');
      await sessions.close();
    }
  });

  it('passes Response.error() on untouched and saves nothing for it, as for a 5xx', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const failed = Response.error();
    let session!: Session<Record<string, JsonValue>>;
    const handler = withSessions(sessions, async (request: Request) => {
      session = await getSession<Record<string, JsonValue>>(request);
      session.set('a', 1);
      return failed;
    });
    const res = await handler(new Request('http://localhost/'));
    assert.equal(res, failed);
    assert.equal(res.type, 'error');
    assert.equal(store.totalCalls(), 0, 'no record created for a cookie that could never be sent');
    assert.throws(() => session.set('b', 2), HeadersSentError);
    await sessions.close();
  });
});
