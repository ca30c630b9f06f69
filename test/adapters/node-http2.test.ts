/**
 * The node adapter (and Koa, which uses its response hook) on `node:http2`'s compatibility API.
 * Its responses differ from HTTP/1's where the hook reaches in: `end(chunk)` sends the chunk
 * through `this.write`, `headersSent` lives on the stream, the host is `:authority`, and a status
 * message is refused with a warning. The whole adapter scenario suite runs over cleartext HTTP/2.
 */
import assert from 'node:assert/strict';
import { createServer, createSecureServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type SecureServerOptions } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import Koa from 'koa';
import { csrfRequest, getSession, withSessions } from '../../src/adapters/node.js';
import { getSession as koaGetSession, koaSessions } from '../../src/adapters/koa.js';
import { createSessions, type Sessions, verifyCsrf } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { JsonValue } from '../../src/types.js';
import { http2Fetch } from '../helpers/http2-fetch.js';
import { slowCreateStore } from '../helpers/slow-create.js';
import { betweenMounts, scenarioRoute } from './scenario-app.js';
import { runAdapterScenarios, type RunningApp } from './scenarios.js';
import { nestedNodeHandler, nodeScenarioHandler } from './node-scenario-app.js';

const warnings: Error[] = [];
process.on('warning', (warning) => warnings.push(warning));
after(() => {
  // Setting or reading a status message on an HTTP/2 response warns each time.
  assert.deepEqual(warnings.filter((w) => /Status message is not supported/.test(w.message)).map((w) => w.message), []);
});

