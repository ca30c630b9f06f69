/**
 * Each adapter's `csrfRequest` builds the origin the browser used with its framework's own proxy
 * rules (Express `trust proxy`, Koa `app.proxy`, Fastify `trustProxy`; node:http coatcheck's
 * `trustProxy`), so a same-origin form behind a TLS proxy passes and forwarded headers from a
 * peer the framework does not trust are ignored. Also: getSession without the middleware
 * mounted is a clear ConfigError on every adapter, not a TypeError.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { serve } from '@hono/node-server';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import * as expressAdapter from '../../src/adapters/express.js';
import * as fastifyAdapter from '../../src/adapters/fastify.js';
import * as honoAdapter from '../../src/adapters/hono.js';
import * as koaAdapter from '../../src/adapters/koa.js';
import * as nodeAdapter from '../../src/adapters/node.js';
import { ConfigError } from '../../src/errors.js';
import { createSessions, type Sessions, verifyCsrf } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { ExpressFactory } from './express-app.js';
import type { RunningApp } from './scenarios.js';

type Start = (sessions: Sessions, trusted: boolean) => Promise<RunningApp>;

async function listenNode(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<RunningApp> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function expressApp(express: ExpressFactory): Start {
  return (sessions, trusted) => {
    const app = express();
    if (trusted) app.set('trust proxy', 'loopback');
    app.use(expressAdapter.expressSessions(sessions));
    app.get('/form', (req, res, next) => {
      req.session.load().then((session) => res.send(session.csrfToken()), next);
    });
    app.post('/do', (req, res, next) => {
      req.session
        .load()
        .then((session) => verifyCsrf(session, expressAdapter.csrfRequest(req)))
        .then((check) => res.status(check.ok ? 200 : check.status).send(check.ok ? 'done' : check.reason), next);
    });
    return listenNode(app);
  };
}

const starts: Record<string, Start> = {
  'express 5': expressApp(createRequire(import.meta.url)('express') as ExpressFactory),
  'express 4': expressApp(createRequire(import.meta.url)('express4') as ExpressFactory),
  koa: (sessions, trusted) => {
    const app = new Koa({ proxy: trusted });
    app.use(koaAdapter.koaSessions(sessions));
    app.use(async (ctx) => {
      const session = await koaAdapter.getSession(ctx);
      if (ctx.method === 'GET') return void (ctx.body = session.csrfToken());
      const check = await verifyCsrf(session, koaAdapter.csrfRequest(ctx));
      ctx.status = check.ok ? 200 : check.status;
      ctx.body = check.ok ? 'done' : check.reason;
    });
    return listenNode(app.callback());
  },
  fastify: async (sessions, trusted) => {
    const app = Fastify({ trustProxy: trusted ? '127.0.0.1' : false });
    await app.register(fastifyAdapter.fastifySessions, { sessions });
    app.get('/form', async (request) => (await fastifyAdapter.getSession(request)).csrfToken());
    app.post('/do', async (request, reply) => {
      const check = await verifyCsrf(await fastifyAdapter.getSession(request), fastifyAdapter.csrfRequest(request));
      return reply.code(check.ok ? 200 : check.status).send(check.ok ? 'done' : check.reason);
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { url, close: () => app.close() };
  },
  // node:http has no proxy setting of its own: coatcheck's trustProxy is the one.
  'node:http': (sessions, trusted) =>
    listenNode(
      nodeAdapter.withSessions(sessions, async (req, res) => {
        const session = await nodeAdapter.getSession(req);
        if (req.method === 'GET') return void res.end(session.csrfToken());
        const check = await verifyCsrf(session, nodeAdapter.csrfRequest(req, { trustProxy: trusted }));
        res.statusCode = check.ok ? 200 : check.status;
        res.end(check.ok ? 'done' : check.reason);
      }),
    ),
};

describe('csrfRequest follows the framework\'s proxy rules', () => {
  for (const [name, start] of Object.entries(starts)) {
    for (const trusted of [true, false]) {
      it(`${name}: ${trusted ? 'behind a trusted proxy, the forwarded origin' : 'without proxy trust, the connection\'s origin'}`, async () => {
        const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }), trustProxy: name === 'node:http' && trusted });
        const app = await start(sessions, trusted);
        try {
          const proxy = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'example.com' };
          const form = await fetch(`${app.url}/form`, { headers: proxy });
          const token = await form.text();
          const cookie = (form.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
          const post = (origin: string) =>
            fetch(`${app.url}/do`, { method: 'POST', headers: { ...proxy, cookie, origin, 'x-csrf-token': token } }).then(async (r) => `${r.status} ${await r.text()}`);
          assert.match(cookie, trusted ? /^__Host-sid=/ : /^sid=/);
          assert.equal(await post(trusted ? 'https://example.com' : app.url), '200 done');
          assert.match(await post(trusted ? app.url : 'https://example.com'), /^403 /);
          assert.match(await post('https://evil.example'), /^403 /);
        } finally {
          await app.close();
          await sessions.close();
        }
      });
    }
  }
});

describe('getSession without the middleware mounted', () => {
  it('koa: a ConfigError that says to mount koaSessions first', async () => {
    const app = new Koa();
    app.silent = true;
    let failure: unknown;
    app.use(async (ctx) => {
      failure = await koaAdapter.getSession(ctx).catch((error: unknown) => error);
      ctx.body = 'ok';
    });
    const running = await listenNode(app.callback());
    try {
      await (await fetch(running.url)).text();
    } finally {
      await running.close();
    }
    assert.ok(failure instanceof ConfigError, String(failure));
    assert.match((failure as Error).message, /koaSessions/);
  });

  it('hono: a ConfigError that says to register honoSessions before the route', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = new Hono();
    let failure: unknown;
    app.get('/early', async (c) => {
      failure = await honoAdapter.getSession(c).catch((error: unknown) => error);
      return c.text('ok');
    });
    app.use(honoAdapter.honoSessions(sessions));
    const running = await new Promise<RunningApp>((resolve) => {
      const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) =>
        resolve({ url: `http://127.0.0.1:${info.port}`, close: () => new Promise((done) => server.close(() => done())) }),
      );
    });
    try {
      await (await fetch(`${running.url}/early`)).text();
    } finally {
      await running.close();
      await sessions.close();
    }
    assert.ok(failure instanceof ConfigError, String(failure));
    assert.match((failure as Error).message, /honoSessions/);
  });
});
