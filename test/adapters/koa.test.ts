import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { describe, it } from 'node:test';
import Koa from 'koa';
import { getSession, koaSessions } from '../../src/adapters/koa.js';
import { currentSession } from '../../src/core/context.js';
import { hashToken } from '../../src/core/token.js';
import { createSessions, type Sessions } from '../../src/index.js';
import type { JsonValue } from '../../src/types.js';
import { memoryStore } from '../../src/stores/memory.js';
import { instrument } from '../helpers/instrumented-store.js';
import { slowCreateStore } from '../helpers/slow-create.js';
import { betweenMounts, scenarioRoute } from './scenario-app.js';
import { runAdapterScenarios, type RunningApp } from './scenarios.js';
import { withSessions } from '../../src/adapters/node.js';
import { HeadersSentError, StoreError } from '../../src/errors.js';
import { closed, gatedCreateStore, missingFileStream, uncaughtDuring } from './failing-stream.js';

async function listen(app: Koa): Promise<RunningApp> {
  app.silent = true; // expected errors (store down) would otherwise be logged by Koa
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

runAdapterScenarios('koa', async (sessions) => scenarioApp([sessions]), scenarioApp);

function scenarioApp(engines: Sessions<Record<string, JsonValue>>[]): Promise<RunningApp> {
  const app = new Koa();
  engines.forEach((sessions, i) => {
    if (i > 0) app.use((ctx, next) => betweenMounts(() => getSession(ctx)).then(next));
    app.use(koaSessions(sessions));
  });
  app.use(async (ctx) => {
    const reply = await scenarioRoute(ctx.method, new URL(ctx.url, 'http://localhost'), () => getSession(ctx));
    if (reply.appCookie) ctx.cookies.set('theme', 'dark', { httpOnly: false });
    if (reply.cacheControl) ctx.set('Cache-Control', reply.cacheControl);
    ctx.status = reply.status;
    ctx.body = reply.body;
  });
  return listen(app);
}

function cookieOf(res: Response): string {
  return res.headers.getSetCookie().find((c) => c.startsWith('sid='))!.split(';')[0]!;
}

describe('koa adapter specifics', () => {
  it('uses a Secure __Host- cookie when app.proxy is on, and ctx.ip for the record', async () => {
    const store = memoryStore({ sweepInterval: 0 });
    const sessions = createSessions({ store });
    const app = new Koa({ proxy: true });
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      (await ctx.session.load()).set('a', 1);
      ctx.body = 'ok';
    });
    const running = await listen(app);
    try {
      const res = await fetch(running.url, { method: 'POST', headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '192.0.2.8' } });
      const line = res.headers.getSetCookie()[0] ?? '';
      assert.match(line, /^__Host-sid=[\w-]{43}; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
      const token = /^__Host-sid=([\w-]+)/.exec(line)![1]!;
      assert.equal((await store.get(hashToken(token)))?.ip, '192.0.2.8');
      assert.match((await fetch(running.url, { method: 'POST' })).headers.getSetCookie()[0] ?? '', /^sid=/);
    } finally {
      await running.close();
    }
  });

  it('ignores X-Forwarded-Proto when neither Koa nor coatcheck trusts the proxy', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = new Koa();
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      (await ctx.session.load()).set('a', 1);
      ctx.body = 'ok';
    });
    const running = await listen(app);
    try {
      const res = await fetch(running.url, { method: 'POST', headers: { 'x-forwarded-proto': 'https' } });
      assert.match(res.headers.getSetCookie()[0] ?? '', /^sid=.*; SameSite=Lax$/);
    } finally {
      await running.close();
    }
  });

  it("keeps the app's cookies, Vary and Cache-Control, and commits before a streamed body", async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = new Koa();
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      ctx.cookies.set('a', '1');
      (await currentSession().load()).set('streamed', true);
      ctx.append('Set-Cookie', 'b=2');
      ctx.vary('Accept');
      ctx.set('Cache-Control', 'no-cache');
      ctx.type = 'text/plain';
      ctx.body = Readable.from(['one ', 'two']);
    });
    const running = await listen(app);
    try {
      const res = await fetch(running.url);
      assert.equal(await res.text(), 'one two');
      const cookies = res.headers.getSetCookie();
      assert.equal(cookies.length, 3);
      assert.match(cookies[0]!, /^a=1/);
      assert.equal(cookies[1], 'b=2');
      assert.match(cookies[2]!, /^sid=/);
      assert.equal(res.headers.get('vary'), 'Accept, Cookie');
      // The app's directive is kept; `private` is added, as the response hands out a new session.
      assert.equal(res.headers.get('cache-control'), 'private, no-cache');
    } finally {
      await running.close();
    }
  });

  it('runs a streamed body Koa pipes after the middleware chain outside the session context (documented)', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = new Koa();
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      const visits = ((await currentSession().load()).get('visits', 0) as number) + 1;
      currentSession().set('visits', visits);
      let pushed = false;
      ctx.type = 'text/plain';
      ctx.body = new Readable({
        read() {
          if (pushed) return void this.push(null);
          pushed = true;
          let seen: string;
          try {
            seen = String(currentSession().get('visits'));
          } catch (error) {
            seen = (error as { code?: string }).code ?? 'thrown';
          }
          // What the docs recommend instead: a value read before ctx.body was set.
          this.push(`${seen} ${visits}`);
        },
      });
    });
    const running = await listen(app);
    try {
      const res = await fetch(running.url);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'ERR_NO_CONTEXT 1');
      assert.match(cookieOf(res), /^sid=/);
    } finally {
      await running.close();
    }
  });

  it('answers 503 with a short body and no cookies when the commit fails', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const app = new Koa();
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      const session = await ctx.session.load();
      store.fault = 'reject';
      session.set('a', 1);
      ctx.cookies.set('theme', 'dark');
      ctx.body = Readable.from(['never sent']);
    });
    const running = await listen(app);
    try {
      const res = await fetch(running.url, { method: 'POST' });
      assert.equal(res.status, 503);
      assert.match(await res.text(), /^Service Unavailable/);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.deepEqual(res.headers.getSetCookie(), []);
    } finally {
      store.fault = 'none';
      await running.close();
    }
  });

  it("releases a web ReadableStream or Response body (Koa 3) when the commit fails, as it destroys a Node stream", async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const app = new Koa();
    app.use(koaSessions(createSessions({ store })));
    const cancelled: string[] = [];
    const source = (name: string) =>
      new ReadableStream({ pull: (controller) => controller.enqueue(new TextEncoder().encode('tick ')), cancel: () => void cancelled.push(name) }, { highWaterMark: 1 });
    app.use(async (ctx) => {
      (await ctx.session.load()).set('a', 1);
      ctx.body = ctx.path === '/web' ? source('web') : new Response(source('response'));
    });
    const running = await listen(app);
    store.fault = 'reject';
    try {
      for (const path of ['/web', '/response']) {
        const res = await fetch(running.url + path, { method: 'POST' });
        assert.equal(res.status, 503, path);
        assert.match(await res.text(), /^Service Unavailable/);
      }
      assert.deepEqual(cancelled, ['web', 'response']);
    } finally {
      store.fault = 'none';
      await running.close();
    }
  });

  it('answers 409 when the session was ended elsewhere during the request', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = new Koa();
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      const session = await ctx.session.load();
      if (ctx.path === '/race') await sessions.revoke(session.handle!);
      session.set('path', ctx.path);
      ctx.body = 'ok';
    });
    const running = await listen(app);
    try {
      const cookie = cookieOf(await fetch(running.url + '/create', { method: 'POST' }));
      const res = await fetch(running.url + '/race', { method: 'POST', headers: { cookie } });
      assert.equal(res.status, 409);
      assert.deepEqual(res.headers.getSetCookie(), []);
    } finally {
      await running.close();
    }
  });

  it('saves a session when a 4xx is thrown and delivers its cookie through err.headers', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = new Koa();
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      const session = await ctx.session.load();
      session.set('attempts', (session.get('attempts', 0) as number) + 1);
      if (ctx.path === '/deny') ctx.throw(403, 'nope', { headers: { 'X-Reason': 'test' } });
      if (ctx.path === '/crash') throw new Error('bug');
      ctx.body = { attempts: session.get('attempts') };
    });
    const running = await listen(app);
    try {
      const denied = await fetch(running.url + '/deny', { method: 'POST' });
      assert.equal(denied.status, 403);
      assert.equal(denied.headers.get('x-reason'), 'test');
      assert.match(denied.headers.get('vary') ?? '', /Cookie/);
      const cookie = cookieOf(denied);
      const crashed = await fetch(running.url + '/crash', { method: 'POST', headers: { cookie } });
      assert.equal(crashed.status, 500);
      assert.deepEqual(crashed.headers.getSetCookie(), []);
      // The 403 was saved (attempts 1), the 500 was not: this request makes it 2.
      const ok = await fetch(running.url + '/', { method: 'POST', headers: { cookie } });
      assert.deepEqual(await ok.json(), { attempts: 2 });
    } finally {
      await running.close();
    }
  });

  it("saves only what Koa's own error handler answers with a 4xx, and delivers the cookie through a wrapping error too", async () => {
    const store = memoryStore({ sweepInterval: 0 });
    const sessions = createSessions({ store });
    const app = new Koa();
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        // An error normaliser: a new object reaches Koa, not the one thrown downstream.
        if (ctx.path === '/wrapped') throw Object.assign(new Error('denied'), { status: 403, expose: true });
        throw error;
      }
    });
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      const session = await ctx.session.load();
      if (ctx.path === '/whoami') {
        ctx.body = { user: session.userId };
        return;
      }
      await session.login('alice');
      if (ctx.path === '/wrapped') ctx.throw(403);
      // Koa answers each of these with a 500: nothing may be saved for them.
      if (ctx.path === '/plain-object') throw { status: 403 };
      if (ctx.path === '/unknown-status') throw Object.assign(new Error('odd'), { status: 499 });
      if (ctx.path === '/enoent') throw Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
      ctx.body = 'ok';
    });
    // An error listener (a logger) never sees the session token among the error's own properties.
    const logged: string[] = [];
    app.on('error', (error: Error) => logged.push(JSON.stringify(error)));
    const running = await listen(app);
    try {
      const wrapped = await fetch(running.url + '/wrapped', { method: 'POST' });
      assert.equal(wrapped.status, 403);
      assert.ok(logged.length > 0 && logged.every((line) => !line.includes('sid=')), logged.join());
      const cookie = cookieOf(wrapped);
      assert.deepEqual(await (await fetch(running.url + '/whoami', { headers: { cookie } })).json(), { user: 'alice' });
      assert.equal(store.size, 1);
      for (const path of ['/plain-object', '/unknown-status', '/enoent']) {
        const res = await fetch(running.url + path, { method: 'POST' });
        assert.equal(res.status, 500, path);
        assert.deepEqual(res.headers.getSetCookie(), [], path);
        assert.equal(store.size, 1, `${path} saved nothing`);
      }
    } finally {
      await running.close();
    }
  });

  it('commits through the response hook when the session is first used after ctx.flushHeaders()', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const app = new Koa();
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      const body = new PassThrough();
      ctx.type = 'text/event-stream';
      ctx.body = body;
      ctx.flushHeaders();
      body.write('data: hello\n\n');
      (await ctx.session.load()).set('k', 1);
      body.end('data: bye\n\n');
    });
    const running = await listen(app);
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }) => void warnings.push(warning.code ?? '');
    process.on('warning', onWarning);
    try {
      // A failed save: the head is out, so the connection is closed instead of a clean 200.
      store.fault = 'reject';
      const failed = await fetch(running.url, { method: 'POST' });
      assert.equal(failed.status, 200);
      await assert.rejects(failed.text());
      store.fault = 'none';
      // A save that worked: the body arrives whole, and the cookie it could not carry is reported.
      const saved = await fetch(running.url, { method: 'POST' });
      assert.equal(await saved.text(), 'data: hello\n\ndata: bye\n\n');
      await new Promise((resolve) => setImmediate(resolve));
      assert.ok(warnings.includes('COATCHECK_COOKIE_AFTER_HEAD'), warnings.join());
    } finally {
      process.off('warning', onWarning);
      store.fault = 'none';
      await running.close();
    }
  });

  it('lets an upstream error middleware render a store failure thrown by the handler', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const app = new Koa();
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        ctx.status = (error as { status?: number }).status ?? 500;
        ctx.body = { error: (error as { code?: string }).code };
      }
    });
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      ctx.body = (await ctx.session.load()).toJSON();
    });
    const running = await listen(app);
    try {
      const created = await fetch(running.url, { method: 'POST' });
      assert.deepEqual(await created.json(), {});
      store.fault = 'reject';
      const res = await fetch(running.url, { headers: { cookie: 'sid=' + 'a'.repeat(43) } });
      assert.equal(res.status, 503);
      assert.deepEqual(await res.json(), { error: 'ERR_STORE' });
      assert.deepEqual(res.headers.getSetCookie(), []);
    } finally {
      store.fault = 'none';
      await running.close();
    }
  });

  it('commits before the head goes out when the app answers on ctx.res itself (ctx.respond = false)', async () => {
    // A store whose create is asynchronous: the commit cannot finish inside the app's res.end.
    const sessions = createSessions({ store: slowCreateStore(10) });
    const app = new Koa();
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      const session = await ctx.session.load();
      if (ctx.path === '/read') {
        ctx.body = { k: session.get('k') ?? null, user: session.userId };
        return;
      }
      if (ctx.path === '/login') await session.login('alice');
      else session.set('k', ctx.path);
      ctx.respond = false;
      ctx.res.statusCode = 201;
      ctx.res.setHeader('Set-Cookie', 'app=1');
      ctx.res.end('raw');
    });
    const running = await listen(app);
    try {
      const created = await fetch(running.url + '/raw');
      assert.equal(created.status, 201);
      assert.equal(await created.text(), 'raw');
      const cookies = created.headers.getSetCookie();
      assert.equal(cookies[0], 'app=1');
      assert.match(cookies[1] ?? '', /^sid=/);
      assert.equal(created.headers.get('vary'), 'Cookie');
      const cookie = cookieOf(created);
      assert.deepEqual(await (await fetch(running.url + '/read', { headers: { cookie } })).json(), { k: '/raw', user: null });
      // login() replaces the session: the new cookie must reach the client, or it is signed out.
      const loggedIn = await fetch(running.url + '/login', { headers: { cookie } });
      assert.equal(loggedIn.status, 201);
      const next = cookieOf(loggedIn);
      assert.notEqual(next, cookie);
      assert.equal((await (await fetch(running.url + '/read', { headers: { cookie: next } })).json()).user, 'alice');
      assert.equal((await (await fetch(running.url + '/read', { headers: { cookie } })).json()).user, null, 'the old id is gone');
    } finally {
      await running.close();
    }
  });

  it('never touches the store for a request that ignores the session', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const app = new Koa();
    app.use(koaSessions(createSessions({ store })));
    app.use(async (ctx) => {
      ctx.body = 'static';
    });
    const running = await listen(app);
    try {
      const res = await fetch(running.url, { headers: { cookie: 'sid=' + 'a'.repeat(43) } });
      assert.equal(await res.text(), 'static');
      assert.equal(res.headers.get('vary'), null);
      assert.equal(store.totalCalls(), 0);
    } finally {
      await running.close();
    }
  });
  it('never writes the session cookie onto a thrown error: an error thrown again carries no earlier user\'s cookie', async () => {
    class NeedsSecondFactor extends Error {
      status = 401;
      expose = true;
      headers = { 'WWW-Authenticate': 'otp' };
    }
    const NEEDS_2FA = new NeedsSecondFactor('second factor required'); // one instance, thrown from many places
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = new Koa();
    const upstream: { sameClass: boolean; status: unknown; message: string; same: boolean }[] = [];
    app.use(async (_ctx, next) => {
      try {
        await next();
      } catch (error) {
        const err = error as NeedsSecondFactor;
        upstream.push({ sameClass: err instanceof NeedsSecondFactor, status: err.status, message: err.message, same: err === NEEDS_2FA });
        throw error; // on to Koa's own error handler, which applies err.headers
      }
    });
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      if (ctx.path === '/login') await (await ctx.session.load()).login('alice');
      if (ctx.path === '/whoami') {
        ctx.body = { user: (await ctx.session.load()).userId };
        return;
      }
      throw NEEDS_2FA;
    });
    const running = await listen(app);
    try {
      const alice = await fetch(running.url + '/login', { method: 'POST' });
      assert.equal(alice.status, 401);
      assert.equal(alice.headers.get('www-authenticate'), 'otp');
      assert.match(alice.headers.get('vary') ?? '', /Cookie/);
      const cookie = cookieOf(alice);
      const other = await fetch(running.url + '/admin'); // never touches the session
      assert.equal(other.status, 401);
      assert.equal(await other.text(), 'second factor required');
      assert.equal(other.headers.get('www-authenticate'), 'otp');
      assert.deepEqual(other.headers.getSetCookie(), []);
      assert.deepEqual(NEEDS_2FA.headers, { 'WWW-Authenticate': 'otp' }, 'the thrown object is unchanged');
      assert.deepEqual(upstream, [
        { sameClass: true, status: 401, message: 'second factor required', same: true },
        { sameClass: true, status: 401, message: 'second factor required', same: true },
      ]);
      assert.deepEqual(await (await fetch(running.url + '/whoami', { headers: { cookie } })).json(), { user: 'alice' });
    } finally {
      await running.close();
    }
  });

  it("adds Cookie to a Vary header an upstream ctx.append() left as an array, also with ctx.respond = false", async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = new Koa();
    app.use(async (ctx, next) => {
      ctx.append('Vary', 'Accept-Encoding');
      ctx.append('Vary', 'Origin');
      await next();
    });
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      const session = await ctx.session.load();
      session.set('n', (session.get('n', 0) as number) + 1);
      if (ctx.path === '/raw') {
        ctx.respond = false;
        ctx.res.statusCode = 200;
        ctx.res.end('raw');
        return;
      }
      ctx.body = 'ok';
    });
    const running = await listen(app);
    try {
      for (const path of ['/', '/raw']) {
        const created = await fetch(running.url + path, { signal: AbortSignal.timeout(2000) });
        assert.equal(created.status, 200, path);
        assert.match(created.headers.get('vary') ?? '', /^Accept-Encoding, ?Origin, Cookie$/, path);
        const cookie = cookieOf(created);
        const saved = await fetch(running.url + path, { headers: { cookie }, signal: AbortSignal.timeout(2000) });
        assert.equal(saved.status, 200, path);
        assert.match(saved.headers.get('vary') ?? '', /^Accept-Encoding, ?Origin, Cookie$/, path);
      }
    } finally {
      await running.close();
    }
  });

  it('with ctx.respond = false, closes a session still unused when the chain returns after ending ctx.res', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = new Koa();
    app.use(koaSessions(sessions));
    const late: { read?: unknown; error?: unknown } = {};
    let settled!: () => void;
    const done = new Promise<void>((resolve) => (settled = resolve));
    app.use(async (ctx) => {
      if (ctx.path === '/start') {
        (await ctx.session.load()).set('n', 1);
        ctx.body = 'ok';
        return;
      }
      if (ctx.path === '/show') {
        ctx.body = (await ctx.session.load()).toJSON();
        return;
      }
      ctx.respond = false;
      ctx.res.end('accepted');
      setTimeout(() => {
        ctx.session
          .load()
          .then((session) => {
            late.read = session.get('n');
            session.set('late', true);
          })
          .catch((error: unknown) => (late.error = error))
          .finally(settled);
      }, 10);
    });
    const running = await listen(app);
    try {
      const cookie = cookieOf(await fetch(running.url + '/start'));
      assert.equal(await (await fetch(running.url + '/work', { headers: { cookie } })).text(), 'accepted');
      await done;
      assert.equal(late.read, 1);
      assert.ok(late.error instanceof HeadersSentError, String(late.error));
      assert.deepEqual(await (await fetch(running.url + '/show', { headers: { cookie } })).json(), { n: 1 });
    } finally {
      await running.close();
    }
  });

  it("sets ctx.session when node's withSessions around the app opened the session", async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = new Koa();
    app.silent = true;
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      const session = await ctx.session.load();
      session.set('n', (session.get('n', 0) as number) + 1);
      ctx.body = { n: session.get('n'), context: currentSession() === ctx.session };
    });
    const server = createServer(withSessions(sessions, app.callback()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const first = await fetch(url);
      assert.equal(first.status, 200);
      assert.deepEqual(await first.json(), { n: 1, context: true });
      const again = await fetch(url, { headers: { cookie: cookieOf(first) } });
      assert.deepEqual(await again.json(), { n: 2, context: true });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("answers Koa's 500 without the session cookie when a stream body fails while the commit waits", async () => {
    // The commit waits for the store (a new session's create); Koa pipes ctx.body, and only then
    // listens for its 'error', after the middleware chain. A missing file fails meanwhile: that
    // was an unhandled 'error' event, which ends the process. (With a synchronous store the
    // commit is over first, and Koa answers the failure as it does without coatcheck: it closes
    // the connection.)
    const { store: gated, gate } = gatedCreateStore();
    const store = instrument(gated);
    const sessions = createSessions({ store });
    const app = new Koa();
    const emitted: unknown[] = [];
    app.on('error', (error: unknown) => void emitted.push(error));
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      (await ctx.session.load()).set('a', 1);
      ctx.type = 'text';
      if (ctx.path === '/missing') {
        const stream = missingFileStream();
        gate.wait = closed(stream); // the create answers once the file has failed
        ctx.body = stream;
      } else {
        gate.wait = Promise.resolve();
        ctx.body = Readable.from(['streamed']);
      }
    });
    const running = await listen(app);
    try {
      const uncaught = await uncaughtDuring(async () => {
        const failed = await fetch(running.url + '/missing');
        assert.equal(failed.status, 500);
        assert.equal(await failed.text(), 'Internal Server Error');
        assert.deepEqual(failed.headers.getSetCookie(), []);
        assert.equal((emitted[0] as { code?: string } | undefined)?.code, 'ENOENT', "told to the app's 'error' listeners, as Koa tells a stream's failure");
        // (The create was under way when the file failed: that record stays, unreachable, until it expires.)
        assert.equal(store.calls.create, 1);
        const sent = await fetch(running.url + '/file');
        assert.equal(sent.status, 200);
        assert.equal(await sent.text(), 'streamed');
        assert.match(sent.headers.getSetCookie()[0] ?? '', /^sid=/);
      });
      assert.deepEqual(uncaught, []);
    } finally {
      await running.close();
    }
  });

  it('answers a thrown 4xx whose commit fails as it answers a 4xx status: the short 503, no-store, no cookies', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const app = new Koa();
    let thrown: unknown;
    app.use(async (_ctx, next) => {
      try {
        await next();
      } catch (error) {
        thrown = error;
        throw error;
      }
    });
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      (await getSession(ctx)).set('x', 1);
      ctx.cookies.set('theme', 'dark');
      if (ctx.path === '/throw') ctx.throw(403, 'forbidden');
      ctx.status = 403;
      ctx.body = 'forbidden';
    });
    const running = await listen(app);
    store.fault = 'reject';
    store.faultOnly = ['create'];
    try {
      const answers: unknown[] = [];
      for (const path of ['/status', '/throw']) {
        const res = await fetch(running.url + path);
        answers.push({
          status: res.status,
          body: await res.text(),
          type: res.headers.get('content-type'),
          cacheControl: res.headers.get('cache-control'),
          vary: res.headers.get('vary'),
          cookies: res.headers.getSetCookie(),
        });
      }
      assert.deepEqual(answers[0], { status: 503, body: 'Service Unavailable: the session store is not answering', type: 'text/plain; charset=utf-8', cacheControl: 'no-store', vary: 'Cookie', cookies: [] });
      assert.deepEqual(answers[1], answers[0]);
      // The store's failure went upstream as thrown, and nothing lent to it for Koa's answer stayed.
      assert.ok(thrown instanceof StoreError);
      assert.match(thrown.message, /injected create failure/);
      assert.equal(thrown.status, 503);
      assert.equal(Object.hasOwn(thrown, 'expose'), false);
      assert.equal(Object.hasOwn(thrown, 'headers'), false);
    } finally {
      store.fault = 'none';
      await running.close();
    }
  });

  it('saves nothing when the body is a Response or ReadableStream already read or locked (Koa cannot send it)', async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const app = new Koa();
    app.silent = true;
    app.use(koaSessions(sessions));
    app.use(async (ctx) => {
      await (await getSession(ctx)).login('alice');
      if (ctx.path === '/read') {
        const answer = new Response('hello');
        await answer.text();
        ctx.body = answer;
      } else {
        const stream = new ReadableStream({ start: (controller) => controller.close() });
        stream.getReader();
        ctx.body = stream;
      }
    });
    const running = await listen(app);
    try {
      for (const path of ['/read', '/locked']) {
        const res = await fetch(running.url + path).catch(() => null);
        if (res) await res.text().catch(() => '');
        assert.deepEqual(res?.headers.getSetCookie() ?? [], [], path);
      }
      assert.equal(store.totalCalls(), 0, 'no login saved for an answer that cannot be sent');
    } finally {
      await running.close();
    }
  });
});
