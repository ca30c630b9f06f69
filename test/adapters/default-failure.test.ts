/**
 * The adapters' default failure answers say what went wrong: an unexpected error (500) is
 * written to stderr, as a framework's default error handler does, instead of vanishing into a
 * bare "Internal Server Error"; a cookie-store session over the browser's 4 KB limit is a 413 that
 * names the size limit, as a server-side session over `maxDataSize` is.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import express from 'express';
import { expressSessions } from '../../src/adapters/express.js';
import { getSession, withSessions } from '../../src/adapters/node.js';
import { createSessions } from '../../src/index.js';
import { cookieStore } from '../../src/stores/cookie.js';
import { memoryStore } from '../../src/stores/memory.js';

async function serveOnce(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ status: number; body: string; cookies: string[] }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    return { status: res.status, body: await res.text(), cookies: res.headers.getSetCookie() };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('default failure answers', () => {
  const logged: unknown[][] = [];
  const originalError = console.error;
  beforeEach(() => {
    logged.length = 0;
    console.error = (...args: unknown[]) => logged.push(args);
  });
  afterEach(() => {
    console.error = originalError;
  });

  it('node:http: a handler that throws is answered 500 and its error written to stderr', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const bug = new Error('the app has a bug');
    const answer = await serveOnce(
      withSessions(sessions, () => {
        throw bug;
      }),
    );
    assert.equal(answer.status, 500);
    assert.equal(logged.length, 1);
    assert.match(String(logged[0]?.[0]), /the app has a bug\n\s+at /, 'the error is logged with its stack');
    await sessions.close();
  });

  it('logs the stack only, not the properties hung on the error (a request config with credentials)', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const answer = await serveOnce(
      withSessions(sessions, () => {
        throw Object.assign(new Error('upstream call failed'), { config: { headers: { Authorization: 'Bearer sk_live_SECRET' } } });
      }),
    );
    assert.equal(answer.status, 500);
    assert.match(String(logged[0]?.[0]), /upstream call failed/);
    assert.doesNotMatch(logged.flat().map(String).join(' '), /SECRET/);
    await sessions.close();
  });

  it('node:http: with onError the app answers and nothing is logged', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const seen: unknown[] = [];
    const answer = await serveOnce(
      withSessions(
        sessions,
        () => {
          throw new Error('the app has a bug');
        },
        {
          onError: (error, _req, res) => {
            seen.push(error);
            res.statusCode = 500;
            res.end('handled');
          },
        },
      ),
    );
    assert.equal(answer.body, 'handled');
    assert.equal(seen.length, 1);
    assert.equal(logged.length, 0);
    await sessions.close();
  });

  it('a store outage (503) is not logged as a bug: the answer and the storeError event say it', async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    const sessions = createSessions({
      store: {
        ...inner,
        create: () => {
          throw new Error('connection refused');
        },
      },
    });
    const answer = await serveOnce(
      withSessions(sessions, async (req, res) => {
        (await import('../../src/adapters/node.js')).sessionHandle(req).set('a', 1);
        res.end('ok');
      }),
    );
    assert.equal(answer.status, 503);
    // No listener: one warning naming the store's failure, not a bug's stack.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(logged.length, 1, logged.join('\n'));
    const line = logged[0]!.map(String).join(' ');
    assert.match(line, /COATCHECK_STORE_ERROR.*failed during create \(.*connection refused\)/s);
    assert.doesNotMatch(line, /unexpected error/);
    const heard = createSessions({ store: { ...inner, create: () => Promise.reject(new Error('connection refused')) } });
    heard.events.on('storeError', () => {});
    const again = await serveOnce(
      withSessions(heard, async (req, res) => {
        (await import('../../src/adapters/node.js')).sessionHandle(req).set('a', 1);
        res.end('ok');
      }),
    );
    assert.equal(again.status, 503);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(logged.length, 1, 'with a storeError listener, nothing more is logged');
    await sessions.close();
    await heard.close();
  });

  it('node:http: requireFreshAuth in a handler is answered 401, not logged as a bug', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const answer = await serveOnce(
      withSessions(sessions, async (req) => {
        (await getSession(req)).requireFreshAuth(300);
      }),
    );
    assert.equal(answer.status, 401);
    assert.match(answer.body, /sign in again/);
    assert.equal(logged.length, 0);
    await sessions.close();
  });

  it('Express + cookie store: a session over 4 KB is a 413 naming the size limit, with no cookie', async () => {
    const sessions = createSessions({ store: cookieStore({ secrets: ['k-cookie-store-secret-0123456789'] }) });
    const app = express();
    app.use(expressSessions(sessions));
    app.get('/', async (req, res) => {
      (await req.session.load()).set('big', 'x'.repeat(5_000));
      res.send('stored');
    });
    const answer = await serveOnce(app);
    assert.equal(answer.status, 413);
    assert.match(answer.body, /size limit/);
    assert.deepEqual(answer.cookies, []);
    await sessions.close();
  });
});
