/**
 * The demo's JSON API over real HTTP on loopback: the app runs in-process on an instrumented
 * SQLite store (so "no store call" claims are counted), plus the entry point as a child process,
 * the configuration and the development secret.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createDemoApp, type DemoApp } from '../../demo/app.js';
import { readConfig, storeDisplay } from '../../demo/config.js';
import { describeBrowser } from '../../demo/devices.js';
import { resolveSecret } from '../../demo/secret.js';
import { sqliteStore } from '../../src/stores/sqlite.js';
import { runDemoToExit, startDemo } from '../e2e/demo-process.js';
import { instrument, type InstrumentedStore } from '../helpers/instrumented-store.js';
import { startPrivateRedis } from '../helpers/private-redis.js';

interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown> & { error?: string };
  text: string;
  setCookie: string[];
}

/** One API client with its own cookie and CSRF token, like one script on one machine. */
class Client {
  cookie: string | null = null;
  token: string | null = null;

  constructor(
    readonly base: string,
    readonly userAgent = 'api-test/1.0',
  ) {}

  async call(
    method: string,
    path: string,
    options: { json?: unknown; raw?: string; token?: string | null; headers?: Record<string, string>; cookie?: string | null } = {},
  ): Promise<Reply> {
    const headers: Record<string, string> = { 'user-agent': this.userAgent, ...options.headers };
    const cookie = options.cookie === undefined ? this.cookie : options.cookie;
    if (cookie) headers.cookie = cookie;
    const token = options.token === undefined ? this.token : options.token;
    if (token) headers['x-csrf-token'] = token;
    let body: string | undefined;
    if (options.json !== undefined) body = JSON.stringify(options.json);
    if (options.raw !== undefined) body = options.raw;
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(this.base + path, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    const setCookie = res.headers.getSetCookie();
    for (const line of setCookie) {
      const [pair = ''] = line.split(';');
      if (!/^(__Host-)?sid=/.test(pair)) continue;
      this.cookie = pair.endsWith('=') || /Max-Age=0/.test(line) ? null : pair;
    }
    const text = await res.text();
    // A HEAD answer has the JSON content type but no body.
    const parsed = text !== '' && (res.headers.get('content-type') ?? '').startsWith('application/json') ? (JSON.parse(text) as Reply['body']) : {};
    if (typeof parsed.csrfToken === 'string') this.token = parsed.csrfToken;
    return { status: res.status, headers: res.headers, body: parsed, text, setCookie };
  }

  /** GET /api/session: gets a cookie and the CSRF token. */
  session(): Promise<Reply> {
    return this.call('GET', '/api/session');
  }

  async login(user: string): Promise<Reply> {
    if (!this.token) await this.session();
    const reply = await this.call('POST', '/api/login', { json: { user } });
    assert.equal(reply.status, 200, reply.text);
    return reply;
  }
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const quiet = { error: () => undefined, warn: () => undefined };

describe('demo JSON API', () => {
  let dir: string;
  let store: InstrumentedStore;
  let app: DemoApp;
  let server: Server;
  let base: string;
  let db: Database.Database;
  const client = (userAgent?: string) => new Client(base, userAgent);
  const rows = () => (db.prepare('SELECT count(*) AS n FROM coatcheck_sessions').get() as { n: number }).n;
  /** What the app logged as an error (a failed request's stack, a store failure). */
  const logged: unknown[][] = [];
  const log = { error: (...args: unknown[]) => void logged.push(args), warn: () => undefined };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'coatcheck-demo-api-'));
    store = instrument(sqliteStore({ path: join(dir, 'sessions.db') }));
    app = createDemoApp({ store, sweepInterval: 0, log });
    server = createServer(app.handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    db = new Database(join(dir, 'sessions.db'), { readonly: true });
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    db.close();
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('GET /healthz answers ok without a store call or a cookie, with or without a session cookie', async () => {
    const c = client();
    await c.call('POST', '/api/counter', { token: (await c.session()).body.csrfToken as string });
    const before = rows();
    for (const cookie of [null, c.cookie]) {
      store.resetCounts();
      const reply = await c.call('GET', '/healthz', { cookie });
      assert.equal(reply.status, 200);
      assert.equal(reply.text, 'ok');
      assert.deepEqual(reply.setCookie, []);
      assert.equal(store.totalCalls(), 0, JSON.stringify(store.calls));
    }
    assert.equal(rows(), before);
  });

  it('GET /api/session returns user, data, csrfToken and expiresAt, and sets the documented cookie', async () => {
    const c = client();
    const first = await c.session();
    assert.equal(first.status, 200);
    assert.deepEqual(Object.keys(first.body).sort(), ['csrfToken', 'data', 'expiresAt', 'user']);
    assert.equal(first.body.user, null);
    assert.deepEqual(first.body.data, {});
    assert.match(first.body.csrfToken as string, /^[A-Za-z0-9_-]{20,}$/);
    assert.match(first.body.expiresAt as string, ISO);
    const expires = Date.parse(first.body.expiresAt as string) - Date.now();
    assert.ok(expires > 3590_000 && expires <= 3600_000, 'the default idle timeout: an hour');
    assert.equal(first.setCookie.length, 1);
    assert.match(first.setCookie[0]!, /^sid=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax$/);
    assert.equal(first.headers.get('cache-control'), 'no-store');
    assert.match(first.headers.get('vary') ?? '', /Cookie/);

    const again = await c.session();
    assert.equal(again.body.csrfToken, first.body.csrfToken, 'one token for the life of the session');
    assert.deepEqual(again.setCookie, [], 'an unchanged session sends no cookie');
  });

  it('refuses unsafe requests without the session\'s CSRF token with 403 and a message', async () => {
    const c = client();
    await c.session();
    const other = client();
    await other.session();
    const cases: [string, string, { token?: string | null; headers?: Record<string, string> }][] = [
      ['POST', '/api/counter', { token: null }],
      ['POST', '/api/counter', { token: 'not-the-token-at-all-aaaaaaaa' }],
      ['POST', '/api/counter', { token: other.token }],
      ['POST', '/api/counter', { headers: { origin: 'http://evil.example' } }],
      ['PUT', '/api/session/data/x', { token: null }],
      ['DELETE', '/api/session/data/x', { token: null }],
      ['POST', '/api/login', { token: null }],
      ['POST', '/api/flash', { token: null }],
      ['POST', '/api/sessions/revoke-others', { token: null }],
    ];
    for (const [method, path, options] of cases) {
      const reply = await c.call(method, path, { ...options, json: { user: 'mallory', message: 'x' } });
      assert.equal(reply.status, 403, `${method} ${path}`);
      assert.match(reply.body.error ?? '', /^Forbidden: .*x-csrf-token/);
    }
    const reply = await c.call('POST', '/api/counter', { token: null });
    assert.match(reply.body.error ?? '', /missing CSRF token/);
    assert.deepEqual((await c.session()).body.data, {}, 'nothing was changed');
    assert.equal((await c.call('POST', '/api/counter')).status, 200, 'with the token it passes');
  });

  it('POST /api/counter increments count in the session', async () => {
    const c = client();
    await c.session();
    assert.deepEqual((await c.call('POST', '/api/counter')).body, { count: 1 });
    assert.deepEqual((await c.call('POST', '/api/counter')).body, { count: 2 });
    assert.deepEqual((await c.session()).body.data, { count: 2 });
  });

  it('PUT and DELETE /api/session/data/:key store and remove any JSON value', async () => {
    const c = client();
    await c.session();
    const values: unknown[] = [{ dark: true, size: [1, 2] }, 'text', 0, null, false, ['a']];
    for (const value of values) {
      const reply = await c.call('PUT', '/api/session/data/theme', { json: value });
      assert.equal(reply.status, 200, reply.text);
      assert.deepEqual(reply.body.data, { theme: value });
    }
    assert.equal((await c.call('PUT', '/api/session/data/a%2Fb%20c', { json: 1 })).status, 200);
    assert.deepEqual((await c.session()).body.data, { theme: ['a'], 'a/b c': 1 });

    const removed = await c.call('DELETE', '/api/session/data/theme');
    assert.equal(removed.status, 200);
    assert.deepEqual(removed.body.data, { 'a/b c': 1 });
    const missing = await c.call('DELETE', '/api/session/data/theme');
    assert.equal(missing.status, 404);
    assert.match(missing.body.error ?? '', /no key "theme"/);
  });

  it('answers 400 for bodies that are not JSON or values a session can\'t hold, 413 for oversize ones', async () => {
    const c = client();
    await c.session();
    const bad: [string, number, RegExp][] = [
      ['{"unterminated', 400, /not valid JSON/],
      ['', 400, /expected a JSON body/],
      ['undefined', 400, /not valid JSON/],
      ['"nul \\u0000 inside"', 400, /not JSON/],
      [JSON.stringify('x'.repeat(20_000)), 413, /larger than 16384 bytes/],
    ];
    for (const [raw, status, message] of bad) {
      const reply = await c.call('PUT', '/api/session/data/k', { raw });
      assert.equal(reply.status, status, `${raw.slice(0, 20)}: ${reply.text}`);
      assert.match(reply.body.error ?? '', message);
    }
    assert.equal((await c.call('PUT', '/api/session/data/%E0%A4%A', { json: 1 })).status, 400);

    // Each body is fine, but together they would exceed the session's 64 KiB maxDataSize.
    for (let i = 0; i < 4; i++) assert.equal((await c.call('PUT', `/api/session/data/big${i}`, { json: 'y'.repeat(15_000) })).status, 200);
    const full = await c.call('PUT', '/api/session/data/big4', { json: 'y'.repeat(15_000) });
    assert.equal(full.status, 413);
    assert.match(full.body.error ?? '', /over its limit of 65536/);
    assert.equal(Object.keys((await c.session()).body.data as object).length, 4, 'the session still works');

    const login = await c.call('POST', '/api/login', { raw: 'user=alice' });
    assert.equal(login.status, 400);
    for (const json of [{}, { user: '' }, { user: 'x'.repeat(65) }, { user: 'a\u0007b' }, ['alice'], 'alice']) {
      assert.equal((await c.call('POST', '/api/login', { json })).status, 400, JSON.stringify(json));
    }
  });

  it('answers 413, not 500, when the engine\'s own metadata (CSRF token, flash messages) tips the session over its limit', async () => {
    const c = client();
    await c.login('frank');
    const form = (raw: string) => c.call('POST', '/note', { token: null, raw: `${raw}&csrf_token=${encodeURIComponent(c.token!)}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    // Four keys of 16,002 bytes each ("k0" + a JSON string of 16,000 x), then a filler that makes
    // the data alone exactly 65,536 bytes: it fits by the data, but the session's CSRF token doesn't.
    for (let i = 0; i < 4; i++) assert.equal((await c.call('PUT', `/api/session/data/k${i}`, { json: 'x'.repeat(16_000) })).status, 200);
    const room = 65_536 - 4 * (2 + 16_002) - 1 - 2;
    logged.length = 0;
    const over = await c.call('PUT', '/api/session/data/f', { json: 'y'.repeat(room) });
    assert.equal(over.status, 413, over.text);
    assert.match(over.body.error ?? '', /size limit/);
    assert.deepEqual(logged, [], 'a client error, not a failed request');
    assert.deepEqual(Object.keys((await c.session()).body.data as object), ['k0', 'k1', 'k2', 'k3'], 'nothing was saved');

    // With a little room left, a flash message or a form post (its note and flash) no longer fits.
    assert.equal((await c.call('PUT', '/api/session/data/f', { json: 'y'.repeat(room - 300) })).status, 200);
    const grown = await c.call('PUT', '/api/session/data/k0', { json: 'x'.repeat(16_350) });
    assert.equal(grown.status, 413, 'the data alone would be over the limit');
    assert.match(grown.body.error ?? '', /over its limit of 65536/);
    assert.equal(((await c.session()).body.data as Record<string, string>).k0?.length, 16_000, 'the old value stays');
    const flash = await c.call('POST', '/api/flash', { json: { message: 'm'.repeat(500) } });
    assert.equal(flash.status, 413, flash.text);
    assert.match(flash.body.error ?? '', /size limit/);
    const note = await form(`note=${'n'.repeat(280)}`);
    assert.equal(note.status, 413, note.text);
    assert.match(note.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(note.text, /size limit/);
    assert.deepEqual(logged, []);
    const after = await c.session();
    assert.equal(after.status, 200);
    assert.equal('note' in (after.body.data as object), false);
    assert.equal('flashes' in after.body, false, 'the refused flash was not queued');
  });

  it('does not log a request whose client hangs up mid-body as a failed request', async () => {
    const c = client();
    await c.session();
    logged.length = 0;
    const cut = new Promise<void>((resolve) => server.once('request', (_req, res) => res.once('close', () => resolve())));
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(
      `PUT /api/session/data/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${c.cookie}\r\nx-csrf-token: ${c.token}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"part',
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.destroy();
    await cut;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(logged, [], 'the client left; nothing failed');
    assert.equal('upload' in ((await c.session()).body.data as object), false, 'nothing was saved');
  });

  it('answers 400 for JSON nested deeper than a session accepts, without a stack in the log', async () => {
    const c = client();
    await c.session();
    logged.length = 0;
    for (const depth of [65, 5000]) {
      const reply = await c.call('PUT', '/api/session/data/deep', { raw: '['.repeat(depth) + ']'.repeat(depth) });
      assert.equal(reply.status, 400, `${depth}: ${reply.text}`);
      assert.match(reply.body.error ?? '', /nested deeper than 64 levels/);
    }
    assert.deepEqual(logged, []);
    assert.equal((await c.call('PUT', '/api/session/data/deep', { raw: '['.repeat(64) + ']'.repeat(64) })).status, 200, '64 levels are fine');
  });

  it('answers 400, not 500, for user names login() refuses or a session can\'t hold, from the API and the form', async () => {
    const c = client();
    await c.session();
    logged.length = 0;
    const refused: [string, RegExp][] = [
      ['__guest__', /reserved/],
      ['__moved__', /reserved/],
      ['  __guest__ ', /reserved/], // the name is trimmed before login() sees it
      ['\ud800', /unpaired UTF-16 surrogate/],
      ['al\udc00ice', /unpaired UTF-16 surrogate/],
      ['\udfff\ud800', /unpaired UTF-16 surrogate/], // a low then a high surrogate is no pair
      ['nul\u0000inside', /control characters/],
    ];
    for (const [user, message] of refused) {
      const reply = await c.call('POST', '/api/login', { json: { user } });
      assert.equal(reply.status, 400, `${JSON.stringify(user)}: ${reply.text}`);
      assert.match(reply.body.error ?? '', message);
    }
    assert.equal((await c.session()).body.user, null, 'still signed out');

    // The form: a bad field is a flash on the sign-in page (Post/Redirect/Get), not an error page.
    for (const user of ['__guest__', ' __moved__ ']) {
      const form = await c.call('POST', '/login', {
        token: null,
        raw: new URLSearchParams({ user, csrf_token: c.token! }).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(form.status, 303, `${user}: ${form.text}`);
      assert.equal(form.headers.get('location'), '/login');
      assert.match((await c.call('GET', '/login')).text, /class="flash flash-error"[^>]*>the user name &quot;__(guest|moved)__&quot; is reserved/);
    }
    assert.deepEqual(logged, [], 'client errors, not failed requests');

    // A pair of surrogates is one character (an emoji), and round-trips.
    const emoji = await c.login('zoë 🧥');
    assert.equal(emoji.body.user, 'zoë 🧥');
    assert.equal((await c.session()).body.user, 'zoë 🧥');
  });

  it('a HEAD request leaves queued flash messages for the next GET (API and pages)', async () => {
    const c = client();
    await c.session();
    await c.call('POST', '/api/flash', { json: { message: 'still here' } });
    const head = await c.call('HEAD', '/api/session');
    assert.equal(head.status, 200);
    assert.deepEqual((await c.session()).body.flashes, [{ message: 'still here', category: 'info' }]);

    await c.call('POST', '/api/flash', { json: { message: 'on the page' } });
    assert.equal((await c.call('HEAD', '/login')).status, 200);
    assert.match((await c.call('GET', '/login')).text, /class="flash flash-info" role="status">on the page</);
    assert.doesNotMatch((await c.call('GET', '/login')).text, /on the page/, 'then shown once');

    await c.login('hannah');
    await c.call('POST', '/api/flash', { json: { message: 'at home' } });
    assert.equal((await c.call('HEAD', '/')).status, 200);
    assert.equal((await c.call('HEAD', '/sessions')).status, 200);
    assert.match((await c.call('GET', '/')).text, />at home</);
  });

  it('sends the shared security headers on every response: text, stylesheet, redirects', async () => {
    const c = client();
    await c.login('ivan');
    const replies: [string, Reply, string][] = [
      ['/healthz', await c.call('GET', '/healthz'), 'no-store'],
      ['/style.css', await c.call('GET', '/style.css'), 'public, max-age=300'],
      ['/login (signed in)', await c.call('GET', '/login'), 'no-store'],
      ['/ (guest)', await client().call('GET', '/'), 'no-store'],
      ['POST /counter', await c.call('POST', '/counter', { token: null, raw: `csrf_token=${encodeURIComponent(c.token!)}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 'no-store'],
    ];
    for (const [what, reply, cache] of replies) {
      assert.ok(reply.status === 200 || reply.status === 303, `${what}: ${reply.status}`);
      assert.equal(reply.headers.get('x-content-type-options'), 'nosniff', what);
      assert.equal(reply.headers.get('referrer-policy'), 'same-origin', what);
      assert.equal(reply.headers.get('cache-control'), cache, what);
    }
  });

  it('POST /api/login starts a new session keeping only language; the old cookie is dead', async () => {
    const c = client();
    await c.session();
    await c.call('PUT', '/api/session/data/language', { json: 'de' });
    await c.call('POST', '/api/counter');
    const oldCookie = c.cookie;
    const oldToken = c.token;

    const reply = await c.login('alice');
    assert.equal(reply.body.user, 'alice');
    assert.deepEqual(reply.body.data, { language: 'de' });
    assert.notEqual(c.cookie, oldCookie, 'a new id');
    assert.notEqual(c.token, oldToken, 'a new CSRF token');
    assert.match(reply.body.expiresAt as string, ISO);

    const ghost = client();
    ghost.cookie = oldCookie;
    assert.equal((await ghost.session()).body.user, null, 'the pre-login session no longer exists');
    assert.notEqual(ghost.cookie, oldCookie, 'the dead id is never adopted');

    const out = await c.call('POST', '/api/logout');
    assert.equal(out.status, 200);
    assert.equal(out.body.user, null);
    assert.deepEqual(out.body.data, { language: 'de' });
    assert.equal((await c.session()).body.user, null);
  });

  it('GET /api/sessions lists the user\'s own devices; DELETE revokes one of them, never another user\'s', async () => {
    const laptop = client('Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0');
    const phone = client('Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Version/17.5 Mobile/15E148 Safari/604.1');
    const bob = client();
    await laptop.login('alice');
    await phone.login('alice');
    await bob.login('bob');

    const list = await laptop.call('GET', '/api/sessions');
    assert.equal(list.status, 200);
    const devices = list.body as unknown as Record<string, unknown>[];
    assert.equal(devices.length, 2);
    for (const d of devices) {
      assert.deepEqual(Object.keys(d).sort(), ['createdAt', 'current', 'handle', 'ip', 'lastSeenAt', 'userAgent']);
      assert.match(d.createdAt as string, ISO);
      assert.match(d.lastSeenAt as string, ISO);
      assert.equal(d.ip, '127.0.0.1');
    }
    const mine = devices.find((d) => d.current === true);
    const theirs = devices.find((d) => d.current === false);
    assert.equal(mine?.userAgent, laptop.userAgent);
    assert.equal(theirs?.userAgent, phone.userAgent);

    const probe = await bob.call('DELETE', `/api/sessions/${mine!.handle as string}`);
    assert.equal(probe.status, 404, 'bob cannot revoke (or learn about) alice\'s sessions');
    assert.equal((await laptop.session()).body.user, 'alice');
    assert.equal((await bob.call('DELETE', '/api/sessions/nonsense')).status, 404);

    const revoked = await laptop.call('DELETE', `/api/sessions/${theirs!.handle as string}`);
    assert.deepEqual(revoked.body, { revoked: theirs!.handle, current: false });
    assert.equal((await phone.call('GET', '/api/session', { token: null })).body.user, null, 'the phone is signed out');
    assert.equal(((await laptop.call('GET', '/api/sessions')).body as unknown as unknown[]).length, 1);

    const guest = client();
    const denied = await guest.call('GET', '/api/sessions');
    assert.equal(denied.status, 401);
    assert.match(denied.body.error ?? '', /sign in/);
  });

  it('POST /api/sessions/revoke-others keeps only the current session; revoking the current one signs out', async () => {
    const devices = [client(), client(), client()];
    for (const d of devices) await d.login('carol');
    const [me, second, third] = devices as [Client, Client, Client];
    const reply = await me.call('POST', '/api/sessions/revoke-others');
    assert.deepEqual(reply.body, { revoked: 2 });
    assert.equal((await second.session()).body.user, null);
    assert.equal((await third.session()).body.user, null);

    const [own] = (await me.call('GET', '/api/sessions')).body as unknown as { handle: string; current: boolean }[];
    assert.equal(own?.current, true);
    const out = await me.call('DELETE', `/api/sessions/${own!.handle}`);
    assert.deepEqual(out.body, { revoked: own!.handle, current: true });
    assert.equal((await me.session()).body.user, null);
  });

  it('POST /api/flash queues a message that the next GET /api/session shows once', async () => {
    const c = client();
    await c.session();
    assert.equal((await c.call('POST', '/api/flash', { json: { message: 'Saved <b>!</b>' } })).status, 200);
    assert.equal((await c.call('POST', '/api/flash', { json: { message: 'Careful', category: 'error' } })).status, 200);
    const shown = await c.session();
    assert.deepEqual(shown.body.flashes, [
      { message: 'Saved <b>!</b>', category: 'info' },
      { message: 'Careful', category: 'error' },
    ]);
    assert.equal('flashes' in (await c.session()).body, false, 'shown once');

    for (const json of [{}, { message: 5 }, { message: '' }, { message: 'x'.repeat(501) }, { message: 'ok', category: 'weird' }]) {
      assert.equal((await c.call('POST', '/api/flash', { json })).status, 400, JSON.stringify(json));
    }
  });

  it('answers unknown endpoints with 404 and wrong methods with 405, in JSON', async () => {
    const c = client();
    const missing = await c.call('GET', '/api/nope');
    assert.equal(missing.status, 404);
    assert.match(missing.body.error ?? '', /no such endpoint/);
    const wrong = await c.call('GET', '/api/counter');
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'POST');
  });

  it('answers 503 in JSON when the store fails, leaving the client\'s cookie alone', async () => {
    const c = client();
    await c.session();
    store.fault = 'reject';
    try {
      const reply = await c.call('GET', '/api/session');
      assert.equal(reply.status, 503);
      assert.match(reply.body.error ?? '', /store is not answering/);
      assert.deepEqual(reply.setCookie, []);
    } finally {
      store.fault = 'none';
    }
  });

  it('pages escape user text and refuse forms without the token', async () => {
    const c = client();
    await c.login('<script>alert(1)</script>');
    await c.call('PUT', '/api/session/data/cart', { json: { '<img src=x onerror=alert(1)>': 2 } });
    const page = await c.call('GET', '/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.ok(!page.text.includes('<script>alert'), 'the name is escaped');
    assert.ok(!page.text.includes('<img src=x'), 'cart items are escaped');
    assert.ok(page.text.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));

    const form = await c.call('POST', '/counter', { token: null, raw: 'action=increment', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(form.status, 403);
    assert.match(form.text, /missing CSRF token/);
    const ok = await c.call('POST', '/counter', {
      token: null,
      raw: `action=increment&csrf_token=${encodeURIComponent(c.token!)}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(ok.status, 303, 'Post/Redirect/Get');
    assert.equal(ok.headers.get('location'), '/');

    const guest = client();
    const home = await guest.call('GET', '/');
    assert.equal(home.status, 303);
    assert.equal(home.headers.get('location'), '/login');
    assert.deepEqual(home.setCookie, [], 'a guest without a cookie costs nothing until the sign-in page');
  });
});

describe('demo behind an HTTPS proxy (TRUST_PROXY, COOKIE_SECURE=auto)', () => {
  it('issues a Secure __Host- cookie when the proxy says HTTPS, and checks Origin against https://', async () => {
    const { memoryStore } = await import('../../src/stores/memory.js');
    for (const trustProxy of [true, false]) {
      const app = createDemoApp({ store: memoryStore({ sweepInterval: 0 }), sweepInterval: 0, trustProxy, log: quiet });
      const server = createServer(app.handler);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      try {
        const c = new Client(`http://${host}`);
        const proxied = { 'x-forwarded-proto': 'https' };
        const first = await c.call('GET', '/api/session', { headers: proxied });
        if (!trustProxy) {
          assert.match(first.setCookie[0] ?? '', /^sid=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/, 'X-Forwarded-Proto is ignored without TRUST_PROXY');
          continue;
        }
        assert.match(first.setCookie[0] ?? '', /^__Host-sid=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
        const same = await c.call('POST', '/api/counter', { headers: { ...proxied, origin: `https://${host}` } });
        assert.equal(same.status, 200, same.text);
        const downgraded = await c.call('POST', '/api/counter', { headers: { ...proxied, origin: `http://${host}` } });
        assert.equal(downgraded.status, 403);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        await app.close();
      }
    }
  });
});

describe('demo configuration', () => {
  it('reads the documented environment variables with their defaults', () => {
    assert.deepEqual(readConfig({}), {
      port: 3000,
      host: 'localhost',
      storeUrl: 'sqlite:./data/sessions.db',
      idleTimeout: undefined,
      absoluteTimeout: undefined,
      secret: undefined,
      cookieSecure: 'auto',
      trustProxy: false,
      shutdownGrace: 10,
    });
    const custom = readConfig({ PORT: '0', STORE: 'redis://127.0.0.1:6379/2', IDLE_TIMEOUT: '60', ABSOLUTE_TIMEOUT: '3600', COOKIE_SECURE: 'true', TRUST_PROXY: '1', SECRET: 's', SHUTDOWN_GRACE: '2.5' });
    assert.equal(custom.port, 0);
    assert.equal(custom.storeUrl, 'redis://127.0.0.1:6379/2');
    assert.equal(custom.idleTimeout, 60);
    assert.equal(custom.absoluteTimeout, 3600);
    assert.equal(custom.cookieSecure, true);
    assert.equal(custom.trustProxy, true);
    assert.equal(custom.secret, 's');
    assert.equal(custom.shutdownGrace, 2.5);
  });

  it('names the variable that is wrong', () => {
    const wrong: [Record<string, string>, RegExp][] = [
      [{ PORT: 'http' }, /^PORT/],
      [{ PORT: '70000' }, /^PORT/],
      [{ STORE: 'mysql://x' }, /^STORE/],
      [{ IDLE_TIMEOUT: '0' }, /^IDLE_TIMEOUT/],
      [{ ABSOLUTE_TIMEOUT: 'soon' }, /^ABSOLUTE_TIMEOUT/],
      [{ COOKIE_SECURE: 'maybe' }, /^COOKIE_SECURE/],
      [{ TRUST_PROXY: 'perhaps' }, /^TRUST_PROXY/],
      [{ SHUTDOWN_GRACE: '0' }, /^SHUTDOWN_GRACE must be a positive number of seconds/],
      // URLs the library would refuse when opening the store, caught before anything is opened.
      [{ STORE: 'redis://' }, /^STORE is not a usable store URL: redis: URL needs a host/],
      [{ STORE: 'sqlite:' }, /^STORE .*needs a path/],
      [{ STORE: 'memory:x' }, /^STORE .*nothing after the scheme/],
      [{ STORE: 'postgres://db.example?table=1x' }, /^STORE .*\?table=/],
    ];
    for (const [env, message] of wrong) assert.throws(() => readConfig(env), { name: 'EnvError', message });
    // A refused URL's password is not repeated in the message.
    assert.throws(() => readConfig({ STORE: 'mysql://root:hunter2@db/x' }), (error: Error) => !error.message.includes('hunter2') && /^STORE/.test(error.message));
  });

  it('masks the STORE URL\'s credentials for display with the library\'s masking', () => {
    const shown: [string, string][] = [
      ['postgres://postgres@127.0.0.1:5432/db?table=t&password=hunter2secret', 'postgres://postgres@127.0.0.1:5432/db?table=t&password=***'],
      ['postgres://postgres:hunter2@secretpart@127.0.0.1:5432/db', 'postgres://postgres:***@127.0.0.1:5432/db'],
      ['redis://:hunter2@127.0.0.1:6379/0?sentinelPassword=s3cret', 'redis://:***@127.0.0.1:6379/0?sentinelPassword=***'],
      ['sqlite:./data/sessions.db', 'sqlite:./data/sessions.db'],
      ['memory:', 'memory:'],
    ];
    for (const [url, display] of shown) assert.equal(storeDisplay(url), display);
  });

  it('generates a development secret once (mode 0600) and reuses it; SECRET wins; short secrets are refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'coatcheck-secret-'));
    try {
      const first = resolveSecret(undefined, join(dir, 'data'));
      assert.equal(first.source, 'generated');
      assert.ok(Buffer.byteLength(first.secret) >= 32);
      assert.equal(statSync(first.path!).mode & 0o777, 0o600);
      const second = resolveSecret(undefined, join(dir, 'data'));
      assert.deepEqual(second, { ...first, source: 'file' });
      const good = 'z-a-test-secret-0123456789-abcdef';
      assert.deepEqual(resolveSecret(good, join(dir, 'data')), { secret: good, source: 'env', path: null });
      assert.throws(() => resolveSecret('z'.repeat(32), dir), { name: 'EnvError', message: /^SECRET: is made of only 1 different character: a placeholder/ });
      assert.throws(() => resolveSecret('short', dir), { name: 'EnvError', message: /^SECRET must be at least 32 bytes/ });
      writeFileSync(join(dir, 'data', 'secret'), 'tiny\n');
      assert.throws(() => resolveSecret(undefined, join(dir, 'data')), /at least 32 bytes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('describes common browsers in the device list', () => {
    assert.equal(describeBrowser('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0'), 'Edge on Windows');
    assert.equal(describeBrowser('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36'), 'Chrome on Linux');
    assert.equal(describeBrowser('Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile/15E148 Safari/604.1'), 'Safari on iOS');
    assert.equal(describeBrowser('curl/8.5.0'), 'curl');
    assert.equal(describeBrowser(null), 'Unknown client');
  });
});

describe('demo entry point (demo/server.ts)', { timeout: 60_000 }, () => {
  it('starts with no configuration: SQLite under ./data (no secret: only the cookie store needs one), and stops cleanly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coatcheck-demo-start-'));
    const demo = await startDemo({ cwd: dir });
    try {
      assert.doesNotMatch(demo.output(), /warning/);
      assert.match(demo.output(), /sessions: sqlite:\.\/data\/sessions\.db/);
      const health = await fetch(`${demo.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(await health.text(), 'ok');
      const session = await fetch(`${demo.url}/api/session`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(session.status, 200);
      assert.ok(statSync(join(dir, 'data', 'sessions.db')).size > 0);
      assert.equal(existsSync(join(dir, 'data', 'secret')), false);
      assert.equal(await demo.stop(), 0, demo.output());
    } finally {
      await demo.stop(0);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('generates a development secret under ./data for the cookie store, with a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coatcheck-demo-cookie-'));
    const demo = await startDemo({ cwd: dir, env: { STORE: 'cookie:' } });
    try {
      assert.match(demo.output(), /warning: SECRET is not set; generated a development secret in data\/secret/);
      assert.ok(readFileSync(join(dir, 'data', 'secret'), 'utf8').trim().length >= 32);
      const session = await fetch(`${demo.url}/api/session`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(session.status, 200);
      // A value the 64 KiB limit allows but a browser cookie cannot carry: said as such.
      const visitor = new Client(demo.url);
      await visitor.session();
      const big = await visitor.call('PUT', '/api/session/data/big', { json: 'x'.repeat(5_000) });
      assert.equal(big.status, 413, big.text);
      assert.match(big.body.error ?? '', /cookie larger than the 4 KB/);
      assert.equal(await demo.stop(), 0, demo.output());
    } finally {
      await demo.stop(0);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('switches the store with STORE and exits with a message on a bad variable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coatcheck-demo-env-'));
    try {
      const demo = await startDemo({ cwd: dir, env: { STORE: 'memory:', SECRET: 'k-demo-test-secret-0123456789-abc' } });
      try {
        assert.match(demo.output(), /sessions: memory:/);
        assert.doesNotMatch(demo.output(), /warning/);
      } finally {
        await demo.stop();
      }
      const bad = await runDemoToExit({ cwd: dir, env: { IDLE_TIMEOUT: 'soon' } });
      assert.equal(bad.code, 1);
      assert.match(bad.output, /configuration error: IDLE_TIMEOUT must be a positive number of seconds/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('exits with "configuration error" naming STORE or SECRET, status 1 and no stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coatcheck-demo-bad-env-'));
    try {
      const bad: [Record<string, string>, RegExp][] = [
        [{ STORE: 'redis://' }, /^configuration error: STORE is not a usable store URL: redis: URL needs a host/m],
        [{ STORE: 'sqlite:' }, /^configuration error: STORE .*needs a path/m],
        [{ STORE: 'mysql://root:hunter2@db/x' }, /^configuration error: STORE .*unknown store URL "mysql:\/\/root:\*\*\*@db\/x"/m],
        [{ SECRET: 'short' }, /^configuration error: SECRET must be at least 32 bytes/m],
        [{ STORE: 'cookie:', SECRET: 'short' }, /^configuration error: SECRET must be at least 32 bytes/m],
        // The library's placeholder check, blamed on SECRET (not on STORE, which opens with it).
        [{ STORE: 'cookie:', SECRET: 'x'.repeat(32) }, /^configuration error: SECRET: is made of only 1 different character/m],
        [{ IDLE_TIMEOUT: '1e10' }, /^configuration error: IDLE_TIMEOUT must be at most 3153600000 seconds \(100 years\)/m],
      ];
      for (const [env, message] of bad) {
        const result = await runDemoToExit({ cwd: dir, env });
        assert.equal(result.code, 1, `${JSON.stringify(env)}: ${result.output}`);
        assert.match(result.output, message);
        assert.doesNotMatch(result.output, /^\s+at /m, `no stack trace: ${result.output}`);
        assert.ok(!result.output.includes('hunter2'), result.output);
      }
      assert.ok(!existsSync(join(dir, 'data')), 'a bad STORE stops the server before it creates a development secret');

      // A STORE the library accepts but that can't be opened (its directory is a file) names STORE too.
      writeFileSync(join(dir, 'file'), '');
      const unopenable = await runDemoToExit({ cwd: dir, env: { STORE: 'sqlite:./file/sessions.db', SECRET: 'k-demo-test-secret-0123456789-abc' } });
      assert.equal(unopenable.code, 1, unopenable.output);
      assert.match(unopenable.output, /^configuration error: STORE "sqlite:.\/file\/sessions.db" could not be opened: EEXIST/m);
      assert.doesNotMatch(unopenable.output, /^\s+at /m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never shows the STORE password: not in the "listening on" line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coatcheck-demo-mask-'));
    try {
      // PostgreSQL connects lazily, so the server starts (and logs) without a database behind it.
      const urls: [string, string][] = [
        ['postgres://postgres@127.0.0.1:9/db?table=t&password=hunter2secret', 'postgres://postgres@127.0.0.1:9/db?table=t&password=***'],
        ['postgres://postgres:hunter2@secretpart@127.0.0.1:9/db', 'postgres://postgres:***@127.0.0.1:9/db'],
      ];
      for (const [url, display] of urls) {
        const demo = await startDemo({ cwd: dir, env: { STORE: url, SECRET: 'k-demo-test-secret-0123456789-abc' } });
        try {
          assert.ok(demo.output().includes(`(sessions: ${display})`), demo.output());
          assert.ok(!demo.output().includes('hunter2') && !demo.output().includes('secretpart'), demo.output());
        } finally {
          await demo.stop();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never shows the STORE password: not in the page footer (a password-protected private redis)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coatcheck-demo-footer-'));
    const cases: [string, (port: number) => string, (port: number) => string][] = [
      ['hunter2secret', (port) => `redis://127.0.0.1:${port}/0?password=hunter2secret`, (port) => `redis://127.0.0.1:${port}/0?password=***`],
      ['hunter2@secretpart', (port) => `redis://:hunter2@secretpart@127.0.0.1:${port}/0`, (port) => `redis://:***@127.0.0.1:${port}/0`],
    ];
    try {
      for (const [password, url, display] of cases) {
        const redis = await startPrivateRedis();
        try {
          // Set after start: the helper's readiness PING has no password.
          assert.equal((await redis.cli('CONFIG', 'SET', 'requirepass', password)).trim(), 'OK');
          const demo = await startDemo({ cwd: dir, env: { STORE: url(redis.port), SECRET: 'k-demo-test-secret-0123456789-abc' } });
          try {
            const page = await fetch(`${demo.url}/login`, { signal: AbortSignal.timeout(5_000) });
            const text = await page.text();
            assert.equal(page.status, 200, `the store authenticated: ${text}`);
            assert.ok(text.includes(`store: <code>${display(redis.port)}</code>`), text);
            for (const out of [text, demo.output()]) assert.ok(!out.includes('hunter2') && !out.includes('secretpart'), out);
          } finally {
            await demo.stop();
          }
        } finally {
          await redis.stop();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
