/**
 * coatcheck benchmarks. `npm run bench` runs the HTTP comparison, the lost-update check and the
 * store micro-benchmark; `npm run bench -- scale` runs the 1M-session scale tests. Not part of
 * `npm test`. Results are printed and written to bench/results/ (JSON and Markdown).
 *
 *   npm run bench                      # http + lost + micro (about 6 minutes)
 *   npm run bench -- http lost micro   # any subset, in that order
 *   npm run bench -- scale             # 1M sessions: SQLite, PostgreSQL, Redis, memory
 *   npm run bench -- calibrate         # what +N µs of CPU per request does to req/s here
 *   npm run bench -- http --only=node-memory --slices=1 --slice=5 --profile
 *   npm run bench -- ab --variant=/tmp/candidate-src --only=node-memory   # a candidate src/ vs src/
 *   npm run bench -- ab --variant=/tmp/candidate-src --engine --only=none  # engine only, no HTTP
 *
 * Options: --slice=<s> (default 3) --slices=<n> (3) --warmup=<s> (2) --connections=<n> (50)
 * --only=<a,b> (comparisons with a scenario whose name contains one of these) --profile
 * (CPU-profile each server into bench/results/profiles/<scenario>/) --sessions=<n> (scale:
 * default 1000000) --stores=sqlite,postgres,redis,memory (scale: which stores; sqlite-cache adds SQLite on
 * an app-owned connection with a 256 MiB page cache) --variant=<dir> (ab:
 * the candidate copy of src/; --only then names the scenarios, default node-memory, `none` for
 * none; --engine adds the engine-only comparison, --rounds=<n> (8) its alternating rounds).
 *
 * Redis: a private redis-server on a random loopback port is started and stopped by the run
 * (the shared server on 6379 is never touched); without redis-server the Redis rows are skipped.
 * PostgreSQL: COATCHECK_POSTGRES_URL or postgres://postgres@127.0.0.1:5432/test, scratch tables only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPrivateRedis, type PrivateRedis } from '../test/helpers/private-redis.js';
import { httpTable, httpVerdicts, runHttp, summarize } from './http.js';
import { runAb, runEngineAb } from './ab.js';
import { runCalibration } from './calibrate.js';
import { buildBench, built } from './lib/build.js';
import { runLostUpdates } from './lost-updates.js';
import { runMicro } from './micro.js';
import { describeMachine, machine, RESULTS_DIR, verdictTable, type Verdict, writeResults } from './lib/report.js';
import { runScale } from './scale.js';

const args = process.argv.slice(2);
const flags = new Map<string, string>();
const commands: string[] = [];
for (const arg of args) {
  if (arg.startsWith('--')) {
    const [name, value = 'true'] = arg.slice(2).split('=');
    flags.set(name as string, value);
  } else commands.push(arg);
}
const number = (name: string, fallback: number): number => {
  const value = Number(flags.get(name) ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
};
const known = ['http', 'lost', 'micro', 'scale', 'ab', 'calibrate'];
const unknown = commands.filter((c) => !known.includes(c));
if (unknown.length > 0) {
  console.error(`unknown command(s): ${unknown.join(', ')}; expected any of ${known.join(', ')}`);
  process.exit(2);
}
const selected = commands.length > 0 ? commands : ['http', 'lost', 'micro'];

const log = (line: string) => console.log(line);
const info = machine();
const dir = mkdtempSync(join(tmpdir(), 'coatcheck-bench-'));
let redis: PrivateRedis | null = null;
const stamp = info.date.replace(/[:.]/g, '-').slice(0, 19);

async function main(): Promise<void> {
  log(`coatcheck benchmarks — ${describeMachine(info)}`);
  try {
    redis = await startPrivateRedis();
    log(`private redis-server on 127.0.0.1:${redis.port}`);
  } catch (error) {
    log(`!!! no private redis-server (${error instanceof Error ? error.message : String(error)}): Redis rows are skipped`);
  }
  const redisUrl = redis?.url;
  const sections: string[] = [];
  const json: Record<string, unknown> = { machine: info, options: Object.fromEntries(flags) };
  const verdicts: Verdict[] = [];
  log(`compiling src/ and bench/ to plain JavaScript (bench/results/.build/)${process.env.BENCH_SRC ? `, src from ${process.env.BENCH_SRC}` : ''}`);
  buildBench();

  if (selected.includes('http')) {
    const slice = number('slice', 3);
    const slices = number('slices', 3);
    const warmup = number('warmup', 2);
    const connections = number('connections', 50);
    const serverScript = built('server');
    log(`\n== HTTP: ${slices} interleaved slices of ${slice} s per app and mode after ${warmup} s warm-up, ${connections} connections (one session each) ==`);
    const only = flags.get('only')?.split(',').filter(Boolean);
    const run = await runHttp({
      slice,
      slices,
      warmup,
      connections,
      dir,
      log,
      serverScript,
      ...(redisUrl && { redisUrl, redisPid: () => redis?.pid ?? null }),
      ...(only && { only }),
      ...(flags.has('profile') && { cpuProfileDir: join(RESULTS_DIR, 'profiles') }),
    });
    const rows = summarize(run);
    const skipped = run.skipped.map((s) => `- not measured: ${s.scenario} (${s.reason})`).join('\n');
    const httpVerdictList = httpVerdicts(rows);
    verdicts.push(...httpVerdictList);
    const text = [
      `### HTTP throughput (${slices} × ${slice} s per app and mode, interleaved; ${connections} connections, one session each)`,
      '',
      httpTable(rows),
      ...(skipped ? ['', skipped] : []),
    ].join('\n');
    sections.push(text);
    json.http = { slice, slices, warmup, connections, rows, slices_: run.slices, checks: run.checks, skipped: run.skipped };
    log(`\n${text}\n\n${verdictTable(httpVerdictList)}`);
  }

  if (selected.includes('lost')) {
    log('\n== Lost updates: 50 concurrent requests, each setting its own key on one session ==');
    const lost = await runLostUpdates({ dir, log, ...(redisUrl && { redisUrl }) });
    sections.push(lost.markdown);
    verdicts.push(...lost.verdicts);
    json.lostUpdates = lost.results;
    log(`\n${lost.markdown}`);
  }

  if (selected.includes('micro')) {
    log('\n== Store micro-benchmark: one operation at a time ==');
    const micro = await runMicro({ dir, log, ...(redisUrl && { redisUrl }) });
    sections.push(micro.markdown);
    json.micro = micro.results;
    log(`\n${micro.markdown}`);
  }

  if (selected.includes('calibrate')) {
    log('\n== Calibration: bare node:http plus a fixed CPU cost per request ==');
    const calibration = await runCalibration({ dir, log, connections: number('connections', 50), slice: number('slice', 3), slices: number('slices', 3) });
    sections.push(calibration.markdown);
    json.calibration = calibration.rows;
    log(`\n${calibration.markdown}`);
  }

  if (selected.includes('ab')) {
    const variant = flags.get('variant');
    if (!variant) throw new Error('ab needs --variant=<path to a copy of src/ with the change>');
    if (flags.has('engine')) {
      log(`\n== A/B, engine only: src/ (A) vs ${variant} (B) ==`);
      const engineAb = await runEngineAb(variant, number('rounds', 8), log);
      sections.push(engineAb.markdown);
      json.abEngine = engineAb.rows;
      log(`\n${engineAb.markdown}`);
    }
    const scenarios = flags.get('only')?.split(',').filter(Boolean) ?? ['node-memory'];
    log(`\n== A/B: ${scenarios.join(', ')} from src/ (A) and from ${variant} (B) ==`);
    const ab = flags.get('only') === 'none' ? null : await runAb({
      variant,
      scenarios,
      slice: number('slice', 3),
      slices: number('slices', 6),
      warmup: number('warmup', 2),
      connections: number('connections', 50),
      dir,
      log,
      ...(redisUrl && { redisUrl }),
    });
    if (ab) {
      sections.push(ab.markdown);
      json.ab = ab.rows;
      log(`\n${ab.markdown}`);
    }
  }

  if (selected.includes('scale')) {
    log('\n== Scale ==');
    const stores = flags.get('stores')?.split(',').filter(Boolean);
    const scale = await runScale({ dir, log, sessions: number('sessions', 1_000_000), ...(redisUrl && { redisUrl }), ...(stores && { stores }) });
    sections.push(scale.markdown);
    verdicts.push(...scale.verdicts);
    json.scale = scale.results;
    log(`\n${scale.markdown}`);
  }

  const markdown = [`## coatcheck benchmarks`, '', describeMachine(info), '', ...sections.flatMap((s) => [s, '']), '### Targets', '', verdictTable(verdicts)].join('\n');
  json.verdicts = verdicts;
  const name = `${selected.join('-')}-${stamp}`;
  const files = writeResults(name, json, markdown);
  writeResults(`latest-${selected.join('-')}`, json, markdown);
  log(`\n== Targets ==\n${verdictTable(verdicts)}\n\nwritten: ${files.join(', ')}`);
}

try {
  await main();
} finally {
  await (redis as PrivateRedis | null)?.stop();
  rmSync(dir, { recursive: true, force: true });
}
