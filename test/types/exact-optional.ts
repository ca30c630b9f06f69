/**
 * Compiled by `npm run typecheck` with `exactOptionalPropertyTypes` on (test/types/tsconfig.json):
 * the documented examples that pass values from the environment must type-check there too.
 * Never run; type-checking it is the test.
 */
import { createSessions } from '../../src/index.js';
import { postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { sqliteStore } from '../../src/stores/sqlite.js';
import { tieredStore } from '../../src/stores/tiered.js';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import express from 'express';
import session from 'express-session';
import Fastify from 'fastify';
import { type Context, Hono } from 'hono';
import Koa from 'koa';
import { verifyCsrf } from '../../src/index.js';
import { csrfRequest as expressCsrfRequest, expressSessions } from '../../src/adapters/express.js';
import { csrfRequest as fastifyCsrfRequest } from '../../src/adapters/fastify.js';
import { withSessions as withFetchSessions } from '../../src/adapters/fetch.js';
import { honoSessions } from '../../src/adapters/hono.js';
import { csrfRequest as koaCsrfRequest } from '../../src/adapters/koa.js';
import { csrfRequest as nodeCsrfRequest, withSessions as withNodeSessions } from '../../src/adapters/node.js';
import { connectStore } from '../../src/stores/connect.js';
import { memoryStore } from '../../src/stores/memory.js';
import { cookieStore } from '../../src/stores/cookie.js';
import { storeFromUrl } from '../../src/stores/from-url.js';

export function fromEnvironment(): void {
  const durable = postgresStore({ connectionString: process.env.DATABASE_URL, table: process.env.SESSION_TABLE });
  const cache = redisStore({ url: process.env.REDIS_URL, prefix: process.env.REDIS_PREFIX });
  createSessions({ store: tieredStore({ cache, durable }) });
  createSessions({ store: sqliteStore({ path: process.env.SESSION_DB }) });
}

/** Session options, and the options of session calls, read from the environment (undefined: the default). */
export async function sessionOptionsFromEnvironment(): Promise<void> {
  const env = process.env;
  const number = (value: string | undefined) => (value === undefined ? undefined : Number(value));
  const sessions = createSessions({
    store: sqliteStore({ path: env.SESSION_DB }),
    idleTimeout: number(env.IDLE_TIMEOUT),
    absoluteTimeout: number(env.ABSOLUTE_TIMEOUT),
    trustProxy: env.TRUST_PROXY === undefined ? undefined : env.TRUST_PROXY === '1',
    cookie: { domain: env.COOKIE_DOMAIN, name: env.COOKIE_NAME, path: env.COOKIE_PATH },
    rotation: { afterSeconds: 900, grace: number(env.ROTATION_GRACE) },
    binding: { ip: undefined, userAgent: env.BIND_UA === '1' },
  });
  await sessions.clearExpired({ batchSize: number(env.BATCH), maxBatches: number(env.MAX_BATCHES), cursor: env.CURSOR });
  const session = sessions.open({ cookieHeader: undefined, https: true });
  await session.load();
  session.getSecurityKey({ lifetime: number(env.TOKEN_LIFETIME) });
  await session.reset({ keep: env.KEEP === undefined ? undefined : env.KEEP.split(',') });
  await sessions.listByUser('alice', { current: session.handle ?? undefined });
}

/**
 * Every factory and helper whose options are optional takes them as values that may be
 * `undefined` (an unset environment variable, an optional callback passed on): each means "not
 * given", the default.
 */
export async function everyOptionMaybeUndefined(): Promise<void> {
  const env = process.env;
  const number = (value: string | undefined) => (value === undefined ? undefined : Number(value));
  const flag = (value: string | undefined) => (value === undefined ? undefined : value === '1');
  const maybe = <T>(value: T): T | undefined => (env.UNSET === undefined ? value : undefined);
  const clock = maybe({ now: () => Date.now() });

  const memory = memoryStore({ sweepInterval: number(env.SWEEP), maxEntries: number(env.MAX_ENTRIES), clock });
  const durable = sqliteStore({
    path: env.SESSION_DB,
    database: undefined,
    table: env.TABLE,
    createTable: flag(env.CREATE_TABLE),
    busyTimeout: number(env.BUSY_TIMEOUT),
    sweepInWorker: flag(env.SWEEP_IN_WORKER),
    checkpointInWorker: flag(env.CHECKPOINT_IN_WORKER),
    clock,
  });
  const store = tieredStore({
    cache: memory,
    durable,
    cacheTtl: number(env.CACHE_TTL),
    tombstoneTtl: number(env.TOMBSTONE_TTL),
    cacheTimeout: number(env.CACHE_TIMEOUT),
    onCacheError: maybe((error: unknown) => console.error(error)),
    closeTiers: flag(env.CLOSE_TIERS),
    clock,
  });
  connectStore(new session.MemoryStore(), { name: env.STORE_NAME, nativeTtl: flag(env.NATIVE_TTL), queueTimeout: number(env.QUEUE_TIMEOUT), clock });

  const sessions = createSessions({
    store,
    cookie: { previousScopes: undefined },
  });
  createSessions({ store: memoryStore(), cookie: { previousScopes: env.OLD_DOMAIN === undefined ? undefined : [{ domain: env.OLD_DOMAIN, path: env.OLD_PATH }] } });

  // verifyCsrf: its options, and a request built by hand.
  const opened = sessions.open({ cookieHeader: undefined, https: true });
  await verifyCsrf(opened, { method: 'POST', url: 'https://example.com/', header: () => null, formToken: env.TOKEN });
  await verifyCsrf(opened, { method: 'POST', url: 'https://example.com/', header: () => null }, {
    headerName: env.CSRF_HEADER,
    allowedOrigins: env.ADMIN_ORIGIN === undefined ? undefined : [env.ADMIN_ORIGIN],
    oneTime: flag(env.ONE_TIME),
  });

  // The adapters' options, and each csrfRequest's.
  const onNodeError = maybe((_error: unknown, _req: IncomingMessage, res: ServerResponse) => res.end());
  createServer(withNodeSessions(sessions, (_req, res) => res.end(), { onError: onNodeError }));
  createServer((req) => {
    void nodeCsrfRequest(req, { trustProxy: flag(env.TRUST_PROXY), formToken: env.TOKEN });
  });
  withFetchSessions(sessions, () => new Response('ok'), {
    getClientIp: maybe(() => '127.0.0.1'),
    onError: maybe(() => new Response('down', { status: 503 })),
  });
  new Hono().use(honoSessions(sessions, { getClientIp: maybe(() => '127.0.0.1'), onError: maybe((_error: unknown, c: Context) => c.text('down', 503)) }));
  const app = express();
  app.use(expressSessions(sessions, { eager: flag(env.EAGER), shareShapes: flag(env.SHARE_SHAPES), onError: onNodeError }));
  app.post('/', (req) => {
    void expressCsrfRequest(req, { trustProxy: flag(env.TRUST_PROXY), formToken: env.TOKEN });
  });
  const fastify = Fastify();
  fastify.post('/', (request) => {
    void fastifyCsrfRequest(request, { trustProxy: flag(env.TRUST_PROXY), formToken: env.TOKEN });
  });
  new Koa().use((ctx) => {
    void koaCsrfRequest(ctx, { trustProxy: flag(env.TRUST_PROXY), formToken: env.TOKEN });
  });
}

/** The networked stores' and the cookie store's options, each maybe undefined. */
export async function storeOptionsMaybeUndefined(): Promise<void> {
  const env = process.env;
  const number = (value: string | undefined) => (value === undefined ? undefined : Number(value));
  const flag = (value: string | undefined) => (value === undefined ? undefined : value === '1');
  const revocations = env.REVOKE === '1' ? memoryStore() : undefined;
  postgresStore({
    connectionString: env.DATABASE_URL,
    pool: undefined,
    createTable: flag(env.CREATE_TABLE),
    queryTimeout: number(env.QUERY_TIMEOUT),
    connectTimeout: number(env.CONNECT_TIMEOUT),
    maxConnections: number(env.MAX_CONNECTIONS),
    clock: undefined,
  });
  redisStore({ url: env.REDIS_URL, client: undefined, commandTimeout: number(env.COMMAND_TIMEOUT), connectTimeout: number(env.CONNECT_TIMEOUT), clock: undefined });
  cookieStore({ secrets: [env.SECRET ?? ''], revocations, revokeOnLogout: flag(env.REVOKE_ON_LOGOUT) });
  await storeFromUrl(env.STORE_URL ?? 'memory:', { secrets: env.SECRET === undefined ? undefined : [env.SECRET], revocations });
}
