/**
 * The store micro-benchmark's worker (runs compiled, in its own process; see bench/micro.ts).
 * Per store: the cost of one `get` (load) and one `update` (save of one changed key), measured one
 * call at a time, plus `create` and `touch`, and throughput with many calls in flight; then the
 * engine's own cost per request without HTTP (open → load → set → commit).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { runWithSession } from '../src/core/context.js';
import { createSessions } from '../src/index.js';
import { cookieStore } from '../src/stores/cookie.js';
import { memoryStore } from '../src/stores/memory.js';
import { sqliteStore } from '../src/stores/sqlite.js';
import type { AnyStore, SessionRecord, Store } from '../src/stores/types.js';

export interface MicroConfig {
  dir: string;
  redisUrl?: string;
  postgresUrl?: string;
  /** Sequential calls per operation for in-process stores; networked stores get a fifth. */
  iterations: number;
}

export interface OpStats {
  op: string;
  calls: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
}

export interface StoreResult {
  store: string;
  ops: OpStats[];
  /** get / update per second with `inFlight` concurrent calls. */
  concurrent?: { inFlight: number; getPerSecond: number; updatePerSecond: number };
  error?: string;
}

export interface EngineResult {
  store: string;
  writeUs: number;
  readUs: number;
}

const POPULATION = 2_000;

function record(now: number, i: number): SessionRecord {
  return {
    id: randomBytes(32).toString('base64url'),
    userId: i % 2 === 0 ? `user-${i % 500}` : null,
    data: { n: 0, language: 'en', cart: [1, 2, 3], name: 'Ada Lovelace' },
    meta: { csrf: randomBytes(16).toString('base64url') },
    createdAt: now,
    lastSeenAt: now,
    expiresAt: now + 3_600_000,
    ip: '127.0.0.1',
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64) bench/1.0',
  };
}

function stats(op: string, samples: number[]): OpStats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { op, calls: samples.length, meanUs: samples.reduce((a, b) => a + b, 0) / samples.length, p50Us: at(0.5), p99Us: at(0.99) };
}

const WARMUP = 500;

/** Times `fn` one call at a time, after a short warm-up (indices count … count + 499); µs per call. */
async function sequential(op: string, count: number, fn: (i: number) => unknown): Promise<OpStats> {
  for (let i = 0; i < WARMUP; i++) await fn(count + i);
  const samples = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    await fn(i);
    samples[i] = Number(process.hrtime.bigint() - start) / 1_000;
  }
  return stats(op, samples);
}

async function concurrent(count: number, inFlight: number, fn: (i: number) => unknown): Promise<number> {
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) await fn(next++);
    }),
  );
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function measureStore(name: string, store: Store, iterations: number, networked: boolean): Promise<StoreResult> {
  const now = Date.now();
  const records = Array.from({ length: POPULATION }, (_, i) => record(now, i));
  for (const r of records) await store.create(r);
  const pick = (i: number) => (records[(i * 7919) % POPULATION] as SessionRecord).id;
  const ops: OpStats[] = [];
  ops.push(await sequential('get', iterations, (i) => store.get(pick(i))));
  ops.push(
    await sequential('update', iterations, (i) =>
      store.update(pick(i), { data: { set: { n: i } }, lastSeenAt: now + i, expiresAt: now + 3_600_000 + i, guard: { absent: ['moved'] } }),
    ),
  );
  ops.push(await sequential('touch', iterations, (i) => store.touch(pick(i), { lastSeenAt: now + i, expiresAt: now + 3_600_000 + i })));
  const fresh = Array.from({ length: iterations + WARMUP }, (_, i) => record(now, i));
  ops.push(await sequential('create', iterations, (i) => store.create(fresh[i] as SessionRecord)));
  const result: StoreResult = { store: name, ops };
  if (networked) {
    const inFlight = 32;
    const total = iterations * 2;
    result.concurrent = {
      inFlight,
      getPerSecond: await concurrent(total, inFlight, (i) => store.get(pick(i))),
      updatePerSecond: await concurrent(total, inFlight, (i) =>
        store.update(pick(i), { data: { set: { n: i } }, lastSeenAt: now + i, expiresAt: now + 3_600_000 + i }),
      ),
    };
  }
  return result;
}

