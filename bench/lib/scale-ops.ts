/** The operations the scale benchmark times, the same way for every store. */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Sessions } from '../../src/core/sessions.js';

export interface OpTiming {
  calls: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Sessions listed / ended per call, on average. */
  perCall: number;
}

export interface SweepTiming {
  batchSize: number;
  deleted: number;
  batches: number;
  seconds: number;
  /** Longest event-loop delay seen while sweeping (monitorEventLoopDelay, 1 ms resolution). */
  maxStallMs: number;
  /** Longest time between two consecutive batch completions. */
  maxBatchMs: number;
}

function timing(samples: number[], items: number): OpTiming {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return {
    calls: samples.length,
    meanMs: samples.reduce((a, b) => a + b, 0) / samples.length,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: sorted[sorted.length - 1] ?? NaN,
    perCall: items / samples.length,
  };
}

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

/**
 * Lists 200 random users' sessions, then ends 100 other users' sessions, one call at a time,
 * through the engine (`sessions.listByUser`, `sessions.killSessionsByUser`). Users are `u0…u<users-1>`.
 */
export async function timeOps(sessions: Sessions, users: number): Promise<{ list: OpTiming; kill: OpTiming }> {
  const picks = new Set<number>();
  while (picks.size < 300) picks.add(Math.floor(Math.random() * users));
  const chosen = [...picks];
  // Warm the code paths (and the database's plan caches) on users not measured afterwards; a
  // kill of nobody is the connection's first write since the bulk load.
  for (let i = 0; i < 5; i++) await sessions.listByUser(`warm${i}`);
  for (let i = 0; i < 5; i++) await sessions.killSessionsByUser(`warm${i}`);
  const listSamples: number[] = [];
  let listed = 0;
  for (const user of chosen.slice(0, 200)) {
    const start = process.hrtime.bigint();
    listed += (await sessions.listByUser(`u${user}`)).length;
    listSamples.push(ms(start));
  }
  const killSamples: number[] = [];
  let killed = 0;
  for (const user of chosen.slice(200)) {
    const start = process.hrtime.bigint();
    killed += await sessions.killSessionsByUser(`u${user}`);
    killSamples.push(ms(start));
  }
  return { list: timing(listSamples, listed), kill: timing(killSamples, killed) };
}

/** Sweeps everything expired with `sessions.clearExpired`, watching the event loop. */
export async function sweepAll(sessions: Sessions, batchSize = 1000): Promise<SweepTiming> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  let last = process.hrtime.bigint();
  let maxBatchMs = 0;
  histogram.enable();
  const start = process.hrtime.bigint();
  const result = await sessions.clearExpired({
    batchSize,
    onBatch: () => {
      const now = process.hrtime.bigint();
      maxBatchMs = Math.max(maxBatchMs, Number(now - last) / 1e6);
      last = now;
    },
  });
  const seconds = ms(start) / 1000;
  // One more turn so a stall at the very end is recorded too.
  await new Promise((resolve) => setTimeout(resolve, 5));
  histogram.disable();
  return { batchSize, deleted: result.deleted, batches: result.batches, seconds, maxStallMs: histogram.max / 1e6, maxBatchMs };
}
