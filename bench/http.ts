/**
 * HTTP throughput and latency. Every app runs in its own server process (one core) while
 * autocannon loads it from this process (the other core), over loopback, each connection with its
 * own signed-in session.
 *
 * The machine is shared and its background load drifts, so peers are measured interleaved: each
 * comparison (bare server, coatcheck, the peer library) keeps all its servers up and runs short
 * slices round-robin, rotating the order each time; a ratio is the median over slices of
 * (this slice's req/s ÷ the reference's req/s in the same round), so a burst of background load
 * hits both sides of a ratio.
 */
import { processCpuMicros } from './lib/proc-cpu.js';
import { SCENARIOS } from './lib/apps.js';
import { postgresUrlIfUp } from './lib/services.js';
import { type ServerChild, startServerChild } from './lib/child.js';
import { type LoadResult, runLoad, signIn } from './lib/load.js';
import { fixed, table, thousands, type Verdict } from './lib/report.js';

export type Mode = 'write' | 'read';

export interface HttpOptions {
  /** Seconds per slice. */
  slice: number;
  /** Slices per contender and mode. */
  slices: number;
  warmup: number;
  connections: number;
  redisUrl?: string;
  /** The private redis-server's pid, to charge its CPU time to the Redis rows. */
  redisPid?: () => number | null;
  dir: string;
  serverScript?: string;
  /** Only comparisons with a contender whose name contains one of these. */
  only?: string[];
  cpuProfileDir?: string;
  log: (line: string) => void;
}

export interface Slice extends LoadResult {
  comparison: number;
  scenario: string;
  mode: Mode;
  slice: number;
  /** Server CPU time (user + system) per 2xx response, µs. */
  cpuPerRequest: number;
  /** For Redis scenarios: the redis-server's CPU time per 2xx response, µs. */
  storeCpuPerRequest?: number;
}

interface Comparison {
  contenders: string[];
}

/** Bare server first (the reference), then coatcheck, then its peer. */
const COMPARISONS: Comparison[] = [
  { contenders: ['node-bare', 'node-floor', 'node-memory', 'node-memory-nocontext'] },
  { contenders: ['node-bare', 'node-sqlite'] },
  { contenders: ['node-bare', 'node-redis'] },
  { contenders: ['node-bare', 'node-postgres'] },
  { contenders: ['node-bare', 'node-cookie', 'node-iron'] },
  { contenders: ['express-bare', 'express-coatcheck-unused', 'express-coatcheck-memory', 'express-coatcheck-memory-eager', 'express-session-memory'] },
  { contenders: ['express-bare', 'express-coatcheck-redis', 'express-session-redis'] },
  { contenders: ['fastify-bare', 'fastify-coatcheck-memory', 'fastify-session-memory'] },
];

/** Each coatcheck scenario's peer in the same configuration. */
export const PEERS: Record<string, string> = {
  'node-cookie': 'node-iron',
  'express-coatcheck-memory': 'express-session-memory',
  'express-coatcheck-memory-eager': 'express-session-memory',
  'express-coatcheck-redis': 'express-session-redis',
  'fastify-coatcheck-memory': 'fastify-session-memory',
};

async function counters(base: string, cookies: readonly string[]): Promise<number> {
  let sum = 0;
  for (let i = 0; i < cookies.length; i += 16) {
    const values = await Promise.all(
      cookies.slice(i, i + 16).map(async (cookie) => {
        const response = await fetch(`${base}/read`, { headers: { cookie } });
        const parsed = (await response.json()) as { n?: number };
        return response.status === 200 ? (parsed.n ?? 0) : 0;
      }),
    );
    for (const value of values) sum += value;
  }
  return sum;
}

export interface WriteCheck {
  comparison: number;
  scenario: string;
  /** Sum of every session's counter read back after the write runs. */
  counted: number;
  /** 2xx answers to writes (warm-up included). */
  acknowledged: number;
  ok: boolean;
}

export interface HttpRun {
  slices: Slice[];
  checks: WriteCheck[];
  skipped: Array<{ scenario: string; reason: string }>;
}

const message = (error: unknown): string => (error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error));

