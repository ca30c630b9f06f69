/**
 * The benchmark apps: one small app per scenario, all serving the same three routes so every
 * library does the same work.
 *
 * - `POST /login?user=<id>`: starts a signed-in session holding `{ n: 0 }` (sets the cookie).
 * - `GET /write`: signed-in only (401 otherwise): `n += 1`, answers `{"n":<n>}`. One store write.
 * - `GET /read`: signed-in only (401 otherwise): answers `{"n":<n>}`. No store write.
 *
 * The bare apps answer the same bodies without any session, which is the ceiling.
 */
import { hash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Sessions } from '../../src/core/sessions.js';
import type { AnyStore } from '../../src/stores/types.js';

export interface AppEnv {
  /** A Redis the Redis scenarios may use (a private server started by the runner). */
  redisUrl?: string;
  /** A PostgreSQL the PostgreSQL scenario may use (a scratch table, dropped on close). */
  postgresUrl?: string;
  /** A directory for SQLite files. */
  dir: string;
}

export interface RunningApp {
  server: Server;
  close(): Promise<void>;
}

interface Described {
  /** Group shown in the table. */
  group: string;
  /** What runs. */
  label: string;
  needsRedis?: boolean;
  needsPostgres?: boolean;
  /** Serves the routes without a session: no sign-in, no counters to check. */
  sessionless?: boolean;
}

export const SCENARIOS: Record<string, Described> = {
  'node-bare': { group: 'node:http', label: 'bare node:http (no sessions)', sessionless: true },
  // Calibration, not in the default run: bare node:http spinning BENCH_BURN_US µs of CPU per request.
  'node-burn': { group: 'node:http', label: 'bare node:http + fixed CPU burn', sessionless: true },
  // The floor: the least a server-side session can do, hand-written, synchronous, no library.
  'node-floor': { group: 'node:http', label: 'hand-written minimal session (Map, hashed id; the floor)' },
  'node-memory': { group: 'node:http', label: 'coatcheck + memory store' },
  'node-memory-nocontext': { group: 'node:http', label: 'coatcheck + memory store, context: false (no AsyncLocalStorage)' },
  'node-sqlite': { group: 'node:http', label: 'coatcheck + SQLite store (file, WAL)' },
  'node-redis': { group: 'node:http', label: 'coatcheck + Redis store', needsRedis: true },
  'node-postgres': { group: 'node:http', label: 'coatcheck + PostgreSQL store (pg Pool)', needsPostgres: true },
  'node-cookie': { group: 'node:http', label: 'coatcheck + cookie store' },
  'node-iron': { group: 'node:http', label: 'iron-session 8' },
  'express-bare': { group: 'Express 5', label: 'bare Express (no sessions)', sessionless: true },
  // What mounting coatcheck costs (or saves) on requests that never touch the session.
  'express-coatcheck-unused': { group: 'Express 5', label: 'coatcheck mounted, session never used', sessionless: true },
  'express-coatcheck-memory-eager': { group: 'Express 5', label: 'coatcheck (express adapter, eager: true) + memory store' },
  'express-session-memory': { group: 'Express 5', label: 'express-session + MemoryStore' },
  'express-coatcheck-memory': { group: 'Express 5', label: 'coatcheck (express adapter) + memory store' },
  'express-session-redis': { group: 'Express 5', label: 'express-session + connect-redis 9 (node-redis 5)', needsRedis: true },
  'express-coatcheck-redis': { group: 'Express 5', label: 'coatcheck (express adapter) + Redis store', needsRedis: true },
  'fastify-bare': { group: 'Fastify 5', label: 'bare Fastify (no sessions)', sessionless: true },
  'fastify-session-memory': { group: 'Fastify 5', label: '@fastify/session + MemoryStore' },
  'fastify-coatcheck-memory': { group: 'Fastify 5', label: 'coatcheck (fastify adapter) + memory store' },
};

const SECRET = randomBytes(32).toString('base64url');
const userOf = (url: string): string => new URL(url, 'http://x').searchParams.get('user') ?? 'someone';
const body = (n: unknown): string => `{"n":${typeof n === 'number' ? n : 0}}`;

function send(res: ServerResponse, status: number, text: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.end(text);
}

function listen(server: Server, extraClose: () => Promise<void> = async () => {}): Promise<RunningApp> {
  return new Promise((resolve) => {
    server.keepAliveTimeout = 30_000;
    server.listen(0, '127.0.0.1', () =>
      resolve({
        server,
        close: async () => {
          server.closeAllConnections();
          await new Promise<void>((done) => server.close(() => done()));
          await extraClose();
        },
      }),
    );
  });
}

