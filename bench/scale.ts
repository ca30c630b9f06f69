/**
 * Scale: 1M sessions per store. Rows are bulk-loaded directly (one SQL statement, Redis pipelines)
 * in each store's own layout, then the engine's operations are timed on them:
 *
 * - list one user's sessions (`sessions.listByUser`) and end them (`sessions.killSessionsByUser`)
 *   among 1M (10 sessions per user; 200 list calls and 100 kill calls, one at a time);
 * - sweep every record as expired with `sessions.clearExpired()` (default batches of 1000),
 *   watching the event loop with `perf_hooks.monitorEventLoopDelay`;
 * - heap per session in the memory store (compiled child, `--expose-gc`).
 *
 * Scratch data only: a temp SQLite file, a `bench_scale_<random>` PostgreSQL table (dropped
 * afterwards) and a random key prefix on the run's private redis-server (deleted afterwards).
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { sweepHint } from '../src/stores/sqlite-sweep-hint.js';
import { createSessions, type Sessions } from '../src/index.js';
import type { Store } from '../src/stores/types.js';
import { built } from './lib/build.js';
import { fixed, table, thousands, type Verdict } from './lib/report.js';
import { type OpTiming, sweepAll, type SweepTiming, timeOps } from './lib/scale-ops.js';
import { postgresUrlIfUp } from './lib/services.js';
import type { MemoryScaleResult } from './scale-memory.js';

export interface StoreScaleResult {
  store: string;
  sessions: number;
  loadSeconds: number;
  list?: OpTiming;
  kill?: OpTiming;
  sweep?: SweepTiming | { native: true; note: string };
  extra?: Record<string, string>;
  error?: string;
}

export interface ScaleOptions {
  dir: string;
  log: (line: string) => void;
  redisUrl?: string;
  sessions: number;
  stores?: string[];
}

const SESSIONS_PER_USER = 10;
const HOUR = 3_600_000;
const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

/** Times list/kill on the loaded store, then sweeps it with a clock two hours ahead (everything expired). */
async function exercise(store: Store, count: number, result: StoreScaleResult, log: (line: string) => void, sweep = true): Promise<void> {
  const sessions: Sessions = createSessions({ store });
  const { list, kill } = await timeOps(sessions, Math.floor(count / SESSIONS_PER_USER));
  result.list = list;
  result.kill = kill;
  log(`    list ${fixed(list.p50Ms, 2)} ms p50 / ${fixed(list.p99Ms, 2)} ms p99 (${fixed(list.perCall, 1)} sessions); kill ${fixed(kill.p50Ms, 2)} / ${fixed(kill.p99Ms, 2)} ms (${fixed(kill.perCall, 1)} sessions)`);
  if (!sweep) return;
  const now = Date.now();
  const later = createSessions({ store, clock: { now: () => now + 2 * HOUR } });
  result.sweep = await sweepAll(later);
  log(`    sweep ${thousands(result.sweep.deleted)} expired in ${fixed(result.sweep.seconds, 1)} s, ${result.sweep.batches} batches, longest event-loop stall ${fixed(result.sweep.maxStallMs, 1)} ms`);
}

/**
 * SQLite, either on the connection the store opens itself (defaults: 2 MiB page cache) or, with
 * `cacheMiB`, on an app-owned connection with a bigger page cache (`sqliteStore({ database })`),
 * which is how an app would tune it.
 */
