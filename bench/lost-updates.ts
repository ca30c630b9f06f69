/**
 * Lost updates: one signed-in session, then 50 concurrent requests through a real HTTP server,
 * request i setting key `k<i>`; between loading the session and answering, each handler waits
 * 0–5 ms (an app doing I/O), so the requests overlap. Afterwards the session is read back: how
 * many of the 50 keys survived? coatcheck writes only the keys a request changed, so all 50 must
 * survive on every server-side store; express-session saves the whole session object and the last
 * writer wins. Five trials per store; the table shows the worst.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { getSession, withSessions } from '../src/adapters/node.js';
import { createSessions, type Sessions } from '../src/index.js';
import type { AnyStore } from '../src/stores/types.js';
import { cookieHeaderFrom } from './lib/load.js';
import { table, type Verdict } from './lib/report.js';
import { postgresUrlIfUp } from './lib/services.js';

const CONCURRENT = 50;
const TRIALS = 5;

export interface LostUpdateResult {
  app: string;
  store: string;
  kept: number[];
  expected: number;
  note?: string;
  error?: string;
}

interface App {
  url: string;
  close(): Promise<void>;
}

function listen(server: Server, extra: () => Promise<void>): Promise<App> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: async () => {
          server.closeAllConnections();
          await new Promise<void>((done) => server.close(() => done()));
          await extra();
        },
      });
    });
  });
}

const keyOf = (url: string) => new URL(url, 'http://x').searchParams.get('key') ?? 'none';
const jitter = () => sleep(Math.random() * 5);

async function coatcheckApp(sessions: Sessions): Promise<App> {
  const server = createServer(
    withSessions(sessions, async (req, res) => {
      const session = await getSession(req);
      const url = req.url ?? '/';
      if (url.startsWith('/login')) {
        await session.login('writer');
        session.set('start', true);
      } else if (url.startsWith('/set')) {
        await jitter();
        session.set(keyOf(url), true);
      }
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ keys: session.keys() }));
    }),
  );
  return listen(server, () => sessions.close());
}

async function expressSessionApp(store: 'memory' | 'redis', redisUrl?: string): Promise<App> {
  const express = (await import('express')).default;
  const session = (await import('express-session')).default;
  let sessionStore: import('express-session').Store | undefined;
  let cleanup = async () => {};
  if (store === 'redis') {
    const { createClient } = await import('redis');
    const { RedisStore } = await import('connect-redis');
    const client = createClient({ url: redisUrl });
    client.on('error', () => {});
    await client.connect();
    sessionStore = new RedisStore({ client, prefix: `lost:${randomBytes(4).toString('hex')}:` });
    cleanup = async () => {
      await client.quit().catch(() => {});
    };
  }
  const app = express();
  app.use(session({ secret: randomBytes(32).toString('hex'), resave: false, saveUninitialized: false, ...(sessionStore && { store: sessionStore }) }));
  type Bag = Record<string, unknown> & { regenerate(cb: (error?: unknown) => void): void };
  const bag = (req: unknown) => (req as { session: Bag }).session;
  const answer = (req: unknown, res: { json(v: unknown): void }) =>
    res.json({ keys: Object.keys(bag(req)).filter((k) => k !== 'cookie') });
  app.post('/login', (req, res) => {
    bag(req).regenerate(() => {
      bag(req).user = 'writer';
      bag(req).start = true;
      answer(req, res);
    });
  });
  app.get('/set', (req, res) => {
    void jitter().then(() => {
      bag(req)[keyOf(req.url)] = true;
      answer(req, res);
    });
  });
  app.get('/keys', (req, res) => answer(req, res));
  return listen(createServer(app), cleanup);
}

/** One trial: sign in, fire the concurrent writes, read back; returns how many keys survived. */
async function trial(app: App, statelessCookies: boolean): Promise<number> {
  const login = await fetch(`${app.url}/login`, { method: 'POST' });
  await login.arrayBuffer();
  let cookie = cookieHeaderFrom(login.headers.getSetCookie());
  const sent = cookie;
  await Promise.all(
    Array.from({ length: CONCURRENT }, async (_, i) => {
      const response = await fetch(`${app.url}/set?key=k${i}`, { headers: { cookie: sent } });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`/set answered ${response.status}`);
      // A browser keeps whichever cookie arrived last (only the cookie store sends one here).
      const setCookie = response.headers.getSetCookie();
      if (setCookie.length > 0) cookie = cookieHeaderFrom(setCookie, cookie);
    }),
  );
  if (!statelessCookies && cookie !== sent) throw new Error('the server replaced the session cookie during the writes');
  const read = await fetch(`${app.url}/keys`, { headers: { cookie } });
  const { keys } = (await read.json()) as { keys: string[] };
  return keys.filter((k) => /^k\d+$/.test(k)).length;
}