async function storeFor(kind: StoreKind, env: AppEnv): Promise<AnyStore> {
  switch (kind) {
    case 'memory':
      return (await import('../../src/stores/memory.js')).memoryStore();
    case 'sqlite':
      return (await import('../../src/stores/sqlite.js')).sqliteStore({ path: join(env.dir, `bench-${process.pid}.db`) });
    case 'redis':
      if (!env.redisUrl) throw new Error('this scenario needs Redis');
      return (await import('../../src/stores/redis.js')).redisStore({ url: env.redisUrl, prefix: `bench:${randomBytes(4).toString('hex')}:` });
    case 'postgres': {
      if (!env.postgresUrl) throw new Error('this scenario needs PostgreSQL');
      // A scratch table per server; close() drops it again (the store's close ends its pool first).
      const { postgresStore } = await import('../../src/stores/postgres.js');
      const table = `bench_http_${randomBytes(4).toString('hex')}`;
      const store = postgresStore({ connectionString: env.postgresUrl, table });
      await store.migrate();
      const close = store.close.bind(store);
      store.close = async () => {
        await close();
        const pg = (await import('pg')).default;
        const client = new pg.Client({ connectionString: env.postgresUrl });
        await client.connect();
        try {
          await client.query(`DROP TABLE IF EXISTS "${table}"`);
        } finally {
          await client.end();
        }
      };
      return store;
    }
    case 'cookie':
      return (await import('../../src/stores/cookie.js')).cookieStore({ secrets: [SECRET] });
  }
}

type StoreKind = 'memory' | 'sqlite' | 'redis' | 'postgres' | 'cookie';

async function coatcheck(kind: StoreKind, env: AppEnv, context = true): Promise<Sessions> {
  const { createSessions } = await import('../../src/index.js');
  return createSessions({ store: await storeFor(kind, env), context });
}

/** The session calls every coatcheck app makes, whatever the framework. */
interface CoatcheckSession {
  userId: string | null;
  get(key: string, fallback: number): unknown;
  set(key: string, value: number): unknown;
  login(user: string): Promise<void>;
}

async function coatcheckRoute(url: string, session: CoatcheckSession): Promise<[number, string]> {
  if (url.startsWith('/login')) {
    await session.login(userOf(url));
    session.set('n', 0);
    return [200, body(0)];
  }
  if (session.userId === null) return [401, '{"error":"not signed in"}'];
  if (url === '/write') {
    const n = (session.get('n', 0) as number) + 1;
    session.set('n', n);
    return [200, body(n)];
  }
  return [200, body(session.get('n', 0))];
}

/**
 * What a session layer cannot avoid, written by hand with nothing else: find the cookie, hash the
 * token (ids are hashed at rest), one Map read and JSON parse, on a write one JSON stringify and
 * Map write, and the two headers a session response needs. Synchronous, no promises, no expiry,
 * no signing, no error handling: a lower bound for "× bare", not a usable session.
 */
function floorHandler(): (req: IncomingMessage, res: ServerResponse) => void {
  const records = new Map<string, string>();
  const name = 'sid=';
  return (req, res) => {
    const url = req.url ?? '/';
    const header = req.headers.cookie ?? '';
    const at = header.indexOf(name);
    const token = at === -1 ? '' : header.slice(at + name.length, (header.indexOf(';', at) + 1 || header.length + 1) - 1);
    const id = token === '' ? '' : hash('sha256', token, 'base64url');
    res.setHeader('Cache-Control', 'private, no-cache');
    res.setHeader('Vary', 'Cookie');
    if (url.startsWith('/login')) {
      const fresh = randomBytes(32).toString('base64url');
      records.set(hash('sha256', fresh, 'base64url'), JSON.stringify({ user: userOf(url), n: 0 }));
      res.setHeader('Set-Cookie', `sid=${fresh}; Path=/; HttpOnly; SameSite=Lax`);
      return send(res, 200, body(0));
    }
    const stored = id === '' ? undefined : records.get(id);
    const data = stored === undefined ? null : (JSON.parse(stored) as { user: string; n: number });
    if (data === null) return send(res, 401, '{"error":"not signed in"}');
    if (url === '/write') {
      data.n += 1;
      records.set(id, JSON.stringify(data));
    }
    send(res, 200, body(data.n));
  };
}