async function sqliteScale(options: ScaleOptions, cacheMiB?: number): Promise<StoreScaleResult> {
  const { sqliteStore } = await import('../src/stores/sqlite.js');
  const count = options.sessions;
  const path = join(options.dir, `scale-${cacheMiB ?? 'default'}.db`);
  let owned: Database.Database | undefined;
  if (cacheMiB !== undefined) {
    owned = new Database(path, { timeout: 5_000 });
    owned.pragma('journal_mode = WAL');
    owned.pragma('synchronous = NORMAL');
    owned.pragma(`cache_size = ${-cacheMiB * 1024}`);
  }
  const store = owned ? sqliteStore({ database: owned }) : sqliteStore({ path });
  const result: StoreScaleResult = {
    store: cacheMiB === undefined ? 'SQLite (file, WAL, store defaults)' : `SQLite (file, WAL, app connection with ${cacheMiB} MiB page cache)`,
    sessions: count,
    loadSeconds: 0,
  };
  try {
    const start = process.hrtime.bigint();
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    const now = Date.now();
    // CASTs: better-sqlite3 binds JS numbers as REAL, which would make user ids 'u5.0'.
    // Ids: the store keeps 43-character base64url SHA-256 hashes; random hex of the same length
    // gives the id index the same size and the same random order.
    db.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < CAST(? AS INTEGER) - 1)
       INSERT INTO coatcheck_sessions (id, user_id, data, meta, created_at, last_seen_at, expires_at, ip, user_agent, sweep_at)
       SELECT substr(lower(hex(randomblob(22))), 1, 43), 'u' || (i % CAST(? AS INTEGER)), '{"n":1}', '{}',
              CAST(? AS INTEGER) - i, CAST(? AS INTEGER), CAST(? AS INTEGER) + ${HOUR}, '127.0.0.1', 'bench/1.0',
              CAST(? AS INTEGER) + ${sweepHint(0, HOUR)} FROM n`,
    ).run(count, Math.floor(count / SESSIONS_PER_USER), now, now, now, now);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.exec('ANALYZE');
    db.close();
    result.loadSeconds = seconds(start);
    options.log(`  ${result.store}: ${thousands(count)} rows loaded in ${fixed(result.loadSeconds, 1)} s`);
    await exercise(store, count, result, options.log);
  } finally {
    await store.close();
    owned?.close();
  }
  return result;
}

async function postgresScale(options: ScaleOptions, url: string): Promise<StoreScaleResult> {
  const { postgresStore } = await import('../src/stores/postgres.js');
  const pg = (await import('pg')).default;
  const count = options.sessions;
  const table = `bench_scale_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const store = postgresStore({ connectionString: url, table, queryTimeout: 30_000 });
  const result: StoreScaleResult = { store: 'PostgreSQL 15', sessions: count, loadSeconds: 0 };
  try {
    await store.migrate();
    const start = process.hrtime.bigint();
    const now = Date.now();
    const salt = randomBytes(8).toString('hex');
    await client.query(
      `INSERT INTO "${table}" (id, user_id, data, meta, created_at, last_seen_at, expires_at, ip, user_agent)
       SELECT encode(sha256(convert_to(i::text || $1, 'UTF8')), 'base64'), 'u' || (i % $2), '{"n":1}'::jsonb, '{}'::jsonb,
              $3::bigint - i, $3::bigint, $3::bigint + ${HOUR}, '127.0.0.1', 'bench/1.0'
       FROM generate_series(0, $4::int - 1) AS i`,
      [salt, Math.floor(count / SESSIONS_PER_USER), now, count],
    );
    await client.query(`VACUUM ANALYZE "${table}"`);
    result.loadSeconds = seconds(start);
    options.log(`  PostgreSQL: ${thousands(count)} rows loaded in ${fixed(result.loadSeconds, 1)} s (table ${table})`);
    await exercise(store, count, result, options.log);
  } finally {
    await store.close();
    await client.query(`DROP TABLE IF EXISTS "${table}"`);
    await client.query('DELETE FROM coatcheck_schema WHERE table_name = $1', [table]).catch(() => {});
    await client.end();
  }
  return result;
}

