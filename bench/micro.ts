/**
 * Store micro-benchmark (issue 3): the cost of one load (`get`) and one save (`update` of one key)
 * per store, one call at a time, plus `touch`, `create`, and throughput with 32 calls in flight for
 * the networked stores; and the engine's own cost per request without HTTP. Runs compiled code in
 * a child process (bench/micro-worker.ts).
 */
import { fork } from 'node:child_process';
import { built } from './lib/build.js';
import { fixed, table, thousands } from './lib/report.js';
import type { EngineResult, MicroConfig, OpStats, StoreResult } from './micro-worker.js';
import { postgresUrlIfUp } from './lib/services.js';

export interface MicroResults {
  stores: StoreResult[];
  engine: EngineResult[];
  cookie: OpStats[];
}

function runWorker(config: MicroConfig): Promise<MicroResults> {
  return new Promise((resolve, reject) => {
    const child = fork(built('micro-worker'), ['worker', JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('micro-benchmark did not finish within 10 minutes'));
    }, 600_000);
    child.on('message', (message: { type?: string; result?: MicroResults; error?: string }) => {
      clearTimeout(timer);
      if (message.type === 'result' && message.result) resolve(message.result);
      else reject(new Error(message.error ?? 'micro-benchmark failed'));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`micro-benchmark worker exited with ${code}`));
    });
  });
}

export async function runMicro(options: { dir: string; log: (line: string) => void; redisUrl?: string; iterations?: number }): Promise<{ markdown: string; results: MicroResults }> {
  const postgresUrl = await postgresUrlIfUp(options.log);
  const results = await runWorker({
    dir: options.dir,
    iterations: options.iterations ?? 20_000,
    ...(options.redisUrl && { redisUrl: options.redisUrl }),
    ...(postgresUrl && { postgresUrl }),
  });
  const op = (r: StoreResult, name: string) => r.ops.find((o) => o.op === name);
  const cell = (o: OpStats | undefined) => (o ? `${fixed(o.meanUs, 1)} / ${fixed(o.p50Us, 1)} / ${fixed(o.p99Us, 1)}` : 'n/a');
  const storeTable = table(
    ['store', 'load: get µs (mean / p50 / p99)', 'save: update µs (mean / p50 / p99)', 'touch µs (mean)', 'create µs (mean)', 'get/s, 32 in flight', 'update/s, 32 in flight'],
    [
      ...results.stores.map((r) =>
        r.error
          ? [r.store, `failed: ${r.error}`, '', '', '', '', '']
          : [
              r.store,
              cell(op(r, 'get')),
              cell(op(r, 'update')),
              fixed(op(r, 'touch')?.meanUs ?? NaN, 1),
              fixed(op(r, 'create')?.meanUs ?? NaN, 1),
              r.concurrent ? thousands(r.concurrent.getPerSecond) : '(synchronous)',
              r.concurrent ? thousands(r.concurrent.updatePerSecond) : '(synchronous)',
            ],
      ),
      [
        'cookie (seal/unseal, no I/O)',
        cell(results.cookie.find((o) => o.op.startsWith('load'))),
        cell(results.cookie.find((o) => o.op.startsWith('save'))),
        '—',
        '—',
        '—',
        '—',
      ],
    ],
  );
  const engineTable = table(
    ['store', 'engine µs per request, one key written', 'engine µs per request, read-only'],
    results.engine.map((e) => [e.store, fixed(e.writeUs, 1), fixed(e.readUs, 1)]),
  );
  const markdown = [
    '### Store micro-benchmark (one call at a time; networked stores on loopback)',
    '',
    storeTable,
    '',
    'Engine without HTTP (open → load → set → commit inside the session context, the same session every time):',
    '',
    engineTable,
  ].join('\n');
  return { markdown, results };
}