export async function startApp(name: string, env: AppEnv): Promise<RunningApp> {
  switch (name) {
    case 'node-bare':
      return listen(createServer((req, res) => send(res, 200, body(req.url === '/write' ? 1 : 0))));

    case 'node-burn': {
      const burn = Number(process.env.BENCH_BURN_US ?? 50) * 1_000;
      return listen(
        createServer((req, res) => {
          const until = process.hrtime.bigint() + BigInt(burn);
          while (process.hrtime.bigint() < until);
          send(res, 200, body(req.url === '/write' ? 1 : 0));
        }),
      );
    }

    case 'node-floor':
      return listen(createServer(floorHandler()));


    case 'node-memory':
    case 'node-memory-nocontext':
    case 'node-sqlite':
    case 'node-redis':
    case 'node-postgres':
    case 'node-cookie': {
      const sessions = await coatcheck(name.split('-')[1] as StoreKind, env, !name.endsWith('-nocontext'));
      const { withSessions, getSession } = await import('../../src/adapters/node.js');
      const handler = withSessions(sessions, async (req: IncomingMessage, res: ServerResponse) => {
        const [status, text] = await coatcheckRoute(req.url ?? '/', await getSession(req));
        send(res, status, text);
      });
      return listen(createServer(handler), () => sessions.close());
    }

    case 'node-iron': {
      const { getIronSession } = await import('iron-session');
      const options = { password: SECRET, cookieName: 'iron', cookieOptions: { secure: false } };
      return listen(
        createServer(async (req, res) => {
          const session = await getIronSession<{ user?: string; n?: number }>(req, res, options);
          const url = req.url ?? '/';
          if (url.startsWith('/login')) {
            session.user = userOf(url);
            session.n = 0;
            await session.save();
            return send(res, 200, body(0));
          }
          if (!session.user) return send(res, 401, '{"error":"not signed in"}');
          if (url === '/write') {
            session.n = (session.n ?? 0) + 1;
            await session.save();
          }
          send(res, 200, body(session.n));
        }),
      );
    }

    case 'express-bare':
    case 'express-coatcheck-unused':
    case 'express-coatcheck-memory-eager':
    case 'express-session-memory':
    case 'express-session-redis':
    case 'express-coatcheck-memory':
    case 'express-coatcheck-redis':
      return startExpress(name, env);

    case 'fastify-bare':
    case 'fastify-session-memory':
    case 'fastify-coatcheck-memory':
      return startFastify(name);
  }
  throw new Error(`unknown scenario ${name}`);
}

/** express-session's per-request session object, as the routes use it. */
interface ExpressSessionObject {
  user?: string;
  n?: number;
  regenerate(callback: (error?: unknown) => void): void;
}

async function startExpress(name: string, env: AppEnv): Promise<RunningApp> {
  const express = (await import('express')).default;
  const app = express();
  let cleanup = async () => {};
  type Req = { url: string; session: unknown };
  type Res = { status(code: number): Res; json(value: unknown): void; type(t: string): Res; send(text: string): void };
  const reply = (res: Res, status: number, text: string) => res.status(status).type('json').send(text);

  if (name === 'express-bare' || name === 'express-coatcheck-unused') {
    if (name === 'express-coatcheck-unused') {
      const { expressSessions } = await import('../../src/adapters/express.js');
      const sessions = await coatcheck('memory', env);
      app.use(expressSessions(sessions));
      cleanup = () => sessions.close();
    }
    app.get('/write', (_req, res) => reply(res as unknown as Res, 200, body(1)));
    app.get('/read', (_req, res) => reply(res as unknown as Res, 200, body(0)));
    app.post('/login', (_req, res) => reply(res as unknown as Res, 200, body(0)));
  } else if (name.startsWith('express-session')) {
    const session = (await import('express-session')).default;
    let store: import('express-session').Store | undefined;
    if (name === 'express-session-redis') {
      if (!env.redisUrl) throw new Error('this scenario needs Redis');
      const { createClient } = await import('redis');
      const { RedisStore } = await import('connect-redis');
      const client = createClient({ url: env.redisUrl });
      client.on('error', () => {});
      await client.connect();
      store = new RedisStore({ client, prefix: `bench-es:${randomBytes(4).toString('hex')}:` });
      cleanup = async () => {
        await client.quit().catch(() => {});
      };
    }
    app.use(session({ secret: SECRET, resave: false, saveUninitialized: false, ...(store && { store }) }));
    const sessionOf = (req: unknown) => (req as Req).session as ExpressSessionObject;
    app.post('/login', (req, res) => {
      const s = sessionOf(req);
      s.regenerate((error) => {
        if (error) return reply(res as unknown as Res, 500, '{}');
        const fresh = sessionOf(req);
        fresh.user = userOf((req as unknown as Req).url);
        fresh.n = 0;
        reply(res as unknown as Res, 200, body(0));
      });
    });
    app.get('/write', (req, res) => {
      const s = sessionOf(req);
      if (!s.user) return reply(res as unknown as Res, 401, '{"error":"not signed in"}');
      s.n = (s.n ?? 0) + 1;
      reply(res as unknown as Res, 200, body(s.n));
    });
    app.get('/read', (req, res) => {
      const s = sessionOf(req);
      if (!s.user) return reply(res as unknown as Res, 401, '{"error":"not signed in"}');
      reply(res as unknown as Res, 200, body(s.n));
    });
  } else {
    const { expressSessions } = await import('../../src/adapters/express.js');
    const sessions = await coatcheck(name === 'express-coatcheck-redis' ? 'redis' : 'memory', env);
    // eager: true loads the session before the route runs, as express-session does, so the
    // routes read it synchronously; otherwise each route awaits `req.session.load()`.
    const eager = name.endsWith('-eager');
    app.use(expressSessions(sessions, { eager }));
    const route = (req: unknown, res: unknown, next: (error: unknown) => void) => {
      const handle = (req as Req).session as { load(): Promise<CoatcheckSession> };
      handle
        .load()
        .then((s) => coatcheckRoute((req as Req).url, s))
        .then(([status, text]) => reply(res as Res, status, text), next);
    };
    const loadedRoute = (req: unknown, res: unknown) => {
      const s = (req as Req).session as CoatcheckSession;
      if (s.userId === null) return reply(res as Res, 401, '{"error":"not signed in"}');
      if ((req as Req).url === '/write') {
        const n = (s.get('n', 0) as number) + 1;
        s.set('n', n);
        return reply(res as Res, 200, body(n));
      }
      reply(res as Res, 200, body(s.get('n', 0)));
    };
    app.post('/login', route);
    app.get('/write', eager ? loadedRoute : route);
    app.get('/read', eager ? loadedRoute : route);
    cleanup = () => sessions.close();
  }
  return listen(createServer(app), cleanup);
}

