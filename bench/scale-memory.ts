/**
 * Worker for the memory-store part of the scale benchmark (runs compiled, with --expose-gc, in its
 * own process so the heap holds nothing else): heap per session with N small sessions, then
 * list/kill one user's sessions among them, then a sweep of all of them as expired.
 */
import { randomBytes } from 'node:crypto';
import { createSessions } from '../src/index.js';
import { memoryStore } from '../src/stores/memory.js';
import { timeOps, sweepAll, type OpTiming, type SweepTiming } from './lib/scale-ops.js';

export interface MemoryScaleResult {
  sessions: number;
  heapBeforeMiB: number;
  heapAfterMiB: number;
  rssAfterMiB: number;
  bytesPerSession: number;
  list: OpTiming;
  kill: OpTiming;
  sweep: SweepTiming;
}

const gc = (globalThis as { gc?: () => void }).gc;

function heap(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

export async function runMemoryScale(count: number, usersEvery = 10): Promise<MemoryScaleResult> {
  if (!gc) throw new Error('run with --expose-gc');
  const now = Date.now();
  const store = memoryStore({ sweepInterval: 0 });
  const before = heap();
  const users = Math.floor(count / usersEvery);
  for (let i = 0; i < count; i++) {
    // A small signed-in session as the engine writes it: 43-char id, a counter, no meta.
    await store.create({
      id: randomBytes(32).toString('base64url'),
      userId: `u${i % users}`,
      data: { n: 1 },
      meta: {},
      createdAt: now - i,
      lastSeenAt: now,
      expiresAt: now + 3_600_000,
      ip: '127.0.0.1',
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) bench/1.0',
    });
  }
  const after = heap();
  const rss = process.memoryUsage().rss;
  const sessions = createSessions({ store });
  const { list, kill } = await timeOps(sessions, users);
  const later = createSessions({ store, clock: { now: () => now + 7_200_000 } });
  const sweep = await sweepAll(later);
  return {
    sessions: count,
    heapBeforeMiB: before / 2 ** 20,
    heapAfterMiB: after / 2 ** 20,
    rssAfterMiB: rss / 2 ** 20,
    bytesPerSession: (after - before) / count,
    list,
    kill,
    sweep,
  };
}

if (process.send && process.argv[2] === 'worker') {
  const send = process.send.bind(process);
  runMemoryScale(Number(process.argv[3] ?? 1_000_000)).then(
    (result) => send({ type: 'result', result }, () => process.exit(0)),
    (error: unknown) => send({ type: 'error', error: error instanceof Error ? error.stack : String(error) }, () => process.exit(1)),
  );
}
