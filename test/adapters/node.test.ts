import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { describe, it } from 'node:test';
import { getSession, withSessions } from '../../src/adapters/node.js';
import { attachSession } from '../../src/adapters/node-internal.js';
import { createSessions } from '../../src/index.js';
import { cookieStore } from '../../src/stores/cookie.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { Store } from '../../src/stores/types.js';
import { runAdapterScenarios, type RunningApp } from './scenarios.js';
import { nestedNodeHandler, nodeScenarioHandler } from './node-scenario-app.js';
import { slowCreateStore } from '../helpers/slow-create.js';
import { instrument } from '../helpers/instrumented-store.js';
import { rawRequest } from '../helpers/raw-http.js';
import type { Session } from '../../src/core/session.js';
import { varyWithCookie } from '../../src/adapters/shared.js';
import { HeadersSentError } from '../../src/errors.js';

// Process warnings of the whole file: the adapter's are emitted once per process, by whichever test comes first.
const processWarnings: Error[] = [];
process.on('warning', (warning) => processWarnings.push(warning));

/** A session cookie (`name=value`) made by a request to `url`. */
async function seedCookie(url: string): Promise<string> {
  const res = await fetch(url);
  await res.text();
  return (res.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
}

async function listen(server: Server): Promise<RunningApp> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Uncaught exceptions while a test runs; `stop()` removes the listener. */
function captureUncaught(): { errors: unknown[]; stop: () => void } {
  const errors: unknown[] = [];
  const listener = (error: unknown) => errors.push(error);
  process.on('uncaughtException', listener);
  return { errors, stop: () => process.off('uncaughtException', listener) };
}

runAdapterScenarios(
  'node:http',
  (sessions) => listen(createServer(withSessions(sessions, nodeScenarioHandler))),
  // A wrapped handler called from a wrapped one.
  (engines) => listen(createServer(nestedNodeHandler<IncomingMessage, ServerResponse>(engines))),
);

describe('node:http adapter specifics', () => {
  it('treats an HTTP/1 response that carries a `stream` property of the app\'s as HTTP/1', async () => {
    const sessions = createSessions({ store: slowCreateStore(20) });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          (await getSession(req)).set('a', 1);
          const upstream = Readable.from(['upstream ', 'contents']);
          (res as ServerResponse & { stream?: Readable }).stream = upstream;
          let body = '';
          for await (const chunk of upstream) body += String(chunk);
          res.end(body);
        }),
      ),
    );
    try {
      const res = await fetch(app.url, { signal: AbortSignal.timeout(5_000) });
      assert.equal(await res.text(), 'upstream contents');
      assert.equal(res.headers.getSetCookie().length, 1);
    } finally {
      await app.close();
      await sessions.close();
    }
  });

  it('commits before streamed bodies and explicit writeHead headers go out', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          const session = await getSession(req);
          session.set('streamed', true);
          res.writeHead(201, { 'Content-Type': 'text/plain', 'Set-Cookie': ['a=1', 'b=2'], Vary: 'Accept' });
          res.write('one ');
          await new Promise((resolve) => setTimeout(resolve, 5));
          res.write('two ');
          res.end('three');
        }),
      ),
    );
    try {
      const res = await fetch(app.url);
      assert.equal(res.status, 201);
      assert.equal(await res.text(), 'one two three');
      const cookies = res.headers.getSetCookie();
      assert.deepEqual(cookies.slice(0, 2), ['a=1', 'b=2']);
      assert.match(cookies[2] ?? '', /^sid=/);
      assert.match(res.headers.get('vary') ?? '', /Accept/);
    } finally {
      await app.close();
    }
  });


  it('still sends the body when the headers left before the session was first used', async () => {
    const store = memoryStore({ sweepInterval: 0 });
    const sessions = createSessions({ store });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          res.flushHeaders();
          const session = await getSession(req);
          session.set('late', true); // no cookie can be sent any more, but the body must arrive
          res.write('late ');
          res.end('body');
        }),
      ),
    );
    try {
      const res = await fetch(app.url);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'late body');
      assert.deepEqual(res.headers.getSetCookie(), []);
    } finally {
      await app.close();
    }
  });

  it('commits both sessions when two engines hook the same response', async () => {
    const first = createSessions({ store: memoryStore({ sweepInterval: 0 }), cookie: { name: 'a' } });
    const second = createSessions({ store: memoryStore({ sweepInterval: 0 }), cookie: { name: 'b' } });
    const app = await listen(
      createServer(async (req, res) => {
        const a = attachSession(first, req, res);
        const b = attachSession(second, req, res);
        (await a.load()).set('x', 1);
        (await b.load()).set('y', 2);
        res.end('ok');
      }),
    );
    try {
      const res = await fetch(app.url, { signal: AbortSignal.timeout(3000) });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'ok');
      const names = res.headers.getSetCookie().map((c) => c.slice(0, c.indexOf('='))).sort();
      assert.deepEqual(names, ['a', 'b']);
    } finally {
      await app.close();
    }
  });

  it("leaves another middleware's own write/end wrappers working after the commit", async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          // A compression-style wrapper installed before the session is used.
          const end = res.end;
          res.end = function upperEnd(this: typeof res, chunk?: unknown) {
            return (end as (this: typeof res, chunk?: unknown) => typeof res).call(this, typeof chunk === 'string' ? chunk.toUpperCase() : chunk);
          } as typeof res.end;
          const session = await getSession(req);
          session.set('wrapped', 1);
          res.end('quiet');
        }),
      ),
    );
    try {
      const res = await fetch(app.url);
      assert.equal(await res.text(), 'QUIET');
      assert.match(res.headers.getSetCookie()[0] ?? '', /^sid=/);
    } finally {
      await app.close();
    }
  });
  it('sends the response within res.end() when the store answers synchronously, and once its promise settles otherwise', async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    // The same store answering through promises, as a networked store does.
    const promised: Store = {
      ...inner,
      name: 'promised-memory',
      get: async (id) => inner.get(id),
      update: async (id, patch) => inner.update(id, patch),
      touch: async (id, times) => inner.touch(id, times),
    };
    for (const [store, synchronous] of [[inner, true], [promised, false]] as const) {
      const sessions = createSessions({ store, context: false });
      const sentWithinEnd: boolean[] = [];
      const app = await listen(
        createServer(
          withSessions(sessions, async (req, res) => {
            const session = await getSession(req);
            session.set('n', (session.get('n', 0) as number) + 1);
            res.end(String(session.get('n')));
            sentWithinEnd.push(res.headersSent);
          }),
        ),
      );
      try {
        const first = await fetch(app.url);
        const cookie = (first.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
        const second = await fetch(app.url, { headers: { cookie } });
        assert.equal(await second.text(), '2');
        assert.match(second.headers.get('vary') ?? '', /Cookie/);
        // The first request creates the session (always asynchronous); the second saves it.
        assert.equal(sentWithinEnd[1], synchronous, store.name);
      } finally {
        await app.close();
      }
    }
  });

  it('replaces a streamed response whose commit fails within the first write, dropping the later writes', async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    let failUpdates = false;
    const store: Store = {
      ...inner,
      update: (id, patch) => {
        if (failUpdates) throw new Error('SQLITE_BUSY: database is locked');
        return inner.update(id, patch);
      },
    };
    const sessions = createSessions({ store, maxDataSize: 1000 });
    const afterFailure: Array<{ ended: boolean; write: boolean }> = [];
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          const session = await getSession(req);
          if (req.url === '/big') for (let i = 0; i < 5; i++) session.set(`k${i}`, 'x'.repeat(300));
          else session.set('n', (session.get('n', 0) as number) + 1);
          res.write('first ');
          // Both failures are synchronous (size check, a synchronous store): answered already.
          afterFailure.push({ ended: res.writableEnded, write: res.write('second ') });
          res.end('last');
        }),
      ),
    );
    try {
      const first = await fetch(`${app.url}/small`);
      const cookie = (first.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
      const big = await fetch(`${app.url}/big`, { headers: { cookie } });
      assert.equal(big.status, 413);
      assert.match(await big.text(), /^Payload Too Large/);
      failUpdates = true;
      const down = await fetch(`${app.url}/small`, { headers: { cookie } });
      assert.equal(down.status, 503);
      assert.match(await down.text(), /^Service Unavailable/);
      assert.deepEqual(down.headers.getSetCookie(), []);
      // Dropped writes answer true: a caller waiting for 'drain' would otherwise wait forever.
      assert.deepEqual(afterFailure.slice(1), [
        { ended: true, write: true },
        { ended: true, write: true },
      ]);
      failUpdates = false;
      assert.equal((await fetch(`${app.url}/small`, { headers: { cookie } })).status, 200, 'the server is still up');
    } finally {
      await app.close();
    }
  });

  it('lets a response the app ended go out as written when the handler throws while its commit is pending', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }), context: false });
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          const session = await getSession(req);
          session.set('n', 1); // a new session: creating it is asynchronous, so the end is held back
          res.end('ok');
          throw new Error('late failure after end');
        }),
      ),
    );
    try {
      const res = await fetch(app.url);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'ok');
      assert.match(res.headers.getSetCookie()[0] ?? '', /^sid=/);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(uncaught, []);
    } finally {
      process.off('uncaughtException', onUncaught);
      await app.close();
    }
  });

  it('keeps writeHead headers (object and flat-array forms) and adds the session headers to them', async () => {
    for (const synchronous of [true, false]) {
      const inner = memoryStore({ sweepInterval: 0 });
      const store: Store = synchronous ? inner : { ...inner, get: async (id) => inner.get(id), update: async (id, patch) => inner.update(id, patch) };
      const sessions = createSessions({ store });
      const app = await listen(
        createServer(
          withSessions(sessions, async (req, res) => {
            const session = await getSession(req);
            session.set('n', (session.get('n', 0) as number) + 1);
            if (req.url === '/object') res.writeHead(201, { Vary: 'Accept-Encoding', 'Cache-Control': 'public, max-age=60', 'X-A': '1' });
            else res.writeHead(202, ['Set-Cookie', 'app=1', 'X-B', '2']);
            res.end('ok');
          }),
        ),
      );
      try {
        const first = await fetch(`${app.url}/object`);
        const cookie = (first.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
        for (const headers of [{}, { cookie }] as Record<string, string>[]) {
          const object = await fetch(`${app.url}/object`, { headers });
          assert.equal(object.status, 201);
          assert.equal(object.headers.get('vary'), 'Accept-Encoding, Cookie');
          // A new session sends its cookie (creating it is asynchronous); a saved one has nothing to send.
          const isNew = headers.cookie === undefined;
          // writeHead's own Cache-Control is rewritten there when the response hands out a session.
          assert.equal(object.headers.get('cache-control'), isNew ? 'private, max-age=60' : 'public, max-age=60');
          assert.equal(object.headers.get('x-a'), '1');
          assert.equal(object.headers.getSetCookie().some((c) => c.startsWith('sid=')), isNew);
          const flat = await fetch(`${app.url}/flat`, { headers });
          assert.equal(flat.status, 202);
          assert.equal(flat.headers.get('x-b'), '2');
          const cookies = flat.headers.getSetCookie();
          assert.ok(cookies.includes('app=1') && cookies.some((c) => c.startsWith('sid=')) === isNew, cookies.join(' | '));
        }
      } finally {
        await app.close();
      }
    }
  });

  it('keeps every repeated header of an array writeHead (a proxied rawHeaders) and the nested form', async () => {
    for (const synchronous of [true, false]) {
      const inner = memoryStore({ sweepInterval: 0 });
      const store: Store = synchronous ? inner : { ...inner, get: async (id) => inner.get(id), create: async (r) => inner.create(r) };
      const sessions = createSessions({ store });
      const app = await listen(
        createServer(
          withSessions(sessions, async (req, res) => {
            (await getSession(req)).set('n', 1);
            if (req.url === '/nested') res.writeHead(200, [['Set-Cookie', 'a=1'], ['Vary', 'Accept'], ['set-cookie', 'b=2']] as unknown as string[]);
            else res.writeHead(200, ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Vary', 'Accept', 'Vary', 'Origin']);
            res.end('ok');
          }),
        ),
      );
      try {
        for (const [path, vary] of [['/flat', 'Accept, Origin, Cookie'], ['/nested', 'Accept, Cookie']] as const) {
          const res = await fetch(`${app.url}${path}`);
          assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
          const cookies = res.headers.getSetCookie();
          assert.deepEqual(cookies.slice(0, 2), ['a=1', 'b=2'], `${path}: the app's cookies, all of them`);
          assert.ok(cookies[2]?.startsWith('sid='), `${path}: and the session's`);
          assert.equal(res.headers.get('vary'), vary);
        }
      } finally {
        await app.close();
      }
    }
  });

  it('closes an unfinished response whose handler throws while the commit is pending, instead of mixing in an error page', async () => {
    const store = slowCreateStore(30);
    const sessions = createSessions({ store });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          (await getSession(req)).set('n', 1);
          if (req.url === '/ok') return void res.end('fine');
          res.write('partial-');
          throw new Error('failed half-way');
        }),
      ),
    );
    try {
      const outcome = await fetch(`${app.url}/half`).then(
        async (res) => `${res.status} ${await res.text()}`,
        (error: Error) => `failed: ${error.message}`,
      );
      assert.ok(!outcome.includes('Internal Server Error'), outcome);
      assert.equal(await (await fetch(`${app.url}/ok`)).text(), 'fine');
    } finally {
      await app.close();
    }
  });

  it('sends the head at flushHeaders() once the commit allows, not only with the first body chunk', async () => {
    const store = slowCreateStore(10);
    const sessions = createSessions({ store });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          (await getSession(req)).set('n', 1);
          res.setHeader('Content-Type', 'text/event-stream');
          res.flushHeaders();
          setTimeout(() => res.end('data: done\n\n'), 400);
        }),
      ),
    );
    try {
      const started = Date.now();
      const res = await fetch(app.url);
      const headAfter = Date.now() - started;
      assert.ok(headAfter < 300, `head after ${headAfter} ms`);
      assert.match(res.headers.getSetCookie()[0] ?? '', /^sid=/);
      assert.equal(await res.text(), 'data: done\n\n');
    } finally {
      await app.close();
    }
  });

  it('asks a writer to wait for drain while the commit is pending, and sends drain once it settles', async () => {
    const store = slowCreateStore(20);
    const sessions = createSessions({ store });
    const answers: boolean[] = [];
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          (await getSession(req)).set('n', 1);
          // As Node's own buffer: a small write may go on, one that reaches the high-water mark waits.
          answers.push(res.write('a'));
          answers.push(res.write('z'.repeat(res.writableHighWaterMark)));
          await once(res, 'drain', { signal: AbortSignal.timeout(2000) }); // fails instead of hanging
          // A piped body after that flows with the socket's own backpressure.
          Readable.from(['b'.repeat(64 * 1024), 'c'.repeat(64 * 1024)]).pipe(res);
        }),
      ),
    );
    try {
      const res = await fetch(app.url);
      const body = await res.text();
      assert.deepEqual(answers, [true, false]);
      assert.equal(body.length, 1 + 16 * 1024 + 128 * 1024);
      assert.ok(body.startsWith('az') && body.endsWith('c'));
      assert.match(res.headers.getSetCookie()[0] ?? '', /^sid=/);
    } finally {
      await app.close();
    }
  });

  it("never adds a session cookie to the app's own writeHead headers object (it may be shared)", async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const SHARED: Record<string, string> = { 'Set-Cookie': 'theme=dark', Vary: 'Accept-Encoding' };
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          if (req.url === '/session') (await getSession(req)).set('n', 1);
          res.writeHead(200, SHARED);
          res.end('ok');
        }),
      ),
    );
    try {
      const withSession = await fetch(`${app.url}/session`);
      assert.equal(withSession.headers.getSetCookie().length, 2);
      const without = await fetch(`${app.url}/plain`);
      assert.deepEqual(without.headers.getSetCookie(), ['theme=dark']);
      assert.deepEqual(SHARED, { 'Set-Cookie': 'theme=dark', Vary: 'Accept-Encoding' });
    } finally {
      await app.close();
    }
  });

  it("lets an onError answer in several calls after a failed commit, without the app's later writes", async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    let failing = false;
    const store: Store = {
      ...inner,
      update: (id, patch) => (failing ? Promise.reject(new Error('store down')) : Promise.resolve(inner.update(id, patch))),
    };
    const sessions = createSessions({ store });
    const callbacks: unknown[] = [];
    const app = await listen(
      createServer(
        withSessions(
          sessions,
          async (req, res) => {
            const session = await getSession(req);
            session.set('n', (session.get('n', 0) as number) + 1);
            if (!res.write('APP1 ')) await once(res, 'drain', { signal: AbortSignal.timeout(2000) });
            res.write('APP2 ');
            await new Promise((resolve) => res.end('APPEND', () => resolve(callbacks.push('end callback'))));
          },
          {
            onError: (_error, _req, res) => {
              res.statusCode = 503;
              res.write('<h1>down</h1>');
              setTimeout(() => res.end('<p>retry</p>'), 20);
            },
          },
        ),
      ),
    );
    try {
      const first = await fetch(app.url);
      assert.equal(await first.text(), 'APP1 APP2 APPEND');
      const cookie = (first.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
      failing = true;
      const down = await fetch(app.url, { headers: { cookie } });
      assert.equal(down.status, 503);
      assert.equal(await down.text(), '<h1>down</h1><p>retry</p>');
      assert.deepEqual(down.headers.getSetCookie(), []);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(callbacks, ['end callback', 'end callback'], 'every end callback is called');
    } finally {
      await app.close();
    }
  });

  it("gives onError a response without the failed answer's framing headers (its Content-Length would frame the error body), keeping CORS", async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    const store: Store = { ...inner, create: () => Promise.reject(new Error('store down')) };
    const sessions = createSessions({ store });
    const seen: { status: number; headers: string[] }[] = [];
    const bodies = ['a body longer than the error one', 'short'];
    const app = await listen(
      createServer(
        withSessions(
          sessions,
          async (req, res) => {
            (await getSession(req)).set('a', 1);
            const body = bodies[Number(req.url?.slice(1))] ?? '';
            res.setHeader('Access-Control-Allow-Origin', 'https://app.example');
            res.writeHead(200, { 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(body), ETag: '"v1"', 'Cache-Control': 'public, max-age=600' });
            res.end(body);
          },
          {
            onError: (_error, _req, res) => {
              seen.push({ status: res.statusCode, headers: res.getHeaderNames() });
              res.statusCode = 503;
              res.end('service down, retry later');
            },
          },
        ),
      ),
    );
    try {
      for (const path of ['/0', '/1']) {
        const res = await fetch(app.url + path, { signal: AbortSignal.timeout(2000) });
        assert.equal(res.status, 503);
        assert.equal(await res.text(), 'service down, retry later');
        assert.equal(res.headers.get('etag'), null);
        assert.equal(res.headers.get('access-control-allow-origin'), 'https://app.example', 'CORS stays: the client can read the error');
        assert.equal(res.headers.get('cache-control'), 'no-store');
      }
      const kept = { status: 500, headers: ['access-control-allow-origin', 'cache-control'] };
      assert.deepEqual(seen.map((s) => ({ ...s, headers: [...s.headers].sort() })), [kept, kept]);
    } finally {
      await app.close();
    }
  });

  it("lets a piped body of small chunks through a wrapper that takes 'drain' listeners off res (compression's way)", async () => {
    /** What the compression middleware does: writes go through gzip, and 'drain' listeners are gzip's. */
    const gzipped = (res: ServerResponse): void => {
      const gzip = createGzip();
      const write = res.write.bind(res) as (chunk: unknown) => boolean;
      const end = res.end.bind(res) as () => ServerResponse;
      const on = res.on.bind(res);
      res.setHeader('Content-Encoding', 'gzip');
      gzip.on('data', (chunk: Buffer) => {
        if (!write(chunk)) gzip.pause();
      });
      on('drain', () => gzip.resume());
      gzip.on('end', () => end());
      res.write = ((chunk: unknown) => gzip.write(chunk as Buffer)) as ServerResponse['write'];
      res.end = ((chunk?: unknown) => {
        if (typeof chunk === 'string' || chunk instanceof Uint8Array) gzip.write(chunk);
        gzip.end();
        return res;
      }) as ServerResponse['end'];
      res.on = ((event: string, listener: (...args: unknown[]) => void) => (event === 'drain' ? (gzip.on(event, listener), res) : on(event, listener))) as ServerResponse['on'];
    };
    const sessions = createSessions({ store: slowCreateStore(20) });
    const handler = withSessions(sessions, async (req, res) => {
      (await getSession(req)).set('n', 1); // a new session: its create is pending while the pipe starts
      Readable.from(Array.from({ length: 50 }, (_, i) => `chunk-${String(i).padStart(2, '0')};`)).pipe(res);
    });
    const app = await listen(
      createServer((req, res) => {
        gzipped(res);
        void handler(req, res);
      }),
    );
    try {
      const res = await fetch(app.url, { signal: AbortSignal.timeout(3_000) });
      const body = await res.text();
      assert.equal(body.split(';').length, 51, body);
      assert.match(res.headers.getSetCookie()[0] ?? '', /^sid=/);
    } finally {
      await app.close();
    }
  });

  it("sends the 'drain' a held write owes when the client leaves while the commit is pending", async () => {
    const sessions = createSessions({ store: slowCreateStore(80) });
    const steps: string[] = [];
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    const server = createServer(
      withSessions(sessions, async (req, res) => {
        (await getSession(req)).set('x', 1);
        const accepted = res.write('chunk '.repeat(Math.ceil(res.writableHighWaterMark / 6)));
        steps.push(`write ${accepted} headersSent ${res.headersSent}`);
        if (!accepted) await once(res, 'drain');
        res.end('done');
        steps.push('handler finished');
        finished();
      }),
    );
    const app = await listen(server);
    try {
      const controller = new AbortController();
      const pending = fetch(app.url, { signal: controller.signal }).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 20));
      controller.abort();
      await pending;
      await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error(`stuck: ${steps.join(', ')}`)), 2000))]);
      assert.deepEqual(steps, ['write false headersSent true', 'handler finished']);
    } finally {
      server.closeAllConnections(); // the aborted fetch leaves its socket to undici's keep-alive
      await app.close();
    }
  });

  it('reports the status of a held writeHead and writableEnded of a held end, as Node would without the hook', async () => {
    const sessions = createSessions({ store: slowCreateStore(40) });
    const seen: Record<string, unknown> = {};
    let handlerDone!: () => void;
    const done = new Promise<void>((resolve) => (handlerDone = resolve));
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          (await getSession(req)).set('x', 1);
          res.writeHead(201, 'Made', { 'Content-Type': 'text/plain' }); // held: the create takes 40 ms
          seen.afterHead = [res.statusCode, res.statusMessage, res.headersSent, res.writableEnded];
          res.end('made');
          seen.afterEnd = [res.statusCode, res.writableEnded, Object.prototype.hasOwnProperty.call(res, 'writableEnded')];
          if (!res.writableEnded) res.end('a fallback that must not run');
          await once(res, 'finish');
          seen.afterFinish = [res.writableEnded, Object.prototype.hasOwnProperty.call(res, 'writableEnded')];
          handlerDone();
        }),
      ),
    );
    try {
      const res = await fetch(app.url);
      assert.equal(res.status, 201);
      assert.equal(res.statusText, 'Made');
      assert.equal(await res.text(), 'made');
      assert.equal(res.headers.getSetCookie().length, 1);
      await done;
      assert.deepEqual(seen, {
        afterHead: [201, 'Made', true, false],
        afterEnd: [201, true, true],
        afterFinish: [true, false],
      });
    } finally {
      await app.close();
    }
  });

  it("gives a held writeHead without a reason phrase Node's own phrase at once", async () => {
    const sessions = createSessions({ store: slowCreateStore(20) });
    let seen: unknown;
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          (await getSession(req)).set('x', 1);
          res.writeHead(404);
          seen = [res.statusCode, res.statusMessage];
          res.end();
        }),
      ),
    );
    try {
      const res = await fetch(app.url);
      assert.equal(res.status, 404);
      assert.equal(res.statusText, 'Not Found');
      await res.text();
      assert.deepEqual(seen, [404, 'Not Found']);
    } finally {
      await app.close();
    }
  });

  it('answers 500 when a held writeHead has a reason phrase Node refuses, with a synchronous or a slow store', async () => {
    const uncaught = captureUncaught();
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    const errors = console.error;
    console.error = () => undefined; // the default answer logs the unexpected 500
    try {
      for (const store of [memoryStore({ sweepInterval: 0 }), slowCreateStore(30)]) {
        const sessions = createSessions({ store });
        const app = await listen(
          createServer(
            withSessions(sessions, async (req, res) => {
              (await getSession(req)).set('n', 1);
              res.writeHead(200, 'Fine\r\nX-Injected: 1', { 'Content-Type': 'text/plain' });
              res.end('body');
            }),
          ),
        );
        try {
          const res = await fetch(app.url, { signal: AbortSignal.timeout(2000) });
          assert.equal(res.status, 500);
          assert.equal(res.headers.get('x-injected'), null);
          assert.deepEqual(res.headers.getSetCookie(), []);
          await res.text();
        } finally {
          await app.close();
        }
      }
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual([uncaught.errors, rejections], [[], []]);
    } finally {
      console.error = errors;
      uncaught.stop();
      process.off('unhandledRejection', onRejection);
    }
  });

  it('keeps headersSent true while either of two engines on one response holds it', async () => {
    const first = createSessions({ store: slowCreateStore(40), cookie: { name: 'a' } });
    const second = createSessions({ store: slowCreateStore(40), cookie: { name: 'b' } });
    const seen: boolean[] = [];
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const app = await listen(
      createServer(async (req, res) => {
        (await attachSession(first, req, res).load()).set('x', 1);
        res.writeHead(200, { 'Content-Type': 'text/plain' }); // held by the first engine's hook
        seen.push(res.headersSent);
        (await attachSession(second, req, res).load()).set('y', 2);
        res.write('part-'); // held by the second, which then passes it on to the first
        seen.push(res.headersSent);
        await sleep(60); // the second has committed; the first is committing now
        seen.push(res.headersSent);
        await sleep(60);
        seen.push(res.headersSent, Object.prototype.hasOwnProperty.call(res, 'headersSent'));
        res.end('end');
      }),
    );
    try {
      const res = await fetch(app.url);
      assert.equal(await res.text(), 'part-end');
      assert.deepEqual(res.headers.getSetCookie().map((c) => c.split('=')[0]).sort(), ['a', 'b']);
      assert.deepEqual(seen, [true, true, true, true, false]);
    } finally {
      await app.close();
    }
  });

  it('lets a large body the app ended go out whole when the handler throws afterwards', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const big = 'x'.repeat(4 * 1024 * 1024);
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          const session = await getSession(req);
          session.set('n', (session.get('n', 0) as number) + 1);
          res.end(big);
          throw new Error('late failure after end');
        }),
      ),
    );
    try {
      const first = await fetch(app.url);
      assert.equal((await first.text()).length, big.length);
      const cookie = (first.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
      const again = await fetch(app.url, { headers: { cookie } }); // an existing session: sent at once
      assert.equal((await again.text()).length, big.length);
    } finally {
      await app.close();
    }
  });

  it('answers 500 when replaying the held response fails after an asynchronous commit', async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    const store: Store = { ...inner, create: async (record) => inner.create(record) };
    const sessions = createSessions({ store });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          (await getSession(req)).set('n', 1);
          res.writeHead(200, { 'X-Bad': 'line\nbreak' }); // rejected by Node only when really sent
          res.end('never');
        }),
      ),
    );
    try {
      const res = await fetch(app.url);
      assert.equal(res.status, 500);
      assert.deepEqual(res.headers.getSetCookie(), []);
      assert.equal((await fetch(app.url)).status, 500, 'the server is still up');
    } finally {
      await app.close();
    }
  });

  it('answers 413 when the session as a whole outgrows maxDataSize at commit, writing nothing', async () => {
    const store = memoryStore({ sweepInterval: 0 });
    const sessions = createSessions({ store, maxDataSize: 1000 });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          const session = await getSession(req);
          for (let i = 0; i < 5; i++) session.set(`k${i}`, 'x'.repeat(300)); // each fits, together they don't
          res.end('ok');
        }),
      ),
    );
    try {
      const res = await fetch(app.url);
      assert.equal(res.status, 413);
      assert.deepEqual(res.headers.getSetCookie(), []);
      assert.equal(store.size, 0);
    } finally {
      await app.close();
    }
  });

  it('answers a handler that throws a store error with 503 and other errors with 500', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const { StoreError } = await import('../../src/errors.js');
    const app = await listen(
      createServer(
        withSessions(sessions, async (req) => {
          if (req.url === '/store') throw new StoreError('memory', 'get', new Error('down'));
          throw new Error('bug');
        }),
      ),
    );
    try {
      assert.equal((await fetch(app.url + '/store')).status, 503);
      assert.equal((await fetch(app.url + '/bug')).status, 500);
    } finally {
      await app.close();
    }
  });

  it("sends a valid response when Node's own end, write or writeHead path was read before the session was first used", async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    // The same store answering through promises, as a networked store does.
    const promised: Store = { ...inner, name: 'promised-memory', get: async (id) => inner.get(id), update: async (id, patch) => inner.update(id, patch) };
    for (const store of [inner, promised]) {
      const sessions = createSessions({ store, context: false });
      const bump = (session: Session) => {
        const n = (session.get('n', 0) as number) + 1;
        session.set('n', n);
        return n;
      };
      const app = await listen(
        createServer(
          withSessions(sessions, async (req, res) => {
            // `res.end` / `res.write` are read before the await inside their argument runs.
            if (req.url === '/end') res.end(`n=${bump(await getSession(req))}`);
            else if (req.url === '/write') {
              res.write(`n=${bump(await getSession(req))}`);
              res.end(';');
            } else if (req.url === '/head') {
              const end = res.end as (this: typeof res, chunk: string) => typeof res;
              const n = bump(await getSession(req));
              res.writeHead(201, { 'X-App': 'yes' }); // held by the hook, then sent by Node's own end
              end.call(res, `n=${n}`);
            } else if (req.url === '/seed') {
              const session = await getSession(req);
              session.set('n', 1);
              res.end('seeded');
            } else {
              const session = await getSession(req);
              res.end(String(session.get('n', 0)));
            }
          }),
        ),
      );
      try {
        // A first visit: valid, though its cookie cannot follow (creating is asynchronous).
        const firstVisit = await rawRequest(app.url, 'GET', '/end');
        assert.equal(firstVisit.status, 200, `${store.name}: ${JSON.stringify(firstVisit.text)}`);
        assert.ok(firstVisit.complete);
        assert.equal(firstVisit.body, 'n=1');
        // The usual inline read-modify-write of an existing session: saved, the response intact.
        const seeded = await fetch(`${app.url}/seed`);
        await seeded.text();
        const cookie = (seeded.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
        for (const [path, status, body] of [
          ['/end', 200, 'n=2'],
          ['/write', 200, 'n=3;'],
          ['/head', 201, 'n=4'],
        ] as const) {
          const exchange = await rawRequest(app.url, 'GET', path, { Cookie: cookie });
          const what = `${store.name} ${path}: ${JSON.stringify(exchange.text)}`;
          assert.equal(exchange.status, status, what);
          assert.ok(exchange.complete, what);
          assert.equal(exchange.body, body, what);
          assert.match(exchange.headers['vary']?.join() ?? '', /Cookie/, what);
          if (path === '/head') assert.deepEqual(exchange.headers['x-app'], ['yes']);
          if (store === promised) await new Promise((resolve) => setTimeout(resolve, 20)); // saved after the head went
        }
        assert.equal((await rawRequest(app.url, 'GET', '/read', { Cookie: cookie })).body, '4', store.name);
      } finally {
        await app.close();
      }
    }
  });

  it("sends writes the hook held before the body of Node's own end, with one or two engines on the response", async () => {
    const first = createSessions({ store: slowCreateStore(20) });
    const second = createSessions({ store: slowCreateStore(20), cookie: { name: 'b' } });
    const app = await listen(
      createServer(async (req, res) => {
        const end = res.end as (this: typeof res, chunk: string) => typeof res; // taken before any hook
        (await attachSession(first, req, res).load()).set('x', 1);
        if (req.url === '/two') {
          res.writeHead(202, { 'X-A': '1' }); // held by the first engine's hook
          (await attachSession(second, req, res).load()).set('y', 1);
        }
        res.write('held-'); // held while the new session is created
        end.call(res, 'last');
      }),
    );
    try {
      for (const [path, status] of [
        ['/one', 200],
        ['/two', 202],
      ] as const) {
        const exchange = await rawRequest(app.url, 'GET', path);
        assert.equal(exchange.status, status, JSON.stringify(exchange.text));
        assert.ok(exchange.complete, JSON.stringify(exchange.text));
        assert.equal(exchange.body, 'held-last');
        if (path === '/two') assert.deepEqual(exchange.headers['x-a'], ['1']);
      }
    } finally {
      await app.close();
    }
  });

  it("commits in Node's own end when the store answers synchronously, so a new session's cookie goes out", async () => {
    // The cookie store seals the session into the cookie: its commit never waits.
    const sessions = createSessions({ store: cookieStore({ secrets: ['inline-secret-inline-secret-inline-0123'] }) });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          if (req.url === '/read') return void res.end(String((await getSession(req)).get('n', 0)));
          res.end(`n=${(await getSession(req)).set('n', 1).get('n')}`);
        }),
      ),
    );
    try {
      const exchange = await rawRequest(app.url, 'GET', '/visit');
      assert.equal(exchange.status, 200, JSON.stringify(exchange.text));
      assert.ok(exchange.complete);
      assert.equal(exchange.body, 'n=1');
      const cookie = (exchange.headers['set-cookie'] ?? []).find((c) => c.startsWith('sid='))?.split(';')[0];
      assert.ok(cookie, JSON.stringify(exchange.text));
      assert.equal(await (await fetch(`${app.url}/read`, { headers: { cookie } })).text(), '1');
    } finally {
      await app.close();
    }
  });

  it("closes the connection when the commit in Node's own end fails synchronously, and tells onError", async () => {
    const store = instrument(memoryStore({ sweepInterval: 0 }));
    const sessions = createSessions({ store });
    const told: Array<{ message: string; destroyed: boolean }> = [];
    const app = await listen(
      createServer(
        withSessions(
          sessions,
          async (req, res) => {
            if (req.url === '/seed') {
              (await getSession(req)).set('n', 1);
              return void res.end('seeded');
            }
            res.end(`n=${(await getSession(req)).set('n', 2).get('n')}`);
          },
          { onError: (error, _req, res) => void told.push({ message: (error as Error).message, destroyed: res.destroyed }) },
        ),
      ),
    );
    try {
      const seeded = await fetch(`${app.url}/seed`);
      await seeded.text();
      const cookie = (seeded.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
      store.fault = 'throw';
      store.faultOnly = ['update'];
      const exchange = await rawRequest(app.url, 'GET', '/bump', { Cookie: cookie });
      assert.ok(!exchange.complete, JSON.stringify(exchange.text));
      assert.ok(!exchange.text.includes('n=2'), JSON.stringify(exchange.text));
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(told.length, 1);
      assert.match(told[0]!.message, /injected update failure/);
      assert.equal(told[0]!.destroyed, true, 'closed before onError hears of it');
      store.fault = 'none';
      assert.equal((await fetch(`${app.url}/seed`)).status, 200, 'the server is still up');
    } finally {
      await app.close();
    }
  });

  it('keeps holding for a wrapper installed above the hook that asks for the head first (compression-style)', async () => {
    const sessions = createSessions({ store: slowCreateStore(20) });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          (await getSession(req)).set('n', 1); // the hook is installed here
          // Wrappers installed after it, as compression mounted after an eager session installs
          // its own: each asks for the head (Node's _implicitHeader) before calling ours.
          const { write, end } = res;
          const implicitHeader = (response: typeof res) => (response as unknown as { _implicitHeader(): void })._implicitHeader();
          res.write = function compressingWrite(this: typeof res, chunk: unknown) {
            if (!res.headersSent) implicitHeader(this);
            return (write as (this: typeof res, chunk: unknown) => boolean).call(this, chunk);
          } as typeof res.write;
          res.end = function compressingEnd(this: typeof res, chunk?: unknown) {
            if (!res.headersSent) implicitHeader(this);
            return (end as (this: typeof res, chunk?: unknown) => typeof res).call(this, chunk);
          } as typeof res.end;
          res.end('ok');
        }),
      ),
    );
    try {
      const res = await fetch(app.url);
      assert.equal(await res.text(), 'ok');
      assert.match(res.headers.getSetCookie()[0] ?? '', /^sid=/);
    } finally {
      await app.close();
    }
  });

  it('holds the end of a response whose head went out before the session was used until the save settles', async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    const store: Store = { ...inner, update: (id, patch) => new Promise((resolve) => setTimeout(() => resolve(inner.update(id, patch)), 60)) };
    const sessions = createSessions({ store });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          const session = req.url === '/progress' ? null : await getSession(req);
          if (session) {
            if (req.url === '/seed') session.set('n', 0);
            return void res.end(String(session.get('n', 0)));
          }
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          res.write('working...\n');
          const late = await getSession(req);
          late.set('n', (late.get('n', 0) as number) + 1);
          res.end('done\n');
        }),
      ),
    );
    try {
      const seeded = await fetch(`${app.url}/seed`);
      await seeded.text();
      const headers = { cookie: (seeded.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '' };
      for (let i = 1; i <= 3; i++) {
        assert.equal(await (await fetch(`${app.url}/progress`, { headers })).text(), 'working...\ndone\n');
        assert.equal(await (await fetch(`${app.url}/read`, { headers })).text(), String(i), 'saved before the response ended');
      }
    } finally {
      await app.close();
    }
  });

  it('cuts short a response whose head went out before the session was used when its save fails, and tells onError', async () => {
    const inner = instrument(memoryStore({ sweepInterval: 0 }));
    const store: Store = { ...inner, update: (id, patch) => new Promise((resolve) => setTimeout(resolve, 20)).then(() => inner.update(id, patch)) };
    const sessions = createSessions({ store });
    const told: Array<{ message: string; destroyed: boolean }> = [];
    const app = await listen(
      createServer(
        withSessions(
          sessions,
          async (req, res) => {
            if (req.url === '/seed') {
              (await getSession(req)).set('n', 0);
              return void res.end('seeded');
            }
            res.writeHead(200, { 'Content-Type': 'text/plain' });
            res.write('working...\n');
            (await getSession(req)).set('n', 1);
            res.end('done\n');
          },
          { onError: (error, _req, res) => void told.push({ message: (error as Error).message, destroyed: res.destroyed }) },
        ),
      ),
    );
    try {
      const seeded = await fetch(`${app.url}/seed`);
      await seeded.text();
      const cookie = (seeded.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
      inner.fault = 'reject';
      inner.faultOnly = ['update'];
      const exchange = await rawRequest(app.url, 'GET', '/bump', { Cookie: cookie });
      assert.equal(exchange.status, 200);
      assert.ok(!exchange.complete, `a truncated response, not a clean one: ${JSON.stringify(exchange.text)}`);
      assert.ok(!exchange.body.includes('done'));
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(told.length, 1);
      assert.match(told[0]!.message, /injected update failure/);
      assert.equal(told[0]!.destroyed, true, 'closed before onError hears of it');
    } finally {
      await app.close();
    }
  });
  it('adds Cookie to a Vary header the app holds as an array: new session, saved session and streamed body', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const uncaught = captureUncaught();
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          const session = await getSession(req);
          session.set('n', (session.get('n', 0) as number) + 1);
          res.setHeader('Vary', ['Accept-Encoding', 'Origin']); // as res.append / setHeader([...]) leave it
          if (req.url === '/stream') Readable.from(['a', 'b']).pipe(res);
          else if (req.url === '/head') res.writeHead(200, { Vary: ['Accept', 'Origin'] }).end('ok');
          else res.end('ok');
        }),
      ),
    );
    try {
      const cookie = await seedCookie(app.url); // a new session: created asynchronously
      for (const [path, vary] of [['/', 'Accept-Encoding, Origin, Cookie'], ['/stream', 'Accept-Encoding, Origin, Cookie'], ['/head', 'Accept, Origin, Cookie']]) {
        const res = await fetch(app.url + path, { headers: { cookie }, signal: AbortSignal.timeout(2000) }); // saved synchronously
        assert.equal(res.status, 200, path);
        assert.equal(res.headers.get('vary'), vary, path);
        assert.ok(['ok', 'ab'].includes(await res.text()), path);
      }
      const fresh = await fetch(app.url, { signal: AbortSignal.timeout(2000) });
      assert.equal(fresh.status, 200);
      assert.equal(fresh.headers.get('vary'), 'Accept-Encoding, Origin, Cookie');
      assert.match(fresh.headers.getSetCookie()[0] ?? '', /^sid=/);
      assert.deepEqual(uncaught.errors, []);
    } finally {
      uncaught.stop();
      await app.close();
    }
    assert.equal(varyWithCookie(['Origin', 'cookie']), 'Origin, cookie');
    assert.equal(varyWithCookie(7), '7, Cookie');
  });

  it('answers 500 when replaying the held response fails within a synchronous commit, instead of hanging', async () => {
    const store = memoryStore({ sweepInterval: 0 });
    const sessions = createSessions({ store });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          const session = await getSession(req);
          session.set('n', (session.get('n', 0) as number) + 1);
          if (req.url === '/bad') res.writeHead(200, { 'X-Name': 'a\u0000b' }); // Node refuses it only when really sent
          res.end('body');
        }),
      ),
    );
    try {
      const cookie = await seedCookie(app.url);
      // An existing session on the memory store: the save, and so the replay, run inside res.end().
      const res = await fetch(`${app.url}/bad`, { headers: { cookie }, signal: AbortSignal.timeout(2000) });
      assert.equal(res.status, 500);
      assert.deepEqual(res.headers.getSetCookie(), []);
      assert.equal((await fetch(app.url, { headers: { cookie }, signal: AbortSignal.timeout(2000) })).status, 200, 'the server is still up');
    } finally {
      await app.close();
    }
  });

  it('closes a session first used after an await that follows the end of the response, within the handler', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    let report!: (outcome: unknown) => void;
    const outcome = new Promise<unknown>((resolve) => (report = resolve));
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          res.end('accepted');
          await new Promise((resolve) => setTimeout(resolve, 5));
          const session = await getSession(req);
          try {
            session.set('n', 2);
            report('set accepted (and lost)');
          } catch (error) {
            report(error);
          }
        }),
      ),
    );
    try {
      const res = await fetch(app.url);
      assert.equal(await res.text(), 'accepted');
      const seen = await outcome;
      assert.ok(seen instanceof HeadersSentError, String(seen));
    } finally {
      await app.close();
    }
  });

  it('closes a session first used after the handler ended its response: a change throws HeadersSentError, reading works', async () => {
    const store = memoryStore({ sweepInterval: 0 });
    const sessions = createSessions({ store });
    const late: { read?: unknown; error?: unknown } = {};
    let settled!: () => void;
    const done = new Promise<void>((resolve) => (settled = resolve));
    const app = await listen(
      createServer(
        withSessions(sessions, (req, res) => {
          if (req.url === '/seed') {
            return getSession(req).then((session) => {
              session.set('n', 1);
              res.end('seeded');
            });
          }
          if (req.url === '/show') return getSession(req).then((session) => void res.end(JSON.stringify(session.toJSON())));
          res.end('accepted'); // answer first, then record in the session
          setTimeout(() => {
            void getSession(req)
              .then((session) => {
                late.read = session.get('n');
                session.set('n', 2);
              })
              .catch((error: unknown) => (late.error = error))
              .finally(settled);
          }, 10);
          return undefined;
        }),
      ),
    );
    try {
      const cookie = await seedCookie(`${app.url}/seed`);
      const res = await fetch(`${app.url}/work`, { headers: { cookie } });
      assert.equal(await res.text(), 'accepted');
      assert.deepEqual(res.headers.getSetCookie(), []);
      await done;
      assert.equal(late.read, 1);
      assert.ok(late.error instanceof HeadersSentError, String(late.error));
      assert.equal(await (await fetch(`${app.url}/show`, { headers: { cookie } })).text(), '{"n":1}');
    } finally {
      await app.close();
    }
  });

  it('tells onError of an error the handler throws after ending its response, leaving the response as sent', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const told: string[] = [];
    const app = await listen(
      createServer(
        withSessions(
          sessions,
          async (req, res) => {
            if (req.url === '/session') (await getSession(req)).set('n', 1); // a new session: its end is held for the create
            res.end('ok');
            await Promise.resolve();
            throw new Error(`audit failed ${req.url}`);
          },
          {
            onError: (error, _req, res) => {
              told.push((error as Error).message);
              res.statusCode = 500;
              res.end('must not be sent'); // dropped: the response had ended
            },
          },
        ),
      ),
    );
    try {
      for (const path of ['/plain', '/session']) {
        const res = await fetch(app.url + path);
        assert.equal(res.status, 200, path);
        assert.equal(await res.text(), 'ok', path);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(told, ['audit failed /plain', 'audit failed /session']);
    } finally {
      await app.close();
    }
  });

  it('without onError, warns once per process (COATCHECK_ERROR_AFTER_END) of an error thrown after the response ended', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = await listen(
      createServer(
        withSessions(sessions, (_req, res) => {
          res.end('ok');
          throw new Error('thrown after end');
        }),
      ),
    );
    try {
      for (let i = 0; i < 2; i++) assert.equal(await (await fetch(app.url)).text(), 'ok');
      await new Promise((resolve) => setTimeout(resolve, 20));
      const warned = processWarnings.filter((warning) => (warning as { code?: string }).code === 'COATCHECK_ERROR_AFTER_END');
      assert.equal(warned.length, 1);
      assert.match(warned[0]!.message, /a handler failed after its response had ended/);
    } finally {
      await app.close();
    }
  });
});
