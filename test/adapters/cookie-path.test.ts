/**
 * With `cookie.path` set, every adapter tells the engine the request's path, and a request outside
 * it gets no session even when the client sends the cookie (security requirement 11; the check
 * fastify/session added in #169).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { serve } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import * as expressAdapter from '../../src/adapters/express.js';
import * as fastifyAdapter from '../../src/adapters/fastify.js';
import * as fetchAdapter from '../../src/adapters/fetch.js';
import * as honoAdapter from '../../src/adapters/hono.js';
import * as koaAdapter from '../../src/adapters/koa.js';
import * as nodeAdapter from '../../src/adapters/node.js';
import { createSessions, type Session, type Sessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { RunningApp } from './scenarios.js';

/** Every route: `?set` stores a value; the answer says whether the session is new and what it holds. */
async function answer(session: Session, url: string): Promise<string> {
  if (url.includes('?set')) session.set('a', 1);
  return JSON.stringify({ isNew: session.isNew, a: session.get('a', null) });
}

function listenNode(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<RunningApp> {
  const server = createServer(handler);
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((done) => server.close(() => done())) }),
    ),
  );
}

const apps: Record<string, (sessions: Sessions) => Promise<RunningApp>> = {
  'node:http': (sessions) =>
    listenNode(
      nodeAdapter.withSessions(sessions, async (req, res) => {
        const body = await answer(await nodeAdapter.getSession(req), req.url ?? '/');
        res.end(body);
      }),
    ),
  express: (sessions) => {
    const app = express();
    app.use(expressAdapter.expressSessions(sessions));
    // A router mounted on /app sees `/x` in req.url: the adapter reads originalUrl.
    const router = express.Router();
    router.get('/*splat', (req, res, next) => {
      req.session.load().then(async (session) => res.send(await answer(session, req.originalUrl)), next);
    });
    app.use('/app', router);
    app.get('/*splat', (req, res, next) => {
      req.session.load().then(async (session) => res.send(await answer(session, req.originalUrl)), next);
    });
    return listenNode(app);
  },
  fastify: async (sessions) => {
    const app = Fastify();
    await app.register(fastifyAdapter.fastifySessions, { sessions });
    app.get('/*', async (request) => answer(await fastifyAdapter.getSession(request), request.url));
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { url, close: () => app.close() };
  },
  koa: (sessions) => {
    const app = new Koa();
    app.use(koaAdapter.koaSessions(sessions));
    app.use(async (ctx) => {
      ctx.body = await answer(await koaAdapter.getSession(ctx), ctx.url);
    });
    return listenNode(app.callback());
  },
  hono: (sessions) => {
    const app = new Hono();
    app.use(honoAdapter.honoSessions(sessions));
    app.get('*', async (c) => c.text(await answer(await honoAdapter.getSession(c), c.req.url)));
    return new Promise((resolve) => {
      const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) =>
        resolve({ url: `http://127.0.0.1:${info.port}`, close: () => new Promise((done) => server.close(() => done())) }),
      );
    });
  },
  fetch: async (sessions) => {
    const handler = fetchAdapter.withSessions(sessions, async (request) => new Response(await answer(await fetchAdapter.getSession(request), request.url)));
    return listenNode(async (req, res) => {
      const response = await handler(new Request(`http://${req.headers.host}${req.url}`, { headers: req.headers as Record<string, string> }));
      res.statusCode = response.status;
      res.setHeader('set-cookie', response.headers.getSetCookie());
      res.end(await response.text());
    });
  },
};

describe('cookie Path: no session outside it, in every adapter', () => {
  for (const [name, start] of Object.entries(apps)) {
    it(name, async () => {
      const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }), cookie: { path: '/app' } });
      const app = await start(sessions);
      try {
        const created = await fetch(`${app.url}/app/x?set`);
        assert.deepEqual(JSON.parse(await created.text()), { isNew: true, a: 1 });
        const cookie = (created.headers.getSetCookie().find((c) => c.startsWith('sid=')) ?? '').split(';')[0] ?? '';
        assert.match(cookie, /^sid=/);
        const read = (path: string) => fetch(`${app.url}${path}`, { headers: { cookie } }).then(async (r) => JSON.parse(await r.text()) as unknown);
        assert.deepEqual(await read('/app/y'), { isNew: false, a: 1 });
        assert.deepEqual(await read('/other'), { isNew: true, a: null });
        assert.deepEqual(await read('/application'), { isNew: true, a: null });
      } finally {
        await app.close();
        await sessions.close();
      }
    });
  }
});