/** The engine alone (inside the async context, as adapters run it): µs per request that writes one key, and per read-only request. */
async function measureEngine(name: string, store: AnyStore, iterations: number): Promise<EngineResult> {
  const sessions = createSessions({ store });
  const base = { https: false, ip: '127.0.0.1', userAgent: 'bench' };
  const first = sessions.open({ cookieHeader: null, ...base });
  await first.load();
  await first.login('someone');
  first.set('n', 0);
  const created = await first.commit(200);
  let cookie = (created?.setCookie[0] ?? '').split(';')[0] ?? '';
  // As an adapter does it: the request runs inside the session's async context.
  function request(write: boolean): Promise<void> {
    const session = sessions.open({ cookieHeader: cookie, ...base });
    return runWithSession(session, async () => {
      await session.load();
      if (session.userId === null) throw new Error('engine bench: session lost');
      if (write) session.set('n', (session.get('n', 0) as number) + 1);
      const result = await session.commit(200);
      const next = result?.setCookie[0];
      if (next) cookie = next.split(';')[0] ?? cookie;
    });
  }
  const write = await sequential('write', iterations, () => request(true));
  const read = await sequential('read', iterations, () => request(false));
  await sessions.close();
  return { store: name, writeUs: write.meanUs, readUs: read.meanUs };
}

export async function runMicroWorker(config: MicroConfig): Promise<{ stores: StoreResult[]; engine: EngineResult[]; cookie: OpStats[] }> {
  const stores: StoreResult[] = [];
  const n = config.iterations;
  const attempt = async (name: string, open: () => Promise<Store> | Store, networked: boolean, cleanup?: () => Promise<void>) => {
    let store: Store | undefined;
    try {
      store = await open();
      stores.push(await measureStore(name, store, networked ? Math.ceil(n / 5) : n, networked));
    } catch (error) {
      stores.push({ store: name, ops: [], error: error instanceof Error ? error.message : String(error) });
    } finally {
      await cleanup?.().catch(() => {});
      await store?.close().catch(() => {});
    }
  };
  await attempt('memory', () => memoryStore({ sweepInterval: 0 }), false);
  await attempt('sqlite (file, WAL)', () => sqliteStore({ path: join(config.dir, `micro-${process.pid}.db`) }), false);
  if (config.redisUrl) {
    const { redisStore } = await import('../src/stores/redis.js');
    await attempt('redis', () => redisStore({ url: config.redisUrl as string, prefix: `micro:${randomBytes(4).toString('hex')}:` }), true);
  }
  if (config.postgresUrl) {
    const { postgresStore } = await import('../src/stores/postgres.js');
    const table = `bench_micro_${randomBytes(4).toString('hex')}`;
    const pg = (await import('pg')).default;
    await attempt('postgres', () => postgresStore({ connectionString: config.postgresUrl as string, table }), true, async () => {
      const client = new pg.Client({ connectionString: config.postgresUrl });
      await client.connect();
      await client.query(`DROP TABLE IF EXISTS "${table}"`);
      await client.query(`DELETE FROM coatcheck_schema WHERE table_name = $1`, [table]).catch(() => {});
      await client.end();
    });
  }

  // The cookie store has no get/update: its load is an unseal and its save a seal of the whole record.
  const sealer = cookieStore({ secrets: [randomBytes(32).toString('base64url')] });
  const sample = record(Date.now(), 0);
  const sealed = sealer.seal(sample, 'sid');
  const cookie = [
    await sequential('load (unseal)', n, async () => sealer.unseal(sealed, 'sid')),
    await sequential('save (seal)', n, async (i) => sealer.seal({ ...sample, lastSeenAt: sample.lastSeenAt + i }, 'sid')),
  ];

  const engine = [
    await measureEngine('memory', memoryStore({ sweepInterval: 0 }), n),
    await measureEngine('cookie', cookieStore({ secrets: [randomBytes(32).toString('base64url')] }), n),
  ];
  return { stores, engine, cookie };
}

if (process.send && process.argv[2] === 'engine') {
  // Only the engine rows (bench/ab.ts --engine): quick, and precise enough to compare builds.
  const send = process.send.bind(process);
  const iterations = Number(process.argv[3] ?? 50_000);
  measureEngine('memory', memoryStore({ sweepInterval: 0 }), iterations).then(
    (result) => send({ type: 'result', result }, () => process.exit(0)),
    (error: unknown) => send({ type: 'error', error: error instanceof Error ? error.stack : String(error) }, () => process.exit(1)),
  );
}

if (process.send && process.argv[2] === 'worker') {
  const config = JSON.parse(process.argv[3] ?? '{}') as MicroConfig;
  const send = process.send.bind(process);
  runMicroWorker(config).then(
    (result) => send({ type: 'result', result }, () => process.exit(0)),
    (error: unknown) => send({ type: 'error', error: error instanceof Error ? error.stack : String(error) }, () => process.exit(1)),
  );
}