export async function runLostUpdates(options: { dir: string; log: (line: string) => void; redisUrl?: string }): Promise<{
  markdown: string;
  verdicts: Verdict[];
  results: LostUpdateResult[];
}> {
  const postgresUrl = await postgresUrlIfUp(options.log);
  const scratchTables: string[] = [];
  const coatcheckStores: Array<[string, () => Promise<AnyStore>]> = [
    ['memory', async () => (await import('../src/stores/memory.js')).memoryStore()],
    ['SQLite', async () => (await import('../src/stores/sqlite.js')).sqliteStore({ path: join(options.dir, 'lost-updates.db') })],
  ];
  if (postgresUrl) {
    coatcheckStores.push([
      'PostgreSQL',
      async () => {
        const table = `bench_lost_${randomBytes(4).toString('hex')}`;
        scratchTables.push(table);
        return (await import('../src/stores/postgres.js')).postgresStore({ connectionString: postgresUrl, table });
      },
    ]);
  }
  if (options.redisUrl) {
    const url = options.redisUrl;
    coatcheckStores.push(['Redis', async () => (await import('../src/stores/redis.js')).redisStore({ url, prefix: `lost:${randomBytes(4).toString('hex')}:` })]);
  }
  coatcheckStores.push(['cookie', async () => (await import('../src/stores/cookie.js')).cookieStore({ secrets: [randomBytes(32).toString('base64url')] })]);

  const results: LostUpdateResult[] = [];
  const measure = async (app: string, store: string, open: () => Promise<App>, stateless = false, note?: string) => {
    const result: LostUpdateResult = { app, store, kept: [], expected: CONCURRENT, ...(note && { note }) };
    let running: App | undefined;
    try {
      running = await open();
      for (let i = 0; i < TRIALS; i++) result.kept.push(await trial(running, stateless));
    } catch (error) {
      result.error = error instanceof Error ? error.message : String(error);
    } finally {
      await running?.close();
    }
    results.push(result);
    options.log(`  ${app} + ${store}: kept ${result.kept.join(', ') || '-'} of ${CONCURRENT}${result.error ? ` (error: ${result.error})` : ''}`);
  };

  for (const [name, open] of coatcheckStores) {
    const stateless = name === 'cookie';
    await measure('coatcheck', name, async () => coatcheckApp(createSessions({ store: await open() })), stateless,
      stateless ? 'exempt: the session lives in the cookie, so each response carries a whole new cookie and the browser keeps only the last' : undefined);
  }
  await measure('express-session', 'MemoryStore', () => expressSessionApp('memory'));
  if (options.redisUrl) await measure('express-session', 'connect-redis 9 (node-redis 5)', () => expressSessionApp('redis', options.redisUrl));

  if (postgresUrl && scratchTables.length > 0) {
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    for (const t of scratchTables) {
      await client.query(`DROP TABLE IF EXISTS "${t}"`);
      await client.query('DELETE FROM coatcheck_schema WHERE table_name = $1', [t]).catch(() => {});
    }
    await client.end();
  }

  const markdown = [
    `### Lost updates (${CONCURRENT} concurrent requests, each setting its own key on one session; ${TRIALS} trials)`,
    '',
    table(
      ['library', 'store', 'keys kept (worst of 5)', 'each trial', 'note'],
      results.map((r) => [r.app, r.store, r.error ? 'error' : `${Math.min(...r.kept)} / ${r.expected}`, r.error ?? r.kept.join(', '), r.note ?? '']),
    ),
  ].join('\n');
  const verdicts: Verdict[] = results
    .filter((r) => r.app === 'coatcheck')
    .map((r) => ({
      target: `lost updates: coatcheck + ${r.store} keeps all ${CONCURRENT}`,
      measured: r.error ? `error: ${r.error}` : `${Math.min(...r.kept)} / ${CONCURRENT}`,
      required: r.store === 'cookie' ? 'exempt' : `${CONCURRENT} / ${CONCURRENT}`,
      pass: r.store === 'cookie' ? null : !r.error && Math.min(...r.kept) === CONCURRENT,
    }));
  return { markdown, verdicts, results };
}
