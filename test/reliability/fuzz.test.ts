/**
 * Property-based fuzzing (fast-check) through a real node:http server with coatcheck, over raw
 * sockets so any bytes can be sent:
 *
 * - Cookie headers: mutations of a genuine cookie, forged well-formed tokens, garbage bytes,
 *   duplicates, several Cookie lines, oversized headers, sealed cookie-store values with flipped
 *   characters. Never a 500; an authenticated answer only when the header carries the genuine
 *   token as the one `sid` value.
 * - Stored records: data whose keys are `__proto__`, `constructor`, `prototype`... round-trips as
 *   plain data (memory, SQLite, cookie store) and pollutes nothing; records corrupted in the store
 *   itself (SQLite rows, Redis hashes) never produce a 500.
 *
 * `@fast-check/poisoning` is not installed: `Object.prototype` is snapshotted and compared by hand.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { getSession, withSessions } from '../../src/adapters/node.js';
import { hashToken } from '../../src/core/token.js';
import { InvalidValueError } from '../../src/errors.js';
import { createSessions, type Sessions } from '../../src/index.js';
import { cookieStore } from '../../src/stores/cookie.js';
import { memoryStore } from '../../src/stores/memory.js';
import { redisStore } from '../../src/stores/redis.js';
import { sqliteStore } from '../../src/stores/sqlite.js';
import type { JsonValue } from '../../src/types.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/private-redis.js';
import { redisServerInstalled } from '../helpers/redis-cluster.js';

const RUNS = Number(process.env.COATCHECK_FUZZ_RUNS ?? 150);

// ---------------------------------------------------------------- the app and a raw HTTP client

interface RawReply {
  status: number;
  body: string;
  headers: string;
}

/** Sends one request with arbitrary header bytes over a fresh connection; the server closes it (`Connection: close`). */
function raw(port: number, method: string, path: string, headerLines: Buffer[], body = ''): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer within 5 s'));
    }, 5_000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {
      /* a reset after the answer is fine; no answer is caught below */
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const bytes = Buffer.concat(chunks);
      const split = bytes.indexOf('\r\n\r\n');
      const head = bytes.subarray(0, split < 0 ? bytes.length : split).toString('latin1');
      const match = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (!match) return reject(new Error(`no HTTP answer (got ${JSON.stringify(head.slice(0, 80))})`));
      resolve({ status: Number(match[1]), headers: head, body: split >= 0 ? bytes.subarray(split + 4).toString('utf8') : '' });
    });
    const head = Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`, 'latin1');
    const lines = headerLines.flatMap((line) => [line, Buffer.from('\r\n')]);
    // write, not end: a half-closed client makes node:http drop a response still being prepared.
    socket.write(Buffer.concat([head, ...lines, Buffer.from('\r\n'), Buffer.from(body, 'utf8')]));
  });
}

const cookieLine = (value: string | Buffer) => Buffer.concat([Buffer.from('Cookie: '), Buffer.isBuffer(value) ? value : Buffer.from(value, 'latin1')]);

interface FuzzApp {
  port: number;
  sessions: Sessions;
  close(): Promise<void>;
}

/**
 * `POST /login` (user alice), `GET /whoami` → `{ user }`, `POST /data` (JSON object merged into the
 * session, all-or-nothing; 400 when a value is not storable), `GET /data` → the session's data.
 */
async function startApp(sessions: Sessions): Promise<FuzzApp> {
  const server: Server = createServer(
    withSessions(sessions, async (req, res) => {
      const session = await getSession(req);
      const url = req.url ?? '/';
      const send = (status: number, value: unknown) => {
        res.statusCode = status;
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify(value));
      };
      if (req.method === 'POST' && url === '/login') {
        await session.login('alice');
        return send(200, { user: session.userId });
      }
      if (req.method === 'POST' && url === '/data') {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, JsonValue>;
        try {
          session.update(parsed);
        } catch (error) {
          if (error instanceof InvalidValueError) return send(400, { error: error.code });
          throw error;
        }
        return send(200, { ok: true });
      }
      if (url === '/data') return send(200, { user: session.userId, data: session.toJSON() });
      return send(200, { user: session.userId });
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    sessions,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await sessions.close();
    },
  };
}

async function login(app: FuzzApp): Promise<string> {
  const reply = await raw(app.port, 'POST', '/login', []);
  const value = /^set-cookie: sid=([^;\r\n]*)/im.exec(reply.headers)?.[1];
  assert.equal(reply.status, 200);
  assert.ok(value, 'login sets the session cookie');
  return value;
}

const whoami = async (app: FuzzApp, lines: Buffer[]) => {
  const reply = await raw(app.port, 'GET', '/whoami', lines);
  return { status: reply.status, user: reply.status === 200 ? (JSON.parse(reply.body) as { user: string | null }).user : null };
};

// ---------------------------------------------------------------- prototype pollution watch

function prototypeSnapshot(): string {
  return Object.getOwnPropertyNames(Object.prototype)
    .sort()
    .map((name) => {
      const d = Object.getOwnPropertyDescriptor(Object.prototype, name) as PropertyDescriptor;
      return `${name}:${typeof d.value}:${typeof d.get}:${String(d.enumerable)}`;
    })
    .join(',');
}
const pristine = prototypeSnapshot();
function assertNoPollution(): void {
  assert.equal(prototypeSnapshot(), pristine, 'Object.prototype changed');
  assert.equal(({} as Record<string, unknown>).isAdmin, undefined);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(Object.getPrototypeOf({}), Object.prototype);
}

// ---------------------------------------------------------------- generators

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const tokenArb = fc.string({ unit: fc.constantFrom(...B64URL), minLength: 43, maxLength: 43 });
/** Characters worth injecting: base64url, separators, quotes, escapes, spaces, latin1 and UTF-8 bytes. */
const nastyChar = fc.constantFrom(...B64URL, ';', '=', ',', '"', '%', '%2', '%ZZ', '%00', ' ', '\t', '\\', '\u00a0', '\u00e9', '\u00ff', '\u00f0\u009f\u0098\u0080');
/** Bytes without CR/LF (those would end the header line); NUL and other controls included. */
const headerByte = fc.integer({ min: 0, max: 255 }).filter((b) => b !== 10 && b !== 13);

/** The `sid` values a cookie header carries, parsed as RFC 6265 servers do (first `=`, trim, DQUOTEs). */
/** Spaces and tabs only (RFC 6265): a no-break space or other whitespace is part of the name. */
const blanks = (text: string) => text.replace(/^[ \t]+|[ \t]+$/g, '');

function sidValues(header: string): Set<string> {
  const values = new Set<string>();
  for (const segment of header.split(';')) {
    const eq = segment.indexOf('=');
    if (eq < 0 || blanks(segment.slice(0, eq)) !== 'sid') continue;
    let value = blanks(segment.slice(eq + 1));
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (value.length <= 4096) values.add(value);
  }
  return values;
}

function mutations(genuine: string): fc.Arbitrary<string> {
  const at = fc.nat({ max: genuine.length - 1 });
  return fc.oneof(
    fc.tuple(at, nastyChar).map(([i, c]) => genuine.slice(0, i) + c + genuine.slice(i + 1)),
    at.map((i) => genuine.slice(0, i)),
    fc.tuple(at, nastyChar).map(([i, c]) => genuine.slice(0, i) + c + genuine.slice(i)),
    fc.string({ unit: nastyChar, maxLength: 4 }).map((s) => genuine + s),
    at.map((i) => genuine.slice(0, i) + encodeURIComponent(genuine[i] as string).replace(/^([A-Za-z0-9])$/, (c) => `%${c.charCodeAt(0).toString(16)}`) + genuine.slice(i + 1)),
    fc.constant(genuine.toLowerCase()),
    tokenArb,
  );
}

// ---------------------------------------------------------------- the properties

describe('reliability: fuzzing Cookie headers through a real server (memory store)', () => {
  let app: FuzzApp;
  let genuine: string;
  before(async () => {
    app = await startApp(createSessions({ store: memoryStore({ sweepInterval: 0 }) }));
    genuine = await login(app);
  });
  after(() => app?.close());

  it('the genuine cookie authenticates (sanity check for the properties below)', async () => {
    assert.deepEqual(await whoami(app, [cookieLine(`sid=${genuine}`)]), { status: 200, user: 'alice' });
  });

  it('mutated, forged and rearranged cookies: never a 500, authenticated only with the genuine token as the one sid value', async () => {
    const pair = fc.oneof(
      { weight: 4, arbitrary: mutations(genuine).map((v) => `sid=${v}`) },
      { weight: 2, arbitrary: fc.constant(`sid=${genuine}`) },
      { weight: 1, arbitrary: fc.constant(`sid="${genuine}"`) },
      { weight: 2, arbitrary: fc.tuple(fc.constantFrom('SID', ' sid', 'sid ', 's%69d', '"sid"', '__Host-sid', 'other', 'sid\u00a0'), fc.oneof(fc.constant(genuine), mutations(genuine))).map(([n, v]) => `${n}=${v}`) },
      { weight: 1, arbitrary: fc.string({ unit: nastyChar, maxLength: 30 }) },
    );
    const separator = fc.constantFrom('; ', ';', ' ; ', ', ', ';;');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(pair, separator), { minLength: 1, maxLength: 5 }), async (parts) => {
        const header = parts.map(([p, s], i) => (i === 0 ? p : s + p)).join('');
        const { status, user } = await whoami(app, [cookieLine(header)]);
        assert.ok(status === 200 || status === 400, `status ${status}`);
        if (status !== 200) return;
        const values = sidValues(Buffer.from(header, 'latin1').toString('latin1'));
        const onlyGenuine = values.size === 1 && values.has(genuine);
        if (user !== null) assert.ok(onlyGenuine, `authenticated by ${JSON.stringify(header)}`);
        else assert.ok(!onlyGenuine, `the genuine cookie was refused in ${JSON.stringify(header)}`);
      }),
      { numRuns: RUNS * 2 },
    );
    assertNoPollution();
  });

  it('garbage bytes in one or more Cookie lines (NUL, controls, latin1, broken UTF-8, up to 20 KiB): never a 500, never authenticated', async () => {
    const garbage = fc.oneof(
      fc.array(headerByte, { maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
      fc.string({ unit: nastyChar, maxLength: 100 }).map((s) => Buffer.from(s, 'latin1')),
      fc.constantFrom(Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xc3]), Buffer.from('sid=%E0%A4%A'), Buffer.from('sid=\u0000', 'latin1')),
      fc.integer({ min: 4_000, max: 20_000 }).map((n) => Buffer.from(`sid=${'A'.repeat(n)}`)),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(garbage, { minLength: 1, maxLength: 3 }), async (lines) => {
        const { status, user } = await whoami(app, lines.map(cookieLine));
        assert.ok([200, 400, 431].includes(status), `status ${status}`);
        assert.equal(user, null);
      }),
      { numRuns: RUNS },
    );
  });

  it('duplicates: 100 forged sid cookies around the real one, and two Cookie lines, are refused (ambiguous), never a 500', async () => {
    const forged = fc.array(tokenArb, { minLength: 1, maxLength: 100 });
    await fc.assert(
      fc.asyncProperty(forged, fc.boolean(), fc.boolean(), async (fakes, genuineFirst, twoLines) => {
        const fakeHeader = fakes.map((f) => `sid=${f}`).join('; ');
        const lines = twoLines
          ? genuineFirst
            ? [cookieLine(`sid=${genuine}`), cookieLine(fakeHeader)]
            : [cookieLine(fakeHeader), cookieLine(`sid=${genuine}`)]
          : [cookieLine(genuineFirst ? `sid=${genuine}; ${fakeHeader}` : `${fakeHeader}; sid=${genuine}`)];
        assert.deepEqual(await whoami(app, lines), { status: 200, user: null });
      }),
      { numRuns: Math.ceil(RUNS / 3) },
    );
    // The same genuine cookie twice (two lines) is not ambiguous.
    assert.deepEqual(await whoami(app, [cookieLine(`sid=${genuine}`), cookieLine(`sid=${genuine}`)]), { status: 200, user: 'alice' });
  });
});

describe('reliability: fuzzing sealed cookie-store values through a real server', () => {
  let app: FuzzApp;
  let genuine: string;
  before(async () => {
    app = await startApp(createSessions({ store: cookieStore({ secrets: [randomBytes(32).toString('base64url')] }) }));
    genuine = await login(app);
  });
  after(() => app?.close());

  it('any change to a sealed cookie (character, length, key id, dots) leaves the request anonymous; never a 500', async () => {
    assert.deepEqual(await whoami(app, [cookieLine(`sid=${genuine}`)]), { status: 200, user: 'alice' });
    const at = fc.nat({ max: genuine.length - 1 });
    const forged = fc.oneof(
      fc.tuple(at, fc.constantFrom(...B64URL, '.')).map(([i, c]) => genuine.slice(0, i) + c + genuine.slice(i + 1)),
      at.map((i) => genuine.slice(0, i)),
      fc.tuple(at, fc.constantFrom(...B64URL)).map(([i, c]) => genuine.slice(0, i) + c + genuine.slice(i)),
      fc.constantFrom(genuine.replace(/^v1\./, 'v2.'), genuine.split('.').reverse().join('.'), `${genuine}.x`),
    );
    await fc.assert(
      fc.asyncProperty(forged, async (value) => {
        const { status, user } = await whoami(app, [cookieLine(`sid=${value}`)]);
        assert.equal(status, 200);
        if (value !== genuine) assert.equal(user, null, `forged value accepted: ${value}`);
      }),
      { numRuns: RUNS * 2 },
    );
  });
});

// ---------------------------------------------------------------- stored records

/** Keys that have bitten JavaScript libraries, plus arbitrary ones (some not storable: NUL, lone surrogates). */
const pollutionKey = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'isAdmin', 'get', 'set', 'n') },
  { weight: 2, arbitrary: fc.string({ minLength: 1, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }) },
);
/** A value as JSON text: ordinary JSON, or nested objects whose own keys try to reach a prototype. */
const valueText = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)).filter((t) => t.length < 2_000) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('{"__proto__":{"isAdmin":true}}', '{"constructor":{"prototype":{"polluted":true}}}', '[{"__proto__":{"polluted":1}}]', '{"__proto__":null}'),
  },
);
/** A JSON object text, built by hand so `__proto__` becomes an own key (as JSON.parse makes it). */
const objectText = fc
  .uniqueArray(fc.tuple(pollutionKey, valueText), { minLength: 1, maxLength: 6, selector: ([key]) => key })
  .map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`);