async function redisScale(options: ScaleOptions, url: string): Promise<StoreScaleResult> {
  const { redisStore } = await import('../src/stores/redis.js');
  const { Redis } = await import('ioredis');
  const count = options.sessions;
  const prefix = `scale:${randomBytes(4).toString('hex')}:`;
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  const store = redisStore({ url, prefix, commandTimeout: 30_000 });
  const result: StoreScaleResult = { store: 'Redis 7 (private server)', sessions: count, loadSeconds: 0 };
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? NaN);
  try {
    const memoryBefore = await usedMemory();
    const start = process.hrtime.bigint();
    const now = Date.now();
    const expiresAt = now + HOUR;
    // The store's own layout (docs/stores/redis.md): a hash per session, a sorted set per user.
    const until = expiresAt + HOUR;
    const users = Math.floor(count / SESSIONS_PER_USER);
    const CHUNK = 5_000;
    for (let base = 0; base < count; base += CHUNK) {
      const pipeline = redis.pipeline();
      for (let i = base; i < Math.min(count, base + CHUNK); i++) {
        const id = randomBytes(32).toString('base64url');
        const key = `${prefix}s:{${id}}`;
        const user = `u${i % users}`;
        pipeline.hset(key, 'c', now - i, 'l', now, 'e', expiresAt, 'u', user, 'x', until, 'i', '127.0.0.1', 'a', 'bench/1.0', 'd:n', '1');
        pipeline.pexpireat(key, expiresAt);
        pipeline.zadd(`${prefix}u:{${user}}`, until, id);
      }
      await pipeline.exec();
    }
    for (let base = 0; base < users; base += CHUNK) {
      const pipeline = redis.pipeline();
      for (let u = base; u < Math.min(users, base + CHUNK); u++) pipeline.pexpireat(`${prefix}u:{u${u}}`, until);
      await pipeline.exec();
    }
    result.loadSeconds = seconds(start);
    const bytes = ((await usedMemory()) - memoryBefore) / count;
    options.log(`  Redis: ${thousands(count)} sessions loaded in ${fixed(result.loadSeconds, 1)} s (${thousands(bytes)} bytes each incl. user indexes)`);
    await exercise(store, count, result, options.log, false);
    result.sweep = { native: true, note: 'native TTL (PEXPIREAT): clearExpired() is a no-op' };
    // Cleanup through the engine with the DEFAULT storeTimeout: the store ends everything in
    // bounded destroyStep calls (SCAN + UNLINK per step), so no single call may outlast 5 s.
    const wiper = createSessions({ store });
    let longestStepMs = 0;
    let stepCount = 0;
    wiper.metrics.onStoreCall((call) => {
      if (call.operation !== 'destroyStep') return;
      stepCount++;
      longestStepMs = Math.max(longestStepMs, call.durationMs);
    });
    const wipe = process.hrtime.bigint();
    const gone = await wiper.killSessionsByUser();
    const wipeSeconds = seconds(wipe);
    result.extra = {
      'Redis memory per session': `${thousands(bytes)} bytes`,
      'Redis killSessionsByUser() of everyone (default storeTimeout)': `${thousands(gone)} sessions in ${fixed(wipeSeconds, 1)} s, ${thousands(stepCount)} store calls, longest ${fixed(longestStepMs, 1)} ms`,
    };
    options.log(`    cleanup: killSessionsByUser() ended ${thousands(gone)} in ${fixed(wipeSeconds, 1)} s (${thousands(stepCount)} store calls, longest ${fixed(longestStepMs, 1)} ms)`);
  } finally {
    await store.close();
    // Whatever is left under the prefix (index keys, a failed run) goes too.
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  }
  return result;
}

function memoryScale(count: number): Promise<MemoryScaleResult> {
  return new Promise((resolve, reject) => {
    const child = fork(built('scale-memory'), ['worker', String(count)], {
      execArgv: ['--expose-gc', '--max-old-space-size=4096'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('memory scale worker did not finish within 10 minutes'));
    }, 600_000);
    child.on('message', (message: { type?: string; result?: MemoryScaleResult; error?: string }) => {
      clearTimeout(timer);
      if (message.type === 'result' && message.result) resolve(message.result);
      else reject(new Error(message.error ?? 'memory scale worker failed'));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`memory scale worker exited with ${code}`));
    });
  });
}

