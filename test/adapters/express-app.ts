/**
 * Shared by the Express 5 and Express 4 tests: maps an Express app onto the scenario route and
 * runs the Express-specific checks against whichever `express` it is given.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { isDeepStrictEqual } from 'node:util';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { Express, NextFunction, Request, Response } from 'express';
import { expressSessions, getSession } from '../../src/adapters/express.js';
import { currentSession } from '../../src/core/context.js';
import { hashToken } from '../../src/core/token.js';
import { createSessions, type Sessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { JsonValue } from '../../src/types.js';
import { instrument } from '../helpers/instrumented-store.js';
import { betweenMounts, scenarioRoute } from './scenario-app.js';
import { runAdapterScenarios, type RunningApp } from './scenarios.js';
import { slowCreateStore } from '../helpers/slow-create.js';
import { rawRequest } from '../helpers/raw-http.js';
import { ConfigError, HeadersSentError, NotLoadedError } from '../../src/errors.js';
import { withSessions } from '../../src/adapters/node.js';
import type { Session } from '../../src/core/session.js';

/** The Express module this suite runs against in a child process (`express` or `express4`). */
const moduleNames: Record<string, string> = { 'express 5': 'express', 'express 4': 'express4' };

/** What both majors export: `express()` plus `express.json()`. */
export type ExpressFactory = (() => Express) & { json: () => (req: Request, res: Response, next: NextFunction) => void };

