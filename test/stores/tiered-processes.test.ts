/**
 * Two app processes share a Redis cache tier and a PostgreSQL durable tier. A logout, a kill by
 * user or an expiry seen through one process must never leave the other serving a stale session
 * from the cache.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { Redis } from 'ioredis';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from '../helpers/services.js';
import { CookieJar } from '../helpers/cookie-jar.js';

const up = (await serviceAvailable('redis')) && (await serviceAvailable('postgres'));
const suffix = randomBytes(4).toString('hex');
const PREFIX = `cc-tiered2p-${suffix}:`;
const TABLE = `cc_tiered2p_${suffix}`;

interface App {
  url: string;
  child: ChildProcess;
}

async function startApp(dir: string, name: string, extraEnv: Record<string, string> = {}): Promise<App> {
  const portFile = join(dir, `${name}.port`);
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/tiered-app.ts'], {
    env: { ...process.env, PORT_FILE: portFile, PREFIX, TABLE, REDIS_URL, POSTGRES_URL, ...extraEnv },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const deadline = Date.now() + 20_000;
  while (!existsSync(portFile) || readFileSync(portFile, 'utf8') === '') {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`app ${name} did not start`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url: `http://127.0.0.1:${readFileSync(portFile, 'utf8')}`, child };
}

async function call(app: App, jar: CookieJar, path: string): Promise<{ pid: number; user: string | null; data: Record<string, unknown> }> {
  const cookie = jar.header();
  const res = await fetch(app.url + path, { headers: cookie ? { cookie } : {} });
  jar.apply(res.headers.getSetCookie());
  assert.equal(res.status, 200, `${path} answered ${res.status}`);
  return (await res.json()) as { pid: number; user: string | null; data: Record<string, unknown> };
}

describe('tiered store across two app processes (Redis cache + PostgreSQL durable)', { skip: !up && 'Redis or PostgreSQL not reachable' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cc-tiered2p-'));
  let a: App;
  let b: App;
  before(async () => {
    [a, b] = await Promise.all([startApp(dir, 'a'), startApp(dir, 'b')]);
  });
  after(async () => {
    for (const app of [a, b]) app?.child.kill('SIGTERM');
    await Promise.all([a, b].map((app) => app && new Promise((resolve) => (app.child.exitCode !== null ? resolve(null) : app.child.once('exit', resolve)))));
    rmSync(dir, { recursive: true, force: true });
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${PREFIX}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    await client.query(`DROP TABLE IF EXISTS ${TABLE}`);
    await client.end();
  });

  it('runs two separate processes', async () => {
    const jar = new CookieJar();
    const [ra, rb] = [await call(a, jar, '/'), await call(b, jar, '/')];
    assert.notEqual(ra.pid, rb.pid);
  });

  it('a logout through one process is seen at once by the other, whose cache had the session', async () => {
    const jar = new CookieJar();
    await call(a, jar, '/login?user=alice');
    await call(a, jar, '/set?key=cart&value=full');
    const stolen = new CookieJar();
    stolen.apply([`sid=${jar.get('sid')}`]);
    assert.equal((await call(b, stolen, '/')).user, 'alice', 'B reads (and caches) the session');
    await call(a, jar, '/logout');
    const replay = await call(b, stolen, '/');
    assert.equal(replay.user, null, 'B does not serve the logged-out session from its cache');
    assert.deepEqual(replay.data, {});
  });

  it('a kill by user through one process ends the sessions served by the other', async () => {
    const laptop = new CookieJar();
    const phone = new CookieJar();
    await call(a, laptop, '/login?user=bob');
    await call(b, phone, '/login?user=bob');
    assert.equal((await call(b, laptop, '/')).user, 'bob');
    assert.equal((await call(a, phone, '/')).user, 'bob');
    const killed = await call(a, new CookieJar(), '/kill?user=bob');
    assert.equal((killed as unknown as { killed: number }).killed, 2);
    assert.equal((await call(b, laptop, '/')).user, null);
    assert.equal((await call(a, phone, '/')).user, null);
  });

  it('writes from both processes to one session all land (per-key, through both tiers)', async () => {
    const jar = new CookieJar();
    await call(a, jar, '/set?key=start&value=1');
    await Promise.all(Array.from({ length: 10 }, (_, i) => call(i % 2 ? a : b, jar, `/set?key=k${i}&value=${i}`)));
    const { data } = await call(b, jar, '/');
    for (let i = 0; i < 10; i++) assert.equal(data[`k${i}`], String(i));
  });
});