export async function runScale(options: ScaleOptions): Promise<{ markdown: string; verdicts: Verdict[]; results: unknown }> {
  const want = (name: string) => !options.stores || options.stores.includes(name);
  const results: StoreScaleResult[] = [];
  const attempt = async (name: string, run: () => Promise<StoreScaleResult>) => {
    try {
      results.push(await run());
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      options.log(`  ${name}: failed (${message})`);
      results.push({ store: name, sessions: options.sessions, loadSeconds: NaN, error: message });
    }
  };
  if (want('sqlite')) await attempt('SQLite', () => sqliteScale(options));
  // Only on request (--stores=sqlite-cache): a bigger page cache made the sweep slower, not faster.
  if (options.stores?.includes('sqlite-cache')) await attempt('SQLite (256 MiB cache)', () => sqliteScale(options, 256));
  if (want('postgres')) {
    const url = await postgresUrlIfUp(options.log);
    if (url) await attempt('PostgreSQL', () => postgresScale(options, url));
  }
  if (want('redis')) {
    if (options.redisUrl) await attempt('Redis', () => redisScale(options, options.redisUrl as string));
    else options.log('  Redis: skipped (no private redis-server)');
  }
  let memory: MemoryScaleResult | { error: string } | undefined;
  if (want('memory')) {
    try {
      memory = await memoryScale(options.sessions);
      options.log(`  memory: ${fixed(memory.bytesPerSession, 0)} bytes of heap per session; heap ${fixed(memory.heapAfterMiB, 0)} MiB with ${thousands(options.sessions)} sessions`);
    } catch (error) {
      memory = { error: error instanceof Error ? error.message : String(error) };
      options.log(`  memory: failed (${memory.error})`);
    }
  }

  const n = thousands(options.sessions);
  const rows: Array<Array<string | number>> = [];
  const sweepCell = (s: StoreScaleResult['sweep']) =>
    !s ? '' : 'native' in s ? s.note : `${thousands(s.deleted)} in ${fixed(s.seconds, 1)} s (${s.batches} batches of ${s.batchSize})`;
  const stallCell = (s: StoreScaleResult['sweep']) => (!s || 'native' in s ? '—' : `${fixed(s.maxStallMs, 1)} ms`);
  const opCell = (t: OpTiming | undefined) => (t ? `${fixed(t.p50Ms, 2)} / ${fixed(t.p99Ms, 2)} / ${fixed(t.maxMs, 1)}` : '');
  for (const r of results) {
    if (r.error) rows.push([r.store, 'failed', r.error, '', '', '']);
    else rows.push([r.store, `${fixed(r.loadSeconds, 1)} s`, opCell(r.list), opCell(r.kill), sweepCell(r.sweep), stallCell(r.sweep)]);
  }
  if (memory && !('error' in memory)) {
    rows.push(['memory', '(created through store.create)', opCell(memory.list), opCell(memory.kill), sweepCell(memory.sweep), stallCell(memory.sweep)]);
  }
  const extras = results.flatMap((r) => Object.entries(r.extra ?? {}).map(([k, v]) => `- ${k}: ${v}`));
  const memoryLine =
    memory && !('error' in memory)
      ? `- memory store: ${n} small signed-in sessions take ${fixed(memory.heapAfterMiB - memory.heapBeforeMiB, 0)} MiB of heap after GC ` +
        `(${fixed(memory.bytesPerSession, 0)} bytes per session; heap ${fixed(memory.heapAfterMiB, 0)} MiB in all, RSS ${fixed(memory.rssAfterMiB, 0)} MiB)`
      : memory
        ? `- memory store: failed (${memory.error})`
        : '';
  const markdown = [
    `### Scale (${n} sessions per store, ${SESSIONS_PER_USER} per user)`,
    '',
    table(['store', 'bulk load', `list one user's sessions, ms (p50 / p99 / max)`, `kill one user's sessions, ms (p50 / p99 / max)`, `sweep ${n} expired via clearExpired()`, 'longest event-loop stall'], rows),
    '',
    ...[memoryLine, ...extras].filter(Boolean),
  ].join('\n');

  const verdicts: Verdict[] = [];
  for (const r of [...results, ...(memory && !('error' in memory) ? [{ store: 'memory', sessions: memory.sessions, loadSeconds: 0, list: memory.list, kill: memory.kill, sweep: memory.sweep }] : [])]) {
    if (r.error) continue;
    const s = r.sweep;
    if (s && !('native' in s)) {
      verdicts.push({ target: `${r.store}: sweep ${n} expired`, measured: `${fixed(s.seconds, 1)} s`, required: '< 20 s', pass: s.seconds < 20 && s.deleted >= r.sessions * 0.99 });
      verdicts.push({ target: `${r.store}: longest event-loop stall while sweeping`, measured: `${fixed(s.maxStallMs, 1)} ms`, required: '≤ 50 ms', pass: s.maxStallMs <= 50 });
    }
    for (const [what, t] of [['list', r.list], ['kill', r.kill]] as const) {
      if (!t) continue;
      verdicts.push({
        target: `${r.store}: ${what} one user's sessions among ${n} (median of ${t.calls})`,
        measured: `${fixed(t.p50Ms, 2)} ms (p99 ${fixed(t.p99Ms, 2)} ms)`,
        required: '< 5 ms',
        pass: t.p50Ms < 5,
        ...(t.p99Ms >= 5 && { note: 'p99 over 5 ms' }),
      });
    }
  }
  if (memory && !('error' in memory)) {
    verdicts.push({ target: `memory store: heap with ${n} small sessions`, measured: `${fixed(memory.heapAfterMiB, 0)} MiB`, required: '≤ 1024 MiB', pass: memory.heapAfterMiB <= 1024 });
  }
  return { markdown, verdicts, results: { stores: results, memory } };
}