describe('reliability: session data with prototype-pollution keys round-trips as data through a real server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coatcheck-fuzz-'));
  const stores = {
    memory: () => memoryStore({ sweepInterval: 0 }),
    sqlite: () => sqliteStore({ path: join(dir, 'fuzz.db') }),
    cookie: () => cookieStore({ secrets: [randomBytes(32).toString('base64url')] }),
  };
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [name, open] of Object.entries(stores)) {
    it(`${name} store: every key comes back as an own data property, nothing is polluted, never a 500`, async () => {
      const app = await startApp(createSessions({ store: open() }));
      try {
        await fc.assert(
          fc.asyncProperty(objectText, async (text) => {
            const cookie = await login(app);
            const stored = await raw(app.port, 'POST', '/data', [cookieLine(`sid=${cookie}`)], text);
            assert.ok(stored.status === 200 || stored.status === 400, `POST /data answered ${stored.status}: ${stored.body}`);
            const fresh = /^set-cookie: sid=([^;\r\n]*)/im.exec(stored.headers)?.[1] ?? cookie;
            const read = await raw(app.port, 'GET', '/data', [cookieLine(`sid=${fresh}`)]);
            assert.equal(read.status, 200);
            const { user, data } = JSON.parse(read.body) as { user: string; data: Record<string, unknown> };
            assert.equal(user, 'alice');
            if (stored.status === 200) assert.deepStrictEqual(data, JSON.parse(text));
            else assert.deepStrictEqual(data, {}, 'a refused update stores nothing');
            assertNoPollution();
          }),
          { numRuns: RUNS },
        );
      } finally {
        await app.close();
      }
    });
  }
});