async function listen(server: Http2Server): Promise<RunningApp> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = http2Fetch(url);
  return {
    url,
    fetch: client.fetch,
    close: async () => {
      await client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

runAdapterScenarios(
  'node:http2 (compatibility API)',
  (sessions) => listen(createServer(withSessions(sessions, nodeScenarioHandler))),
  // A wrapped handler called from a wrapped one.
  (engines) => listen(createServer(nestedNodeHandler<Http2ServerRequest, Http2ServerResponse>(engines))),
);

function koaApp(engines: Sessions<Record<string, JsonValue>>[]): Promise<RunningApp> {
  const app = new Koa();
  app.silent = true;
  engines.forEach((sessions, i) => {
    if (i > 0) app.use((ctx, next) => betweenMounts(() => koaGetSession(ctx)).then(next));
    app.use(koaSessions(sessions));
  });
  app.use(async (ctx) => {
    const reply = await scenarioRoute(ctx.method, new URL(ctx.url, 'http://localhost'), () => koaGetSession(ctx));
    if (reply.appCookie) ctx.cookies.set('theme', 'dark', { httpOnly: false });
    if (reply.cacheControl) ctx.set('Cache-Control', reply.cacheControl);
    ctx.status = reply.status;
    ctx.body = reply.body;
  });
  return listen(createServer(app.callback()));
}

runAdapterScenarios('koa on node:http2', async (sessions) => koaApp([sessions]), koaApp);

describe('node adapter on node:http2', () => {
  for (const [kind, store] of [
    ['a synchronous store', () => memoryStore({ sweepInterval: 0 })],
    ['a store that answers later', () => slowCreateStore(30)],
  ] as const) {
    it(`sends the body given to end() with the session cookie (${kind})`, async () => {
      const sessions = createSessions({ store: store() });
      const app = await listen(
        createServer(
          withSessions(sessions, async (req, res) => {
            const session = await getSession(req);
            if (req.url === '/login') session.set('user', 'alice');
            res.end(`hello ${String(session.get('user', 'nobody'))}`);
          }),
        ),
      );
      try {
        const login = await app.fetch!(`${app.url}/login`);
        assert.equal(await login.text(), 'hello alice');
        const cookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
        assert.match(cookie, /^sid=/);
        const again = await app.fetch!(`${app.url}/me`, { headers: { cookie } });
        assert.equal(await again.text(), 'hello alice');
      } finally {
        await app.close();
        await sessions.close();
      }
    });
  }

  it('saves a session first used after the head went out, and sends the whole body', async () => {
    const store = slowCreateStore(20);
    const sessions = createSessions({ store });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('head out; ');
          (await getSession(req)).set('late', true);
          res.end('done');
        }),
      ),
    );
    try {
      const res = await app.fetch!(`${app.url}/`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'head out; done');
      assert.deepEqual(res.headers.getSetCookie(), []); // no head left to carry it
    } finally {
      await app.close();
      await sessions.close();
    }
  });

  it('res.end taken before the session is used (res.end(await f())): sent when the save answers at once, else reset with a warning, never an empty 200', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req: Http2ServerRequest, res: Http2ServerResponse) => {
          if (req.url === '/seed') {
            (await getSession(req)).set('user', 'seeded');
            return void res.end('seeded');
          }
          if (req.url === '/read') return void res.end(await (async () => `hello ${String((await getSession(req)).get('user', 'nobody'))}`)());
          const greet = async () => {
            const session = await getSession(req);
            session.set('visits', Number(session.get('visits', 0)) + 1);
            return `hello ${String(session.get('user', 'nobody'))}`;
          };
          res.end(await greet());
        }),
      ),
    );
    try {
      // A guest who only reads has nothing to save: the body goes out.
      assert.equal(await (await app.fetch!(`${app.url}/read`)).text(), 'hello nobody');
      // A new session's record is created asynchronously: the response is reset, not sent empty.
      await assert.rejects(app.fetch!(`${app.url}/`), /NGHTTP2_INTERNAL_ERROR|ERR_HTTP2_STREAM_ERROR/);
      assert.ok(warnings.some((w) => /res\.end was called through a reference taken before the session was first used/.test(w.message)));
      // A known session on a synchronous store is saved at once: the body goes out.
      const seed = await app.fetch!(`${app.url}/seed`);
      await seed.text();
      const cookie = (seed.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
      const known = await app.fetch!(`${app.url}/`, { headers: { cookie } });
      assert.equal(await known.text(), 'hello seeded');
    } finally {
      await app.close();
      await sessions.close();
    }
  });

  it('checks CSRF against the :authority the client used', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const app = await listen(
      createServer(
        withSessions(sessions, async (req, res) => {
          const session = await getSession(req);
          if (req.method === 'GET') return void res.end(session.csrfToken());
          const check = await verifyCsrf(session, csrfRequest(req));
          res.statusCode = check.ok ? 200 : 403;
          res.end(check.ok ? 'ok' : check.reason);
        }),
      ),
    );
    try {
      const page = await app.fetch!(`${app.url}/form`);
      const token = await page.text();
      const cookie = (page.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
      const post = (origin: string) => app.fetch!(`${app.url}/submit`, { method: 'POST', headers: { cookie, origin, 'x-csrf-token': token } });
      const same = await post(app.url);
      assert.equal(same.status, 200, await same.text());
      const cross = await post('http://evil.example');
      assert.equal(cross.status, 403);
      await cross.text();
    } finally {
      await app.close();
      await sessions.close();
    }
  });

  it('names the cookie __Host- and marks it Secure over TLS', async () => {
    const { key, cert } = await selfSigned();
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const options: SecureServerOptions = { key, cert, allowHTTP1: false };
    const server = createSecureServer(
      options,
      withSessions(sessions, async (req, res) => {
        (await getSession(req)).set('a', 1);
        res.end('ok');
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { connect } = await import('node:http2');
    const client = connect(`https://127.0.0.1:${(server.address() as AddressInfo).port}`, { rejectUnauthorized: false });
    try {
      const head = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const stream = client.request({ ':path': '/' });
        stream.on('response', (h) => resolve(h as Record<string, unknown>));
        stream.on('error', reject);
        stream.resume();
        stream.end();
      });
      const cookie = String((head['set-cookie'] as string[])[0]);
      assert.match(cookie, /^__Host-sid=/);
      assert.match(cookie, /; Secure/);
    } finally {
      client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await sessions.close();
    }
  });
});

/** A throwaway self-signed certificate from the system's openssl (Debian's, always present). */
async function selfSigned(): Promise<{ key: string; cert: string }> {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'coatcheck-h2-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
