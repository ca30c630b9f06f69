/**
 * The app the reliability tests drive: a real node:http server with coatcheck, and a tiny client
 * that remembers, per session, the last counter value the server acknowledged, so a test can
 * check after an outage that no acknowledged write was lost.
 *
 * Routes: `POST /login?user=<id>` (new signed-in session with `n = 0`), `POST /inc` (`n += 1`,
 * answers the new `n`), `GET /read` (answers `{ user, n }`). The handlers never catch: a store
 * failure reaches the adapter, which must answer 503.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getSession, withSessions } from '../../src/adapters/node.js';
import type { Sessions } from '../../src/index.js';

export interface CounterApp {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export async function startCounterApp(sessions: Sessions): Promise<CounterApp> {
  const server = createServer(
    withSessions(sessions, async (req, res) => {
      const session = await getSession(req);
      const url = new URL(req.url ?? '/', 'http://x');
      let body: unknown;
      if (req.method === 'POST' && url.pathname === '/login') {
        await session.login(url.searchParams.get('user') ?? 'someone');
        session.set('n', 0);
        body = { user: session.userId, n: 0 };
      } else if (req.method === 'POST' && url.pathname === '/inc') {
        if (session.userId === null) {
          res.statusCode = 401;
          res.end('{"error":"not signed in"}');
          return;
        }
        const n = (session.get('n', 0) as number) + 1;
        session.set('n', n);
        body = { user: session.userId, n };
      } else {
        body = { user: session.userId, n: session.get('n', null) };
      }
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(body));
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface Reply {
  path: string;
  status: number;
  /** Wall time of the request, ms. */
  ms: number;
  body: { user?: string | null; n?: number | null } | null;
  /** The session cookies the response set (any `sid=`). */
  sessionCookies: string[];
  /** Set when the request did not get an HTTP answer at all (timeout, reset). */
  error?: string;
  /** When the request started (Date.now()). */
  at: number;
}

/** One request with a hard client-side deadline: a hang shows up as `error: 'timeout'`. */
export async function call(base: string, method: string, path: string, cookie: string | undefined, deadlineMs: number): Promise<Reply> {
  const start = Date.now();
  try {
    const response = await fetch(base + path, {
      method,
      headers: cookie ? { cookie } : {},
      signal: AbortSignal.timeout(deadlineMs),
    });
    const text = await response.text();
    let body: Reply['body'] = null;
    try {
      body = JSON.parse(text) as Reply['body'];
    } catch {
      body = null;
    }
    return {
      path,
      status: response.status,
      ms: Date.now() - start,
      body,
      sessionCookies: response.headers.getSetCookie().filter((c) => c.startsWith('sid=') || c.startsWith('__Host-sid=')),
      at: start,
    };
  } catch (error) {
    const name = (error as { name?: string }).name;
    return {
      path,
      status: 0,
      ms: Date.now() - start,
      body: null,
      sessionCookies: [],
      error: name === 'TimeoutError' ? 'timeout' : String(error),
      at: start,
    };
  }
}

/** One browser with one signed-in session, counting acknowledged writes. */
export class CounterClient {
  cookie = '';
  /** Highest `n` the server answered 200 for. */
  acked = 0;
  /** Writes sent (acknowledged or not): `n` can never exceed this. */
  sent = 0;
  readonly replies: Reply[] = [];

  constructor(
    readonly base: string,
    readonly user: string,
    readonly deadlineMs: number,
  ) {}

  async login(): Promise<void> {
    const reply = await call(this.base, 'POST', `/login?user=${encodeURIComponent(this.user)}`, undefined, this.deadlineMs);
    const cookie = reply.sessionCookies[0]?.split(';')[0];
    if (reply.status !== 200 || !cookie) throw new Error(`login of ${this.user} answered ${reply.status} ${reply.error ?? ''}`);
    this.cookie = cookie;
  }

  async inc(): Promise<Reply> {
    this.sent++;
    const reply = await call(this.base, 'POST', '/inc', this.cookie, this.deadlineMs);
    if (reply.status === 200 && typeof reply.body?.n === 'number') this.acked = Math.max(this.acked, reply.body.n);
    this.replies.push(reply);
    return reply;
  }

  read(): Promise<Reply> {
    return call(this.base, 'GET', '/read', this.cookie, this.deadlineMs);
  }
}

/** Keeps every client writing (one request at a time each) until `stop()` resolves. */
export async function keepWriting(clients: CounterClient[], stop: Promise<void>, pauseMs = 5): Promise<void> {
  let stopped = false;
  void stop.then(() => {
    stopped = true;
  });
  await Promise.all(
    clients.map(async (client) => {
      while (!stopped) {
        await client.inc();
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    }),
  );
}

/** Polls until every client's session reads back 200 (the store is back), or `ms` pass. */
export async function waitForRecovery(clients: CounterClient[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const replies = await Promise.all(clients.map((c) => c.read()));
    if (replies.every((r) => r.status === 200)) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * What every outage must look like from the outside: every request got an HTTP answer, only 200
 * or 503, no 503 touches the session cookie, and nothing took longer than `limitMs`
 * (the store timeout plus scheduling slack).
 */
export function assertFailedClosed(replies: Reply[], label: string, limitMs: number): { failed: number; slowest: number } {
  const broken = replies.filter((r) => r.error !== undefined);
  assert.deepEqual(broken.map((r) => `${r.path} after ${r.ms} ms: ${r.error}`), [], `${label}: every request got an HTTP answer`);
  for (const status of new Set(replies.map((r) => r.status))) assert.ok(status === 200 || status === 503, `${label}: unexpected status ${status}`);
  const failed = replies.filter((r) => r.status === 503);
  for (const reply of failed) {
    assert.deepEqual(reply.sessionCookies, [], `${label}: a 503 must not touch the session cookie`);
    assert.ok(reply.ms <= limitMs, `${label}: a 503 took ${reply.ms} ms (limit ${limitMs} ms)`);
  }
  const slowest = Math.max(0, ...replies.map((r) => r.ms));
  assert.ok(slowest <= limitMs, `${label}: a request took ${slowest} ms (limit ${limitMs} ms)`);
  return { failed: failed.length, slowest };
}

/** After the outage every client's cookie works, still signed in, with every acknowledged write. */
export async function assertNothingLost(clients: CounterClient[], label: string): Promise<void> {
  for (const client of clients) {
    const reply = await client.read();
    assert.equal(reply.status, 200, `${label}: ${client.user}'s cookie works again`);
    assert.equal(reply.body?.user, client.user, `${label}: ${client.user} is still signed in`);
    const n = reply.body?.n as number;
    assert.ok(n >= client.acked, `${label}: ${client.user} had ${client.acked} acknowledged writes but reads ${n}`);
    assert.ok(n <= client.sent, `${label}: ${client.user} reads ${n} after sending ${client.sent} writes`);
  }
}
