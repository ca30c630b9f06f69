/**
 * A/B: the same app built from the repository's src/ (A) and from a candidate copy of src/ (B),
 * loaded in interleaved slices like the HTTP benchmark, so a proposed optimization is measured
 * against the current code under the same background load.
 *
 *   cp -r src /tmp/candidate-src && $EDITOR /tmp/candidate-src/core/store-call.ts
 *   npm run bench -- ab --variant=/tmp/candidate-src --only=node-memory,express-coatcheck-memory
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { SCENARIOS } from './lib/apps.js';
import { buildBench, built, ROOT, VARIANT_BUILD_DIR } from './lib/build.js';
import { type ServerChild, startServerChild } from './lib/child.js';
import { runLoad, signIn } from './lib/load.js';
import { fixed, table, thousands } from './lib/report.js';
import { median } from './http.js';

/** One engine-only measurement (micro-worker `engine`) of a build, in a fresh process. */
function engineOnce(buildDir: string, iterations: number): Promise<{ writeUs: number; readUs: number }> {
  return new Promise((resolve, reject) => {
    const child = fork(built('micro-worker', buildDir), ['engine', String(iterations)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (message: { type?: string; result?: { writeUs: number; readUs: number }; error?: string }) => {
      if (message.type === 'result' && message.result) resolve(message.result);
      else reject(new Error(message.error ?? 'engine worker failed'));
    });
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`engine worker exited with ${code}`));
    });
  });
}

/**
 * The engine without HTTP (memory store, inside the session context), A and B alternating in
 * fresh processes `rounds` times: much less noisy than HTTP, for changes inside the engine.
 */
export async function runEngineAb(variant: string, rounds: number, log: (line: string) => void): Promise<{ markdown: string; rows: unknown }> {
  buildBench(join(ROOT, 'src'));
  buildBench(variant, VARIANT_BUILD_DIR);
  const a: Array<{ writeUs: number; readUs: number }> = [];
  const b: Array<{ writeUs: number; readUs: number }> = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? ['a', 'b'] : ['b', 'a'];
    for (const side of order) {
      const result = await engineOnce(side === 'a' ? join(ROOT, 'bench', 'results', '.build') : VARIANT_BUILD_DIR, 30_000);
      (side === 'a' ? a : b).push(result);
    }
    log(`  round ${round + 1}: A write ${fixed(a.at(-1)?.writeUs ?? NaN, 2)} / read ${fixed(a.at(-1)?.readUs ?? NaN, 2)} µs, B write ${fixed(b.at(-1)?.writeUs ?? NaN, 2)} / read ${fixed(b.at(-1)?.readUs ?? NaN, 2)} µs`);
  }
  const rows = (['writeUs', 'readUs'] as const).map((key) => ({
    request: key === 'writeUs' ? 'write each request' : 'read-only',
    a: median(a.map((r) => r[key])),
    b: median(b.map((r) => r[key])),
    ratio: median(a.map((r, i) => (b[i]?.[key] ?? NaN) / r[key])),
  }));
  const markdown = [
    `### A/B, engine only (no HTTP; memory store; ${rounds} alternating rounds): src/ (A) vs ${variant} (B)`,
    '',
    table(['requests', 'A µs/request', 'B µs/request', 'B ÷ A'], rows.map((r) => [r.request, fixed(r.a, 2), fixed(r.b, 2), fixed(r.ratio)])),
  ].join('\n');
  return { markdown, rows };
}

export interface AbOptions {
  variant: string;
  scenarios: string[];
  slice: number;
  slices: number;
  warmup: number;
  connections: number;
  dir: string;
  redisUrl?: string;
  log: (line: string) => void;
}

export interface AbRow {
  scenario: string;
  mode: 'write' | 'read';
  a: { rps: number; cpu: number };
  b: { rps: number; cpu: number };
  /** Median over rounds of B's req/s ÷ A's req/s. */
  rpsRatio: number;
  /** B's CPU per request ÷ A's (below 1: B is cheaper). */
  cpuRatio: number;
}