async function startFastify(name: string): Promise<RunningApp> {
  const Fastify = (await import('fastify')).default;
  const app = Fastify({ logger: false });
  let cleanup = async () => {};
  type Req = { url: string; session: unknown };

  if (name === 'fastify-bare') {
    const answer = (text: string) => async (_req: unknown, reply: { type(t: string): { send(t: string): unknown } }) => reply.type('application/json').send(text);
    app.get('/write', answer(body(1)));
    app.get('/read', answer(body(0)));
    app.post('/login', answer(body(0)));
  } else if (name === 'fastify-session-memory') {
    const cookie = (await import('@fastify/cookie')).default;
    const session = (await import('@fastify/session')).default;
    await app.register(cookie);
    await app.register(session, { secret: SECRET, saveUninitialized: false, cookie: { secure: false } });
    interface FastifySessionObject {
      get(key: string): unknown;
      set(key: string, value: unknown): void;
      regenerate(): Promise<void>;
    }
    const sessionOf = (req: unknown) => (req as Req).session as FastifySessionObject;
    app.post('/login', async (req, reply) => {
      await sessionOf(req).regenerate();
      const s = sessionOf(req);
      s.set('user', userOf(req.url));
      s.set('n', 0);
      return reply.type('application/json').send(body(0));
    });
    app.get('/write', async (req, reply) => {
      const s = sessionOf(req);
      if (!s.get('user')) return reply.code(401).type('application/json').send('{"error":"not signed in"}');
      const n = ((s.get('n') as number | undefined) ?? 0) + 1;
      s.set('n', n);
      return reply.type('application/json').send(body(n));
    });
    app.get('/read', async (req, reply) => {
      const s = sessionOf(req);
      if (!s.get('user')) return reply.code(401).type('application/json').send('{"error":"not signed in"}');
      return reply.type('application/json').send(body(s.get('n')));
    });
  } else {
    const { fastifySessions } = await import('../../src/adapters/fastify.js');
    const sessions = await coatcheck('memory', { dir: '' });
    await app.register(fastifySessions, { sessions });
    const route = async (req: unknown, reply: { code(c: number): { type(t: string): { send(t: string): unknown } } }) => {
      const s = await ((req as Req).session as { load(): Promise<CoatcheckSession> }).load();
      const [status, text] = await coatcheckRoute((req as Req).url, s);
      return reply.code(status).type('application/json').send(text);
    };
    app.post('/login', route);
    app.get('/write', route);
    app.get('/read', route);
    cleanup = () => sessions.close();
  }
  await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    server: app.server,
    close: async () => {
      await app.close();
      await cleanup();
    },
  };
}