export async function runHttp(options: HttpOptions): Promise<HttpRun> {
  const run: HttpRun = { slices: [], checks: [], skipped: [] };
  const comparisons = COMPARISONS.map((c, index) => ({ ...c, index })).filter(
    (c) => !options.only || c.contenders.some((name) => options.only?.some((o) => name.includes(o))),
  );
  const load = { connections: options.connections };
  const wantsPostgres = comparisons.some((c) => c.contenders.some((name) => SCENARIOS[name]?.needsPostgres));
  const postgresUrl = wantsPostgres ? await postgresUrlIfUp(options.log) : undefined;
  for (const comparison of comparisons) {
    const servers = new Map<string, { child: ServerChild; cookies: string[] }>();
    try {
      for (const scenario of comparison.contenders) {
        const described = SCENARIOS[scenario];
        if (!described) continue;
        if (described.needsRedis && !options.redisUrl) {
          run.skipped.push({ scenario, reason: 'no Redis available' });
          continue;
        }
        if (described.needsPostgres && !postgresUrl) {
          run.skipped.push({ scenario, reason: 'no PostgreSQL available' });
          continue;
        }
        try {
          const child = await startServerChild(scenario, {
            dir: options.dir,
            ...(options.redisUrl && { redisUrl: options.redisUrl }),
            ...(postgresUrl && { postgresUrl }),
            ...(options.serverScript && { serverScript: options.serverScript }),
            ...(options.cpuProfileDir && { cpuProfileDir: options.cpuProfileDir }),
          });
          const cookies = SCENARIOS[scenario]?.sessionless ? [] : await signIn(child.url, options.connections);
          servers.set(scenario, { child, cookies });
        } catch (error) {
          run.skipped.push({ scenario, reason: message(error) });
          options.log(`  ${scenario}: not measured (${message(error)})`);
        }
      }
      const names = [...servers.keys()];
      if (names.length < 2) continue;
      options.log(`  -- ${names.join(' vs ')}`);
      for (const mode of ['write', 'read'] as const) {
        const path = `/${mode}`;
        const live = new Map(names.map((name) => [name, [...(servers.get(name)?.cookies ?? [])]]));
        const warmOk = new Map<string, number>();
        for (const name of names) {
          const warm = await runLoad((servers.get(name) as { child: ServerChild }).child.url, path, live.get(name) as string[], { ...load, duration: options.warmup });
          warmOk.set(name, warm.ok);
        }
        const okTotals = new Map(warmOk);
        for (let slice = 0; slice < options.slices; slice++) {
          // Rotate who goes first so no contender always runs right after the same neighbour.
          const order = names.map((_, i) => names[(i + slice) % names.length] as string);
          for (const name of order) {
            const server = servers.get(name) as { child: ServerChild };
            const redisPid = SCENARIOS[name]?.needsRedis ? (options.redisPid?.() ?? null) : null;
            const storeBefore = processCpuMicros(redisPid);
            const before = await server.child.usage();
            const result = await runLoad(server.child.url, path, live.get(name) as string[], { ...load, duration: options.slice });
            const after = await server.child.usage();
            const storeAfter = processCpuMicros(redisPid);
            okTotals.set(name, (okTotals.get(name) ?? 0) + result.ok);
            const cpuPerRequest = result.ok > 0 ? (after.cpu - before.cpu) / result.ok : NaN;
            const storeCpu = storeBefore !== null && storeAfter !== null && result.ok > 0 ? { storeCpuPerRequest: (storeAfter - storeBefore) / result.ok } : {};
            run.slices.push({ comparison: comparison.index, scenario: name, mode, slice, ...result, cpuPerRequest, ...storeCpu });
          }
        }
        for (const name of names) {
          const mine = run.slices.filter((s) => s.comparison === comparison.index && s.scenario === name && s.mode === mode);
          const rps = median(mine.map((s) => s.rps));
          const failures = mine.reduce((sum, s) => sum + s.non2xx + s.errors + s.timeouts, 0);
          let note = '';
          if (mode === 'write' && !SCENARIOS[name]?.sessionless) {
            const server = servers.get(name) as { child: ServerChild };
            const counted = await counters(server.child.url, live.get(name) as string[]);
            const acknowledged = okTotals.get(name) ?? 0;
            // Requests in flight when a run stops may be applied without being counted (or, for
            // cookie sessions, counted without their new cookie being kept): allow one per connection per run.
            const ok = Math.abs(counted - acknowledged) <= options.connections * (options.slices + 1);
            run.checks.push({ comparison: comparison.index, scenario: name, counted, acknowledged, ok });
            note = `  counters ${counted}/${acknowledged} ${ok ? 'ok' : 'MISMATCH'}`;
          }
          options.log(
            `     ${name.padEnd(26)} ${mode.padEnd(5)} ${thousands(rps).padStart(7)} req/s (slices ${mine.map((s) => thousands(s.rps)).join(', ')})` +
              `  p99 ${fixed(median(mine.map((s) => s.p99)), 1)} ms  server CPU ${fixed(median(mine.map((s) => s.cpuPerRequest)), 1)} µs/req  failed ${failures}${note}`,
          );
        }
      }
    } finally {
      for (const { child } of servers.values()) await child.stop();
    }
  }
  return run;
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  if (sorted.length === 0) return NaN;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

export interface Row {
  comparison: number;
  group: string;
  scenario: string;
  label: string;
  mode: Mode;
  rps: number;
  p50: number;
  p99: number;
  /** Server CPU µs per request (median over slices). */
  cpu: number;
  /** redis-server CPU µs per request (median over slices), for Redis scenarios. */
  storeCpu?: number;
  /** Median over slices of rps ÷ the bare server's rps in the same round. */
  ratioToBare: number;
  /** The bare server's CPU per request ÷ this one's: the throughput ratio if the server were the only bottleneck. */
  cpuRatioToBare: number;
  peer?: { scenario: string; ratio: number };
  failures: number;
  check?: WriteCheck;
}

/** Median over rounds of a's req/s ÷ b's req/s, pairing slices of the same round. */
function pairedRatio(slices: Slice[], comparison: number, mode: Mode, a: string, b: string): number {
  const of = (name: string) => slices.filter((s) => s.comparison === comparison && s.mode === mode && s.scenario === name);
  const mine = of(a);
  const theirs = of(b);
  const ratios = mine.flatMap((s) => {
    const other = theirs.find((t) => t.slice === s.slice);
    return other && other.rps > 0 ? [s.rps / other.rps] : [];
  });
  return median(ratios);
}

export function summarize(run: HttpRun): Row[] {
  const rows: Row[] = [];
  const seen = new Set<string>();
  for (const s of run.slices) {
    const key = `${s.comparison}|${s.scenario}|${s.mode}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const mine = run.slices.filter((t) => `${t.comparison}|${t.scenario}|${t.mode}` === key);
    const described = SCENARIOS[s.scenario] ?? { group: '?', label: s.scenario };
    const bare = COMPARISONS[s.comparison]?.contenders[0] as string;
    const peer = PEERS[s.scenario];
    const check = run.checks.find((c) => c.comparison === s.comparison && c.scenario === s.scenario);
    const hasPeer = peer !== undefined && run.slices.some((t) => t.comparison === s.comparison && t.scenario === peer);
    const cpu = median(mine.map((t) => t.cpuPerRequest));
    const bareCpu = median(run.slices.filter((t) => t.comparison === s.comparison && t.mode === s.mode && t.scenario === bare).map((t) => t.cpuPerRequest));
    rows.push({
      comparison: s.comparison,
      group: described.group,
      scenario: s.scenario,
      label: described.label,
      mode: s.mode,
      rps: median(mine.map((t) => t.rps)),
      p50: median(mine.map((t) => t.p50)),
      p99: median(mine.map((t) => t.p99)),
      cpu,
      ...(mine.some((t) => t.storeCpuPerRequest !== undefined) && { storeCpu: median(mine.flatMap((t) => (t.storeCpuPerRequest === undefined ? [] : [t.storeCpuPerRequest]))) }),
      ratioToBare: pairedRatio(run.slices, s.comparison, s.mode, s.scenario, bare),
      cpuRatioToBare: bareCpu / cpu,
      ...(hasPeer && { peer: { scenario: peer, ratio: pairedRatio(run.slices, s.comparison, s.mode, s.scenario, peer) } }),
      failures: mine.reduce((sum, t) => sum + t.non2xx + t.errors + t.timeouts, 0),
      ...(check && s.mode === 'write' && { check }),
    });
  }
  return rows.sort((a, b) => a.comparison - b.comparison || (a.mode === b.mode ? 0 : a.mode === 'write' ? -1 : 1));
}

export function httpTable(rows: Row[]): string {
  return table(
    ['framework', 'app', 'requests', 'req/s', 'p50 ms', 'p99 ms', '× bare', '× peer', 'server CPU µs/req', 'CPU × bare', 'redis-server CPU µs/req', 'failed', 'writes kept'],
    rows.map((r) => [
      r.group,
      r.label,
      r.mode === 'write' ? 'write each request' : 'read-only',
      thousands(r.rps),
      fixed(r.p50, 1),
      fixed(r.p99, 1),
      r.scenario.endsWith('-bare') ? '1' : fixed(r.ratioToBare),
      r.peer ? `${fixed(r.peer.ratio)} vs ${SCENARIOS[r.peer.scenario]?.label.split(' ')[0] ?? r.peer.scenario}` : '',
      fixed(r.cpu, 1),
      r.scenario.endsWith('-bare') ? '1' : fixed(r.cpuRatioToBare),
      r.storeCpu === undefined ? '' : fixed(r.storeCpu, 1),
      r.failures,
      r.check ? `${r.check.ok ? 'yes' : 'NO'} (${r.check.counted}/${r.check.acknowledged})` : '',
    ]),
  );
}

export function httpVerdicts(rows: Row[]): Verdict[] {
  const find = (scenario: string, mode: Mode) => rows.find((r) => r.scenario === scenario && r.mode === mode);
  const verdicts: Verdict[] = [];
  const label = (mode: Mode) => (mode === 'write' ? 'write each request' : 'read-only');
  const failureNote = (r: Row | undefined) => (r && r.failures > 0 ? { note: `${r.failures} failed requests` } : r?.check && !r.check.ok ? { note: 'writes lost' } : {});
  const bareTarget = (name: string, scenario: string, mode: Mode, required: number) => {
    const r = find(scenario, mode);
    verdicts.push({
      target: `${name}, ${label(mode)}, × bare node:http`,
      measured: r ? fixed(r.ratioToBare) : 'not measured',
      required: `≥ ${required}`,
      pass: r ? r.ratioToBare >= required && r.failures === 0 && (r.check?.ok ?? true) : null,
      ...failureNote(r),
    });
  };
  bareTarget('memory store', 'node-memory', 'write', 0.85);
  bareTarget('memory store', 'node-memory', 'read', 0.9);
  bareTarget('cookie store', 'node-cookie', 'write', 0.75);
  bareTarget('cookie store', 'node-cookie', 'read', 0.75);
  bareTarget('SQLite store', 'node-sqlite', 'write', 0.75);
  bareTarget('SQLite store', 'node-sqlite', 'read', 0.75);
  bareTarget('Redis store', 'node-redis', 'write', 0.6);
  bareTarget('Redis store', 'node-redis', 'read', 0.6);
  for (const [scenario, name] of [
    ['express-coatcheck-memory', 'Express: coatcheck ÷ express-session, memory'],
    ['express-coatcheck-redis', 'Express: coatcheck ÷ express-session, Redis'],
  ] as const) {
    for (const mode of ['write', 'read'] as const) {
      const r = find(scenario, mode);
      verdicts.push({
        target: `${name}, ${label(mode)}`,
        measured: r?.peer ? fixed(r.peer.ratio) : 'not measured',
        required: '≥ 1.4',
        pass: r?.peer ? r.peer.ratio >= 1.4 && r.failures === 0 && (r.check?.ok ?? true) : null,
        ...failureNote(r),
      });
    }
  }
  return verdicts;
}