export async function listen(app: Express): Promise<RunningApp> {
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Express 4 does not forward a rejected promise to `next`; this wrapper does it for both. */
const route = (fn: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) => {
  fn(req, res).catch(next);
};

function scenarioApp(express: ExpressFactory, sessions: Sessions<Record<string, JsonValue>>, ...more: Sessions<Record<string, JsonValue>>[]): Express {
  const app = express();
  app.use(expressSessions(sessions));
  for (const engine of more) {
    app.use((req: Request, _res: Response, next: NextFunction) => {
      betweenMounts(() => getSession(req)).then(() => next(), next);
    });
    app.use(expressSessions(engine));
  }
  app.use(
    route(async (req, res) => {
      const reply = await scenarioRoute(req.method, new URL(req.originalUrl, 'http://localhost'), () => getSession(req));
      if (reply.appCookie) res.cookie(reply.appCookie.split('=')[0]!, 'dark');
      if (reply.cacheControl) res.set('Cache-Control', reply.cacheControl);
      res.status(reply.status);
      if (typeof reply.body === 'string') res.type('text/plain').send(reply.body);
      else res.json(reply.body);
    }),
  );
  return app;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Uncaught exceptions while a test runs; `stop()` removes the listener. */
/** Sends a request and returns the session cookie its answer set (name=value). */
async function sessionCookieFrom(url: string, init?: RequestInit): Promise<string> {
  const res = await fetch(url, init);
  await res.text();
  return (res.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
}

function captureUncaught(): { errors: unknown[]; stop: () => void } {
  const errors: unknown[] = [];
  const listener = (error: unknown) => errors.push(error);
  process.on('uncaughtException', listener);
  return { errors, stop: () => process.off('uncaughtException', listener) };
}

/** `"<status> <body>"`, or `"failed: <message>"` when the connection was closed instead. */
function fetchOutcome(url: string): Promise<string> {
  return fetch(url).then(
    async (res) => `${res.status} ${await res.text()}`,
    (error: Error) => `failed: ${error.message}`,
  );
}

export function expressSuite(name: string, express: ExpressFactory): void {
  runAdapterScenarios(
    name,
    async (sessions) => listen(scenarioApp(express, sessions)),
    async ([first, ...more]) => listen(scenarioApp(express, first!, ...more)),
  );

  describe(`${name} adapter specifics`, () => {
    it('uses a Secure __Host- cookie behind a proxy trusted by Express', async () => {
      const store = memoryStore({ sweepInterval: 0 });
      const sessions = createSessions({ store });
      const app = express();
      app.set('trust proxy', 'loopback');
      app.use(expressSessions(sessions));
      app.post(
        '/',
        route(async (req, res) => {
          (await req.session.load()).set('a', 1);
          res.json({ secure: req.secure, ip: req.ip });
        }),
      );
      const running = await listen(app);
      try {
        const proxied = await fetch(running.url, { method: 'POST', headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' } });
        assert.match(proxied.headers.getSetCookie()[0] ?? '', /^__Host-sid=[\w-]{43}; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
        const token = /^__Host-sid=([\w-]+)/.exec(proxied.headers.getSetCookie()[0]!)![1]!;
        // The record carries the client IP Express derived, not the proxy's.
        assert.equal((await store.get(hashToken(token)))?.ip, '203.0.113.7');
        const plain = await fetch(running.url, { method: 'POST' });
        assert.match(plain.headers.getSetCookie()[0] ?? '', /^sid=/);
      } finally {
        await running.close();
      }
    });

    it("reads Express's req.ip only when a session needs it: to create one, not to read or save it", async () => {
      const store = memoryStore({ sweepInterval: 0 });
      const sessions = createSessions({ store });
      const app = express();
      // Count reads of Express's own req.ip getter (it evaluates proxy trust on every read).
      let ipReads = 0;
      let proto: object | null = app.request;
      let inherited: PropertyDescriptor | undefined;
      while (proto && !(inherited = Object.getOwnPropertyDescriptor(proto, 'ip'))) proto = Object.getPrototypeOf(proto);
      assert.ok(inherited?.get, "Express's request has an ip getter");
      Object.defineProperty(app.request, 'ip', {
        configurable: true,
        get(this: Request) {
          ipReads++;
          return inherited!.get!.call(this);
        },
      });
      app.use(expressSessions(sessions));
      app.post(
        '/',
        route(async (req, res) => {
          const session = await req.session.load();
          session.set('n', (session.get('n', 0) as number) + 1);
          res.json({ n: session.get('n') });
        }),
      );
      app.get(
        '/',
        route(async (req, res) => {
          res.json({ n: (await req.session.load()).get('n', 0) });
        }),
      );
      const running = await listen(app);
      try {
        const created = await fetch(running.url, { method: 'POST' });
        const cookie = created.headers.getSetCookie()[0]!.split(';')[0]!;
        assert.equal(ipReads, 1, 'creating the session records the client IP');
        const token = cookie.split('=')[1]!;
        assert.ok((await store.get(hashToken(token)))?.ip);
        assert.deepEqual(await (await fetch(running.url, { method: 'POST', headers: { cookie } })).json(), { n: 2 });
        assert.deepEqual(await (await fetch(running.url, { headers: { cookie } })).json(), { n: 2 });
        assert.equal(ipReads, 1, 'a save or a read of an existing session read req.ip');
      } finally {
        await running.close();
      }
    });

    it('ignores X-Forwarded-Proto when neither Express nor coatcheck trusts the proxy', async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const app = express();
      app.use(expressSessions(sessions));
      app.post(
        '/',
        route(async (req, res) => {
          (await req.session.load()).set('a', 1);
          res.end('ok');
        }),
      );
      const running = await listen(app);
      try {
        const spoofed = await fetch(running.url, { method: 'POST', headers: { 'x-forwarded-proto': 'https' } });
        assert.match(spoofed.headers.getSetCookie()[0] ?? '', /^sid=.*; SameSite=Lax$/);
      } finally {
        await running.close();
      }
    });

    it("honours coatcheck's trustProxy when Express's is off", async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }), trustProxy: true });
      const app = express();
      app.use(expressSessions(sessions));
      app.post(
        '/',
        route(async (req, res) => {
          (await req.session.load()).set('a', 1);
          res.end('ok');
        }),
      );
      const running = await listen(app);
      try {
        const proxied = await fetch(running.url, { method: 'POST', headers: { 'x-forwarded-proto': 'https' } });
        assert.match(proxied.headers.getSetCookie()[0] ?? '', /^__Host-sid=.*; Secure/);
      } finally {
        await running.close();
      }
    });

    it('eager: loads before next() when a cookie is present, so reads are synchronous', async () => {
      const store = instrument(memoryStore({ sweepInterval: 0 }));
      const sessions = createSessions({ store });
      const app = express();
      app.use(expressSessions(sessions, { eager: true }));
      app.get('/read', (req, res) => {
        res.json({ loaded: req.session.loaded, visits: req.session.get('visits', 0) });
      });
      app.post('/visit', (req, res) => {
        req.session.set('visits', (req.session.get('visits', 0) as number) + 1);
        res.json({ visits: req.session.get('visits') });
      });
      app.get('/static', (_req, res) => {
        res.end('asset');
      });
      const running = await listen(app);
      try {
        // No cookie: nothing is loaded from the store, yet synchronous use works.
        const first = await fetch(running.url + '/visit', { method: 'POST' });
        assert.deepEqual(await first.json(), { visits: 1 });
        const cookie = first.headers.getSetCookie()[0]!.split(';')[0]!;
        store.resetCounts();
        const read = await fetch(running.url + '/read', { headers: { cookie } });
        assert.deepEqual(await read.json(), { loaded: true, visits: 1 });
        assert.equal(store.calls.get, 1);
        const again = await fetch(running.url + '/visit', { method: 'POST', headers: { cookie } });
        assert.deepEqual(await again.json(), { visits: 2 });
        // Eager means a store read for every request that carries the cookie, and none without.
        store.resetCounts();
        await (await fetch(running.url + '/static')).text();
        assert.equal(store.totalCalls(), 0);
      } finally {
        await running.close();
      }
    });

    it('eager: with a synchronous store the route runs in the same tick as the middleware', async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const app = express();
      const order: string[] = [];
      app.use((_req, _res, next) => {
        next();
        order.push('middleware returned');
      });
      app.use(expressSessions(sessions, { eager: true }));
      app.post('/', (req, res) => {
        order.push('route');
        req.session.set('n', 1);
        res.json({ ok: true });
      });
      app.get('/', (req, res) => {
        order.push(`route n=${String(req.session.get('n', 0))}`);
        res.json({ ok: true });
      });
      const running = await listen(app);
      try {
        // The first request has no cookie: nothing to load.
        const created = await fetch(running.url, { method: 'POST' });
        const cookie = created.headers.getSetCookie()[0]!.split(';')[0]!;
        order.length = 0;
        assert.equal((await fetch(running.url, { headers: { cookie } })).status, 200);
        assert.deepEqual(order, ['route n=1', 'middleware returned']);
      } finally {
        await running.close();
      }
    });

    it('eager: a store failure reaches next(err) and Express answers 503 without a session cookie', async () => {
      const store = instrument(memoryStore({ sweepInterval: 0 }));
      const sessions = createSessions({ store });
      const app = express();
      app.use(expressSessions(sessions, { eager: true }));
      let handlerRan = false;
      app.all('/', (req, res) => {
        handlerRan = true;
        req.session.set('a', 1);
        res.end('ok');
      });
      const seen: unknown[] = [];
      app.use((error: { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
        seen.push(error);
        res.status(error.status ?? 500).end('custom');
      });
      const running = await listen(app);
      try {
        const created = await fetch(running.url, { method: 'POST' });
        const cookie = created.headers.getSetCookie()[0]!.split(';')[0]!;
        handlerRan = false;
        store.fault = 'reject';
        const res = await fetch(running.url, { headers: { cookie } });
        assert.equal(res.status, 503);
        assert.equal(await res.text(), 'custom');
        assert.deepEqual(res.headers.getSetCookie(), []);
        assert.equal(handlerRan, false);
        assert.equal((seen[0] as { code?: string }).code, 'ERR_STORE');
      } finally {
        store.fault = 'none';
        await running.close();
      }
    });

    it('keeps the session context through a body parser mounted after it', async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const app = express();
      app.use(expressSessions(sessions));
      app.use(express.json());
      app.post(
        '/',
        route(async (req, res) => {
          await sleep(1);
          const session = await currentSession().load();
          session.set('body', (req.body as { value: JsonValue }).value);
          res.json({ same: session === req.session, stored: session.get('body') });
        }),
      );
      const running = await listen(app);
      try {
        const res = await fetch(running.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ value: 'x'.repeat(50_000) }) });
        const body = (await res.json()) as { same: boolean; stored: string };
        assert.equal(body.same, true);
        assert.equal(body.stored.length, 50_000);
      } finally {
        await running.close();
      }
    });

    it("keeps the app's ended response when the handler then throws while an asynchronous commit is pending", async () => {
      // Creating a session takes a while, as on a networked store: the response is held meanwhile.
      const sessions = createSessions({ store: slowCreateStore(30) });
      const app = express();
      app.use(expressSessions(sessions));
      app.get(
        '/',
        route(async (req, res) => {
          (await req.session.load()).set('x', 1);
          res.status(201).set('X-App', 'yes').end('done');
          throw new Error('late failure after end'); // Express's error handler answers 500 too
        }),
      );
      app.use((_error: unknown, _req: Request, res: Response, next: NextFunction) => {
        if (res.headersSent) return next();
        res.status(500).set('X-Error', 'yes').end('error page');
      });
      const running = await listen(app);
      try {
        const res = await fetch(running.url);
        assert.equal(res.status, 201);
        assert.equal(await res.text(), 'done');
        assert.equal(res.headers.get('x-app'), 'yes');
        assert.equal(res.headers.get('x-error'), null);
        assert.match(res.headers.getSetCookie()[0] ?? '', /^sid=/);
      } finally {
        await running.close();
      }
    });

    it("closes an unfinished response whose handler throws while an asynchronous commit is pending (Express's own error handler)", async () => {
      // Creating a session takes a while, as on a networked store: the partial body is held meanwhile.
      const sessions = createSessions({ store: slowCreateStore(30) });
      const app = express();
      app.set('env', 'test'); // Express's final handler logs the error's stack otherwise
      app.use(expressSessions(sessions));
      const seen: boolean[] = [];
      app.get(
        '/',
        route(async (req, res) => {
          (await req.session.load()).set('x', 1);
          res.write('partial-');
          seen.push(res.headersSent); // true, as it would be without coatcheck
          throw new Error('failed half-way');
        }),
      );
      app.get(
        '/head',
        route(async (req, res) => {
          (await req.session.load()).set('x', 1);
          res.writeHead(202, { 'X-App': 'yes' });
          seen.push(res.headersSent);
          res.end('after head');
        }),
      );
      const uncaught = captureUncaught();
      const running = await listen(app);
      try {
        const outcome = await fetchOutcome(running.url);
        // Never the held partial body followed by Express's error page in one response.
        assert.match(outcome, /^failed: /);
        const head = await fetch(`${running.url}/head`);
        assert.equal(head.status, 202);
        assert.equal(head.headers.get('x-app'), 'yes');
        assert.equal(await head.text(), 'after head');
        assert.match(head.headers.getSetCookie()[0] ?? '', /^sid=/);
        assert.deepEqual(seen, [true, true]);
        await sleep(60);
        assert.deepEqual(uncaught.errors, []);
      } finally {
        uncaught.stop();
        await running.close();
      }
    });

    it('does not answer a failed commit on a connection Express has already closed', async () => {
      const inner = memoryStore({ sweepInterval: 0 });
      const failingCreate: typeof inner = {
        ...inner,
        create: () => new Promise((_, reject) => setTimeout(() => reject(new Error('store down')), 30)),
      };
      const sessions = createSessions({ store: failingCreate });
      const answered: string[] = [];
      const app = express();
      app.set('env', 'test');
      app.use(
        expressSessions(sessions, {
          onError: (_error, _req, res) => {
            answered.push('onError');
            res.statusCode = 503;
            res.end('down');
          },
        }),
      );
      app.get(
        '/',
        route(async (req, res) => {
          (await req.session.load()).set('x', 1);
          res.write('partial-');
          throw new Error('failed half-way');
        }),
      );
      const uncaught = captureUncaught();
      const running = await listen(app);
      try {
        const outcome = await fetchOutcome(running.url);
        assert.match(outcome, /^failed: /);
        await sleep(80);
        assert.deepEqual(answered, []);
        assert.deepEqual(uncaught.errors, []);
      } finally {
        uncaught.stop();
        await running.close();
      }
    });

    it('survives an error handler that answers a throw after res.end() later, as Express\'s final handler does', async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const app = express();
      app.use(expressSessions(sessions));
      app.get(
        '/',
        route(async (req, res) => {
          (await req.session.load()).set('x', 1); // a new session: its commit is asynchronous
          res.end('done');
          throw new Error('late failure after end');
        }),
      );
      // Like Express's final handler: it checks headersSent now, and writes once the request has
      // ended, by which time the commit has sent the held response.
      app.use((_error: unknown, _req: Request, res: Response, next: NextFunction) => {
        if (res.headersSent) return next();
        setTimeout(() => {
          res.statusCode = 500;
          res.removeHeader('Content-Length');
          res.setHeader('Content-Type', 'text/html; charset=utf-8');
          res.end('error page');
        }, 20);
      });
      const uncaught = captureUncaught();
      const running = await listen(app);
      try {
        const res = await fetch(running.url);
        assert.equal(res.status, 200);
        assert.equal(await res.text(), 'done');
        await sleep(60);
        assert.deepEqual(uncaught.errors, []);
      } finally {
        uncaught.stop();
        await running.close();
      }
    });

    it("keeps res.cookie() cookies and the app's Vary and Cache-Control", async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const app = express();
      app.use(expressSessions(sessions));
      app.post(
        '/',
        route(async (req, res) => {
          res.cookie('a', '1');
          (await req.session.load()).set('x', 1);
          res.cookie('b', '2');
          res.set('Vary', 'Accept-Encoding').set('Cache-Control', 'no-store');
          res.redirect(303, '/next');
        }),
      );
      const running = await listen(app);
      try {
        const res = await fetch(running.url, { method: 'POST', redirect: 'manual' });
        assert.equal(res.status, 303);
        const cookies = res.headers.getSetCookie();
        assert.deepEqual(cookies.slice(0, 2), ['a=1; Path=/', 'b=2; Path=/']);
        assert.match(cookies[2] ?? '', /^sid=/);
        assert.match(res.headers.get('vary') ?? '', /^Accept-Encoding, .*Cookie$/);
        assert.equal(res.headers.get('cache-control'), 'no-store');
      } finally {
        await running.close();
      }
    });

    it("shareShapes: req.res and res.req keep their values and attributes; off, the objects are left as Express made them", async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const seen: Record<string, unknown> = {};
      const describeLinks = (req: Request, res: Response) => ({
        reqRes: req.res === res,
        resReq: res.req === req,
        reqDescriptor: { ...Object.getOwnPropertyDescriptor(req, 'res'), value: null },
        resDescriptor: { ...Object.getOwnPropertyDescriptor(res, 'req'), value: null },
        reqKeys: Object.keys(req),
      });
      for (const shareShapes of [true, false]) {
        const app = express();
        app.use((req, res, next) => {
          seen[`before ${shareShapes}`] = describeLinks(req, res);
          next();
        });
        app.use(expressSessions(sessions, { shareShapes }));
        app.get('/', (req, res) => {
          seen[`after ${shareShapes}`] = describeLinks(req, res);
          res.json({ ok: true });
        });
        const running = await listen(app);
        try {
          assert.equal((await fetch(running.url)).status, 200);
        } finally {
          await running.close();
        }
      }
      const before = seen['before true'] as ReturnType<typeof describeLinks>;
      const after = seen['after true'] as ReturnType<typeof describeLinks>;
      assert.ok(after.reqRes && after.resReq);
      assert.deepEqual(after.reqDescriptor, before.reqDescriptor);
      assert.deepEqual(after.resDescriptor, before.resDescriptor);
      // Nothing lost; `res` moved behind the keys that were there before it.
      const order = (keys: string[], of: string[]) => of.map((key) => keys.indexOf(key));
      const earlier = before.reqKeys.filter((key) => key !== 'res');
      assert.ok(order(after.reqKeys, earlier).every((at) => at !== -1 && at < after.reqKeys.indexOf('res')));
      // Off: the keys Express made keep their order.
      const untouched = seen['after false'] as ReturnType<typeof describeLinks>;
      const untouchedBefore = (seen['before false'] as ReturnType<typeof describeLinks>).reqKeys;
      const positions = order(untouched.reqKeys, untouchedBefore);
      assert.deepEqual(positions, [...positions].sort((a, b) => a - b));
      assert.ok(!positions.includes(-1));
    });

    it("shareShapes gives every request's req and res one V8 hidden class (Express alone gives each its own)", () => {
      const run = (mode: 'on' | 'off') => {
        const result = spawnSync(
          process.execPath,
          ['--allow-natives-syntax', '--import', 'tsx', 'test/helpers/express-shapes-app.ts', moduleNames[name]!, mode],
          { timeout: 30_000, encoding: 'utf8' },
        );
        assert.equal(result.status, 0, result.stderr);
        return JSON.parse(result.stdout) as { pairs: number; sameReq: number; sameRes: number };
      };
      // V8 finds the shared dictionary-mode class in a small cache where another entry can evict
      // it: in about one process in thirty (measured) `req` or `res` keeps a class per request
      // there. So: full sharing in one of up to three processes.
      const shared = { pairs: 50, sameReq: 50, sameRes: 50 };
      const tries = [run('on')];
      while (tries.length < 3 && !isDeepStrictEqual(tries.at(-1), shared)) tries.push(run('on'));
      assert.deepEqual(tries.at(-1), shared, JSON.stringify(tries));
      // What the option works around: with it off, no two requests' objects share one.
      assert.deepEqual(run('off'), { pairs: 50, sameReq: 0, sameRes: 0 });
    });

    it('saves a session used inside a mounted sub-app, whose prototype swap comes after shareShapes', async () => {
      // A networked store's pace: the sub-app's response is held for an asynchronous commit.
      const sessions = createSessions({ store: slowCreateStore(10) });
      const app = express();
      app.use(expressSessions(sessions));
      const sub = express();
      sub.post(
        '/count',
        route(async (req, res) => {
          const session = await req.session.load();
          session.set('n', (session.get('n', 0) as number) + 1);
          res.json({ n: session.get('n'), sub: req.app === sub });
        }),
      );
      app.use('/sub', sub);
      const running = await listen(app);
      try {
        const first = await fetch(`${running.url}/sub/count`, { method: 'POST' });
        assert.deepEqual(await first.json(), { n: 1, sub: true });
        const cookie = first.headers.getSetCookie()[0]!.split(';')[0]!;
        const second = await fetch(`${running.url}/sub/count`, { method: 'POST', headers: { cookie } });
        assert.deepEqual(await second.json(), { n: 2, sub: true });
      } finally {
        await running.close();
      }
    });

    it('attaches one session even when mounted on the app and on a router', async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const app = express();
      const middleware = expressSessions(sessions);
      app.use(middleware);
      let first: unknown;
      app.use((req, _res, next) => {
        first = req.session;
        next();
      });
      app.use(middleware);
      app.get('/', (req, res) => {
        res.json({ same: first === req.session && currentSession() === req.session });
      });
      const running = await listen(app);
      try {
        assert.deepEqual(await (await fetch(running.url)).json(), { same: true });
      } finally {
        await running.close();
      }
    });

    it("refuses a second engine mounted under the first with a ConfigError through next(err)", async () => {
      const users = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const admins = createSessions({ store: memoryStore({ sweepInterval: 0 }), cookie: { name: 'admin_sid' } });
      const app = express();
      app.use(expressSessions(users));
      app.use('/admin', expressSessions(admins));
      app.post(
        '/admin/login',
        route(async (req, res) => {
          await (await req.session.load()).login('root');
          res.send('ok');
        }),
      );
      const seen: unknown[] = [];
      app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
        seen.push(error);
        res.status(500).send('setup error');
      });
      const running = await listen(app);
      try {
        const res = await fetch(`${running.url}/admin/login`, { method: 'POST' });
        assert.equal(res.status, 500);
        assert.deepEqual(res.headers.getSetCookie(), []);
        assert.equal(seen.length, 1);
        assert.ok(seen[0] instanceof ConfigError, String(seen[0]));
        assert.match((seen[0] as Error).message, /another createSessions\(\) instance/);
      } finally {
        await running.close();
      }
    });

    it('sends valid HTTP when res.end or res.write was read before the session was loaded (inline await)', async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const app = express();
      app.use(expressSessions(sessions));
      app.get(
        '/seed',
        route(async (req, res) => {
          (await req.session.load()).set('n', 1);
          res.send('seeded');
        }),
      );
      const bump = (session: { get(key: string, fallback: unknown): unknown; set(key: string, value: number): unknown }) => {
        const n = (session.get('n', 0) as number) + 1;
        session.set('n', n);
        return n;
      };
      app.get(
        '/end',
        route(async (req, res) => {
          res.end(`n=${bump(await req.session.load())}`);
        }),
      );
      app.get(
        '/write',
        route(async (req, res) => {
          res.write(`n=${bump(await req.session.load())}`);
          res.end();
        }),
      );
      app.get(
        '/read',
        route(async (req, res) => {
          res.send(String((await req.session.load()).get('n', 0)));
        }),
      );
      const running = await listen(app);
      try {
        const firstVisit = await rawRequest(running.url, 'GET', '/end');
        assert.equal(firstVisit.status, 200, JSON.stringify(firstVisit.text));
        assert.ok(firstVisit.complete);
        const cookie = await sessionCookieFrom(`${running.url}/seed`);
        for (const [path, body] of [
          ['/end', 'n=2'],
          ['/write', 'n=3'],
        ] as const) {
          const exchange = await rawRequest(running.url, 'GET', path, { Cookie: cookie });
          assert.equal(exchange.status, 200, JSON.stringify(exchange.text));
          assert.ok(exchange.complete, JSON.stringify(exchange.text));
          assert.equal(exchange.body, body);
        }
        assert.equal(await (await fetch(`${running.url}/read`, { headers: { cookie } })).text(), '3');
      } finally {
        await running.close();
      }
    });
    it("adds Cookie to a Vary header res.append() left as an array, for a new session and a saved one", async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const app = express();
      app.use(expressSessions(sessions));
      app.get(
        '/',
        route(async (req, res) => {
          const session = await req.session.load();
          session.set('n', (session.get('n', 0) as number) + 1);
          res.append('Vary', 'Accept-Encoding');
          res.append('Vary', 'Origin');
          res.send('ok');
        }),
      );
      const running = await listen(app);
      try {
        const created = await fetch(running.url, { signal: AbortSignal.timeout(2000) });
        assert.equal(created.status, 200);
        assert.equal(created.headers.get('vary'), 'Accept-Encoding, Origin, Cookie');
        const cookie = (created.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
        assert.match(cookie, /^sid=/);
        const saved = await fetch(running.url, { headers: { cookie }, signal: AbortSignal.timeout(2000) });
        assert.equal(saved.status, 200);
        assert.equal(saved.headers.get('vary'), 'Accept-Encoding, Origin, Cookie');
        assert.equal(await saved.text(), 'ok');
      } finally {
        await running.close();
      }
    });

    it('answers 500 when replaying the held response fails within a synchronous commit, instead of hanging', async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const app = express();
      app.use(expressSessions(sessions));
      app.get(
        '/:kind',
        route(async (req, res) => {
          const session = await req.session.load();
          session.set('n', (session.get('n', 0) as number) + 1);
          if (req.params.kind === 'bad') res.writeHead(200, { 'X-Name': 'a\u0000b' });
          res.end('body');
        }),
      );
      const running = await listen(app);
      try {
        const cookie = await sessionCookieFrom(`${running.url}/seed`);
        const res = await fetch(`${running.url}/bad`, { headers: { cookie }, signal: AbortSignal.timeout(2000) });
        assert.equal(res.status, 500);
        assert.deepEqual(res.headers.getSetCookie(), []);
      } finally {
        await running.close();
      }
    });

    it('closes a session first used after the route sent its response: a change throws HeadersSentError, reading works', async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const app = express();
      app.use(expressSessions(sessions));
      app.post(
        '/start',
        route(async (req, res) => {
          (await req.session.load()).set('n', 1);
          res.send('ok');
        }),
      );
      const late: { read?: unknown; error?: unknown } = {};
      let settled!: () => void;
      const done = new Promise<void>((resolve) => (settled = resolve));
      app.post('/audit', (req, res) => {
        res.send('accepted'); // answer first, then record in the session
        setTimeout(() => {
          req.session
            .load()
            .then((session) => {
              late.read = session.get('n');
              session.set('audited', true);
            })
            .catch((error: unknown) => (late.error = error))
            .finally(settled);
        }, 10);
      });
      app.get(
        '/show',
        route(async (req, res) => {
          res.json((await req.session.load()).toJSON());
        }),
      );
      const running = await listen(app);
      try {
        const cookie = await sessionCookieFrom(`${running.url}/start`, { method: 'POST' });
        assert.equal(await (await fetch(`${running.url}/audit`, { method: 'POST', headers: { cookie } })).text(), 'accepted');
        await done;
        assert.equal(late.read, 1);
        assert.ok(late.error instanceof HeadersSentError, String(late.error));
        assert.deepEqual(await (await fetch(`${running.url}/show`, { headers: { cookie } })).json(), { n: 1 });
      } finally {
        await running.close();
      }
    });

    it("sets req.session when node's withSessions around the app opened the session", async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
      const app = express();
      app.use(expressSessions(sessions));
      let outer: unknown;
      app.get(
        '/',
        route(async (req, res) => {
          const session = await req.session.load();
          session.set('n', (session.get('n', 0) as number) + 1);
          res.json({ n: session.get('n'), same: req.session === outer });
        }),
      );
      const server = createServer(
        withSessions(sessions, (req, res) => {
          outer = (req as unknown as { [key: symbol]: unknown })[Symbol.for('coatcheck.session')];
          app(req, res);
        }),
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
        assert.equal(res.status, 200);
        assert.deepEqual(await res.json(), { n: 1, same: true });
        assert.equal(res.headers.getSetCookie().length, 1);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('eager: honoured on a second mount that reuses the session of a lazy app-wide one', async () => {
      const store = instrument(memoryStore({ sweepInterval: 0 }));
      const sessions = createSessions({ store });
      const app = express();
      app.use(expressSessions(sessions)); // app-wide, lazy
      app.post(
        '/set',
        route(async (req, res) => {
          (await req.session.load()).set('cart', [1, 2]);
          res.send('ok');
        }),
      );
      const shop = express();
      shop.use(expressSessions(sessions, { eager: true }));
      shop.get('/cart', (req, res) => {
        res.json((req.session as Session<Record<string, JsonValue>>).get('cart', []));
      });
      app.use('/shop', shop);
      const errors: unknown[] = [];
      app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
        errors.push(error);
        res.status(500).send(String(error));
      });
      const running = await listen(app);
      try {
        const cookie = await sessionCookieFrom(`${running.url}/set`, { method: 'POST' });
        store.resetCounts();
        const cart = await fetch(`${running.url}/shop/cart`, { headers: { cookie } });
        assert.equal(cart.status, 200, String(errors[0]));
        assert.deepEqual(await cart.json(), [1, 2]);
        assert.equal(store.calls.get, 1);
        // Without the cookie there is nothing to load: no store call, and synchronous use works.
        store.resetCounts();
        assert.deepEqual(await (await fetch(`${running.url}/shop/cart`)).json(), []);
        assert.equal(store.totalCalls(), 0);
        assert.ok(!errors.some((error) => error instanceof NotLoadedError));
      } finally {
        await running.close();
      }
    });
  });
}
