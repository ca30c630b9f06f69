/**
 * Calibration: what a fixed amount of extra CPU per request does to throughput on this machine.
 * Bare node:http spinning 0, 5, 10, 25 and 50 µs per request, all servers up at once and loaded
 * in interleaved slices like the HTTP benchmark. It turns the "× bare" targets into a budget: the
 * CPU a library may add per request.
 */
import { median } from './http.js';
import { built } from './lib/build.js';
import { type ServerChild, startServerChild } from './lib/child.js';
import { runLoad } from './lib/load.js';
import { fixed, table, thousands } from './lib/report.js';

const BURNS = [0, 5, 10, 25, 50];

export async function runCalibration(options: {
  dir: string;
  connections: number;
  slice: number;
  slices: number;
  log: (line: string) => void;
}): Promise<{ markdown: string; rows: unknown }> {
  const children: ServerChild[] = [];
  const samples = BURNS.map(() => [] as Array<{ rps: number; cpu: number }>);
  try {
    for (const burn of BURNS) {
      // The child reads BENCH_BURN_US from the environment it is forked with.
      process.env.BENCH_BURN_US = String(burn);
      children.push(await startServerChild('node-burn', { dir: options.dir, serverScript: built('server') }));
    }
    delete process.env.BENCH_BURN_US;
    const load = { connections: options.connections };
    for (const child of children) await runLoad(child.url, '/read', [], { ...load, duration: 2 });
    for (let slice = 0; slice < options.slices; slice++) {
      for (let k = 0; k < BURNS.length; k++) {
        const index = (k + slice) % BURNS.length;
        const child = children[index] as ServerChild;
        const before = await child.usage();
        const result = await runLoad(child.url, '/read', [], { ...load, duration: options.slice });
        const after = await child.usage();
        samples[index]?.push({ rps: result.rps, cpu: (after.cpu - before.cpu) / Math.max(1, result.ok) });
      }
    }
  } finally {
    delete process.env.BENCH_BURN_US;
    for (const child of children) await child.stop();
  }
  const base = samples[0] ?? [];
  const rows = BURNS.map((burnUs, i) => {
    const mine = samples[i] ?? [];
    return {
      burnUs,
      rps: median(mine.map((s) => s.rps)),
      ratio: median(mine.map((s, j) => s.rps / (base[j]?.rps ?? NaN))),
      cpu: median(mine.map((s) => s.cpu)),
    };
  });
  for (const r of rows) options.log(`  +${r.burnUs} µs per request: ${thousands(r.rps)} req/s (${fixed(r.ratio)} × bare), server CPU ${fixed(r.cpu, 1)} µs/req`);
  const markdown = [
    `### Calibration: bare node:http plus a fixed CPU cost per request (${options.slices} interleaved slices of ${options.slice} s)`,
    '',
    table(
      ['CPU added per request', 'req/s', '× bare', 'server CPU µs/req'],
      rows.map((r) => [`${r.burnUs} µs`, thousands(r.rps), fixed(r.ratio), fixed(r.cpu, 1)]),
    ),
  ].join('\n');
  return { markdown, rows };
}