export async function runAb(options: AbOptions): Promise<{ rows: AbRow[]; markdown: string }> {
  buildBench(join(ROOT, 'src'));
  buildBench(options.variant, VARIANT_BUILD_DIR);
  const rows: AbRow[] = [];
  for (const scenario of options.scenarios) {
    if (!SCENARIOS[scenario]) throw new Error(`unknown scenario ${scenario}`);
    const start = (serverScript: string) =>
      startServerChild(scenario, { dir: options.dir, serverScript, ...(options.redisUrl && { redisUrl: options.redisUrl }) });
    const sides: Array<{ child: ServerChild; cookies: string[] }> = [];
    try {
      for (const script of [built('server'), built('server', VARIANT_BUILD_DIR)]) {
        const child = await start(script);
        sides.push({ child, cookies: SCENARIOS[scenario]?.sessionless ? [] : await signIn(child.url, options.connections) });
      }
      for (const mode of ['write', 'read'] as const) {
        const load = { connections: options.connections };
        const samples: Array<Array<{ rps: number; cpu: number }>> = [[], []];
        for (const side of sides) await runLoad(side.child.url, `/${mode}`, side.cookies, { ...load, duration: options.warmup });
        for (let slice = 0; slice < options.slices; slice++) {
          for (const index of slice % 2 === 0 ? [0, 1] : [1, 0]) {
            const side = sides[index] as { child: ServerChild; cookies: string[] };
            const before = await side.child.usage();
            const result = await runLoad(side.child.url, `/${mode}`, side.cookies, { ...load, duration: options.slice });
            const after = await side.child.usage();
            samples[index]?.push({ rps: result.rps, cpu: (after.cpu - before.cpu) / Math.max(1, result.ok) });
            if (result.non2xx + result.errors > 0) throw new Error(`${scenario} ${mode}: ${result.non2xx} non-2xx, ${result.errors} errors`);
          }
        }
        const [a, b] = samples as [Array<{ rps: number; cpu: number }>, Array<{ rps: number; cpu: number }>];
        const row: AbRow = {
          scenario,
          mode,
          a: { rps: median(a.map((s) => s.rps)), cpu: median(a.map((s) => s.cpu)) },
          b: { rps: median(b.map((s) => s.rps)), cpu: median(b.map((s) => s.cpu)) },
          rpsRatio: median(a.map((s, i) => (b[i]?.rps ?? NaN) / s.rps)),
          cpuRatio: median(a.map((s, i) => (b[i]?.cpu ?? NaN) / s.cpu)),
        };
        rows.push(row);
        options.log(
          `  ${scenario} ${mode}: A ${thousands(row.a.rps)} req/s ${fixed(row.a.cpu, 1)} µs/req | B ${thousands(row.b.rps)} req/s ${fixed(row.b.cpu, 1)} µs/req` +
            ` | B÷A req/s ${fixed(row.rpsRatio)}, CPU ${fixed(row.cpuRatio)}`,
        );
      }
    } finally {
      for (const side of sides) await side.child.stop();
    }
  }
  const markdown = [
    `### A/B: src/ (A) vs ${options.variant} (B), ${options.slices} interleaved slices of ${options.slice} s`,
    '',
    table(
      ['app', 'requests', 'A req/s', 'B req/s', 'B ÷ A req/s', 'A CPU µs/req', 'B CPU µs/req', 'B ÷ A CPU'],
      rows.map((r) => [
        r.scenario,
        r.mode === 'write' ? 'write each request' : 'read-only',
        thousands(r.a.rps),
        thousands(r.b.rps),
        fixed(r.rpsRatio),
        fixed(r.a.cpu, 1),
        fixed(r.b.cpu, 1),
        fixed(r.cpuRatio),
      ]),
    ),
  ].join('\n');
  return { rows, markdown };
}