describe('reliability: records corrupted inside the store never cause a 500', () => {
  const anyText = fc.oneof(
    objectText,
    fc.string({ maxLength: 40 }),
    fc.constantFrom('', 'null', '[]', '[1,2]', '"text"', '42', '{', '{"a":', '{"__proto__":{"isAdmin":true}}', '{"constructor":{"prototype":{"polluted":1}}}'),
  );
  const time = fc.oneof(fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), fc.constant(Date.now() + 60_000), fc.constant(0));
  /**
   * The engine's own meta keys with wrong or hostile values (a forward that is no seal, a flash
   * queue that is no list...), including expiry strings that are no date.
   */
  const metaText = fc.oneof(
    anyText,
    fc
      .uniqueArray(
        fc.oneof(
          fc.tuple(
            fc.constantFrom('testcookie', 'flash', 'csrf', 'moved', 'rotatedAt', 'requests', 'otk.x', '__proto__'),
            fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('2999-01-01T00:00:00Z', -1, 1e308, 0)),
          ),
          fc.tuple(fc.constant('expiry'), fc.oneof(fc.double({ noNaN: true }), fc.constantFrom('2999-01-01T00:00:00.000Z', '1970-01-01T00:00:00.000Z', 'not a date', '', 0, -1, 1e308))),
        ),
        { maxLength: 4, selector: ([key]) => key },
      )
      .map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`),
  );

  it('SQLite: arbitrary data/meta text and times in the row', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coatcheck-fuzz-'));
    const path = join(dir, 'corrupt.db');
    const app = await startApp(createSessions({ store: sqliteStore({ path }) }));
    const db = new Database(path);
    try {
      const overwrite = db.prepare('UPDATE coatcheck_sessions SET data = ?, meta = ?, created_at = ?, last_seen_at = ?, expires_at = ? WHERE id = ?');
      await fc.assert(
        fc.asyncProperty(anyText, metaText, time, time, time, async (data, meta, created, seen, expires) => {
          const cookie = await login(app);
          overwrite.run(data, meta, created, seen, expires, hashToken(cookie));
          const read = await raw(app.port, 'GET', '/data', [cookieLine(`sid=${cookie}`)]);
          assert.equal(read.status, 200, `answered ${read.status} for data ${JSON.stringify(data)}, meta ${JSON.stringify(meta)}`);
          const { user, data: seenData } = JSON.parse(read.body) as { user: string | null; data: unknown };
          if (user !== null) assert.deepStrictEqual(seenData, JSON.parse(data));
          assertNoPollution();
        }),
        { numRuns: RUNS },
      );
    } finally {
      db.close();
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(
    'SQLite: a stored expiry that is no date ends the session instead of answering 503 forever',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'coatcheck-fuzz-'));
      const path = join(dir, 'expiry.db');
      const app = await startApp(createSessions({ store: sqliteStore({ path }) }));
      const db = new Database(path);
      try {
        const cookie = await login(app);
        db.prepare('UPDATE coatcheck_sessions SET meta = ?, last_seen_at = 0, expires_at = 0 WHERE id = ?').run('{"expiry":"not a date"}', hashToken(cookie));
        const read = await raw(app.port, 'GET', '/data', [cookieLine(`sid=${cookie}`)]);
        assert.equal(read.status, 200);
        assert.equal((JSON.parse(read.body) as { user: string | null }).user, null, 'a record with an impossible expiry is no session');
      } finally {
        db.close();
        await app.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  const redisReady = redisServerInstalled();
  if (!redisReady && process.env.CI === 'true') throw new Error('redis-server is not installed (CI=true: a missing service is a failure)');
  it('Redis (private server): arbitrary hash fields in the session key', { skip: redisReady ? false : 'redis-server not installed' }, async () => {
    let redis: PrivateRedis | undefined;
    let client: Redis | undefined;
    let app: FuzzApp | undefined;
    try {
      redis = await startPrivateRedis();
      const prefix = 'fuzz:';
      app = await startApp(createSessions({ store: redisStore({ url: redis.url, prefix }) }));
      client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      const field = fc.oneof(fc.constantFrom('c', 'l', 'e', 'u', 'x', 'i', 'a', 'd:n', 'd:__proto__', 'm:expiry', 'm:moved', 'm:flash', 'd:constructor'), fc.string({ maxLength: 8 }));
      const value = fc.oneof(anyText, time.map(String), fc.constantFrom('"2999-01-01T00:00:00Z"', '"not a date"', '-1'));
      const running = app;
      const redisClient = client;
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(field, value), { minLength: 1, maxLength: 6 }), fc.boolean(), async (fields, replace) => {
          const cookie = await login(running);
          const key = `${prefix}s:{${hashToken(cookie)}}`;
          if (replace) await redisClient.del(key);
          await redisClient.hset(key, ...fields.flat());
          const read = await raw(running.port, 'GET', '/data', [cookieLine(`sid=${cookie}`)]);
          assert.equal(read.status, 200, `answered ${read.status} for fields ${JSON.stringify(fields)}`);
          assertNoPollution();
        }),
        { numRuns: RUNS },
      );
    } finally {
      client?.disconnect();
      await app?.close();
      await redis?.stop();
    }
  });
});
