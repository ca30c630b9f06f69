/**
 * The SQLite store's sweeper: the entry of a `worker_threads` worker that deletes expired rows
 * and checkpoints the WAL through its own connection to the store's file, so neither the
 * `DELETE`s nor the checkpoints (the sweep's, and by default those the app's own writes need)
 * ever run on the app's event loop.
 *
 * Started by `sqliteStore` (see `startSweeper` in `./sqlite.ts`); not a public module. It imports
 * nothing relative, so it runs the same from the TypeScript sources and from `dist/`.
 *
 * How it stays out of the app's way (every number here was measured, see docs/stores/sqlite.md):
 * - SQLite has one write lock per file. While this worker holds it, a write on the main thread
 *   waits synchronously, which stalls the event loop. So a write transaction lasts at most about
 *   {@link SweeperTuning.transactionMs}, is made of ~1 ms DELETE statements, and ends at the next
 *   statement boundary as soon as the main thread signals (shared memory) that a write is coming;
 *   the main thread waits for exactly that commit (see claim).
 * - WAL checkpoints copy pages back into the database file and wait for the disk. This
 *   connection runs them (PASSIVE: they never take the write lock, so they never block a
 *   write) while the main connection's auto-checkpoint is switched off: for the sweep, or for
 *   good with background checkpoints (a `checkpoint` request about every 100 ms while the app
 *   writes, see BACKGROUND_CHECKPOINT_MS in ./sqlite.ts).
 *
 * @internal
 * @module
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { sweepBatchSql } from './sqlite-sweep-hint.js';
import { sleepSync } from './sqlite-busy.js';

/** Marks workerData as ours, so importing this module anywhere else does nothing. */
export const SWEEPER_KIND = 'coatcheck-sqlite-sweeper';

/** Slots of the shared Int32Array. */
export const SIGNAL_WRITERS = 0; // main-thread writes in progress (the worker steps aside while > 0)
export const SIGNAL_STOP = 1; // set by close(): finish the current transaction and return
export const SIGNAL_WORKER = 2; // what the worker is doing, one of WORKER_* (main-thread writes wait while it is not IDLE)
export const SIGNAL_SLOTS = 3;

/** Values of the SIGNAL_WORKER slot. */
export const WORKER_IDLE = 0;
export const WORKER_WRITING = 1; // in (or entering) a write transaction: a main-thread write waits for its commit
export const WORKER_CHECKPOINTING = 2; // finishing a checkpoint: a main-thread write waits at most checkpointHoldMs

export interface SweeperTuning {
  /** End a write transaction after about this many ms (unless a main-thread write ends it sooner). */
  transactionMs: number;
  /**
   * Leave the write lock free this many ms between transactions: writers in other processes
   * (which poll for it every millisecond, see ./sqlite-busy.ts) get in between. This process's
   * own main thread needs no gap: it asks through shared memory (claim).
   */
  gapMs: number;
  /** Size each DELETE statement to take about this many ms (bounded by min/maxChunk rows). */
  chunkMs: number;
  minChunk: number;
  maxChunk: number;
  /**
   * Run a PASSIVE checkpoint once the WAL holds about this share of the database's pages, within
   * [checkpointMinFrames, checkpointMaxFrames]. Larger checkpoints copy a page changed by several
   * transactions only once (measured on a 1M-row file: 16k frames 20k rows/s, 64k frames 30k
   * rows/s; on the 217 MB scale-bench file, share 0.25 swept 1M rows in 18-21 s, share 1 in
   * 14-17 s), but the -wal file keeps its largest size until the last connection closes: up to
   * the database's own size, never more than checkpointMaxFrames pages.
   */
  checkpointShare: number;
  checkpointMinFrames: number;
  checkpointMaxFrames: number;
  /** Return early (with "call again") after this much work in one call, in ms. */
  callBudgetMs: number;
  /** Longest the worker waits for pending main-thread writes before a transaction, in ms. */
  yieldMs: number;
  /** At most this many extra PASSIVE rounds after a checkpoint's bulk round (see checkpoint). */
  checkpointRepeats: number;
  /** Longest a main-thread write waits for the last round of a checkpoint, in ms. */
  checkpointHoldMs: number;
  /** How long the last checkpoint round waits for other processes' writers and readers. */
  restartWaitMs: number;
  /**
   * Background checkpoints (every ~100 ms while the app writes) hold writes back for their last
   * round only once the WAL holds this many frames. Under steady writes that round always has
   * frames to copy and an fsync to wait for (measured 1.5-2.5 ms per round); below this size
   * the next cycle catches up instead, and the WAL restarts once a held round completes it.
   */
  backgroundHoldFrames: number;
}

export const DEFAULT_SWEEPER_TUNING: SweeperTuning = {
  transactionMs: 10,
  gapMs: 2,
  chunkMs: 1,
  minChunk: 8,
  maxChunk: 1_024,
  checkpointShare: 1,
  checkpointMinFrames: 4_096, // 16 MB of 4 KB pages
  checkpointMaxFrames: 65_536, // 256 MB
  callBudgetMs: 1_000,
  yieldMs: 50,
  checkpointRepeats: 3,
  checkpointHoldMs: 20,
  restartWaitMs: 20,
  backgroundHoldFrames: 4_096, // 16 MB of 4 KB pages
};

export interface SweeperData {
  kind: typeof SWEEPER_KIND;
  path: string;
  table: string;
  busyTimeout: number;
  shared: SharedArrayBuffer;
  tuning: SweeperTuning;
}

export type SweeperRequest =
  | { type: 'sweep'; id: number; before: number; limit: number }
  /** `background`: a periodic checkpoint while the app writes (see backgroundHoldFrames). */
  | { type: 'checkpoint'; id: number; background?: boolean }
  | { type: 'close' };

/** What one sweep call did, for the store and for benchmarks. */
export interface SweepReport {
  deleted: number;
  /** True when the worker stopped early (time budget, close) with expired rows possibly left. */
  more: boolean;
  transactions: number;
  /** Longest write transaction (write lock held), ms. */
  maxTransactionMs: number;
  /** Time spent in checkpoints, ms. */
  checkpointMs: number;
  /** Longest final checkpoint round that held main-thread writes back (0: none was needed), ms. */
  maxHoldMs: number;
}

export type SweeperReply =
  | { type: 'ready' }
  | ({ type: 'swept'; id: number } & SweepReport)
  | { type: 'checkpointed'; id: number }
  | { type: 'failed'; id: number; message: string; code?: string };

/** Options that only make sense for the main entry and take their value as the next argument. */
const ENTRY_OPTIONS_WITH_VALUE = new Set(['--input-type', '-e', '--eval', '-p', '--print', '-pe']);

/**
 * The options a worker should inherit: the process's `execArgv` without the ones that belong to
 * the main entry. A worker inherits `execArgv` by default, and Node refuses to start a file
 * worker under `--input-type` ("can only be used with string input"): an app started with
 * `node --input-type=module -e ...` would otherwise never get its sweeper.
 */
export function workerExecArgv(execArgv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i] as string;
    if (ENTRY_OPTIONS_WITH_VALUE.has(arg)) {
      i++; // and its value
      continue;
    }
    if (/^--(input-type|eval|print)=/.test(arg)) continue;
    kept.push(arg);
  }
  return kept;
}

/**
 * The options Node named when it refused to start a worker (`ERR_WORKER_INVALID_EXEC_ARGV`,
 * "…invalid execArgv flags: a, b"), or null for any other error.
 */
export function refusedWorkerFlags(error: unknown): Set<string> | null {
  if ((error as { code?: unknown } | null)?.code !== 'ERR_WORKER_INVALID_EXEC_ARGV') return null;
  const listed = /flags: (.+)$/.exec(String((error as Error).message))?.[1];
  if (!listed) return null;
  return new Set(listed.split(',').map((flag) => flag.trim()).filter(Boolean));
}

interface CheckpointRow {
  busy: number;
  log: number;
  checkpointed: number;
}

function run(data: SweeperData, port: NonNullable<typeof parentPort>): void {
  const signal = new Int32Array(data.shared);
  const tuning = data.tuning;
  // fileMustExist: the store created the file and its schema before starting this worker.
  const db = new Database(data.path, { timeout: data.busyTimeout, fileMustExist: true });
  db.pragma(`busy_timeout = ${data.busyTimeout}`);
  // Same durability as the store's connection: a commit survives a crash of the process.
  db.pragma('synchronous = NORMAL');
  // This connection checkpoints explicitly (below), never inside a commit.
  db.pragma('wal_autocheckpoint = 0');
  // No journal_size_limit: SQLite would truncate the WAL inside the commit that restarts it,
  // holding the write lock (53 ms for 256 MB on the test disk). The file keeps its high-water size
  // instead (bounded by checkpointFrames) and is reused; closing the last connection deletes it.

  const t = `"${data.table}"`;
  const sweep = db.prepare(sweepBatchSql(t));

  let chunk = 32; // rows per DELETE statement, adapted towards chunkMs
  let framesPerRow = 4; // learned from checkpoints
  let rowsSinceCheckpoint = 0;
  let longestHold = 0; // reported per sweep call

  /**
   * One write transaction: DELETE statements of `chunk` rows until `want` rows went, nothing is
   * left, transactionMs passed, or a main-thread write started waiting for the lock. Checking
   * between statements keeps that write's wait to about one statement plus the commit, instead
   * of a whole transaction.
   */
  const deleteBatch = db.transaction((before: number, want: number): { deleted: number; exhausted: boolean } => {
    const begun = performance.now();
    let deleted = 0;
    while (deleted < want) {
      const asked = Math.min(chunk, want - deleted);
      const started = performance.now();
      const got = sweep.run(before, before, asked).changes;
      const took = performance.now() - started;
      deleted += got;
      if (got < asked) return { deleted, exhausted: true };
      const ideal = (tuning.chunkMs * got) / Math.max(took, 0.01);
      chunk = Math.round(Math.max(tuning.minChunk, Math.min(tuning.maxChunk, chunk * 2, Math.max(chunk / 2, ideal))));
      if (Atomics.load(signal, SIGNAL_WRITERS) > 0 || performance.now() - begun >= tuning.transactionMs) break;
    }
    return { deleted, exhausted: false };
  });

  /**
   * PASSIVE checkpoints never wait for a lock, so main-thread commits carry on during one. Those
   * frames are not copied, yet the checkpoint reports itself complete (`log` is the frame count
   * when it started). A WAL with uncopied frames cannot be restarted by the next writer, and it
   * grows for as long as writes keep overlapping checkpoints (measured: 1.8 GB during a 200k-row
   * sweep with an update every 5 ms). So after the bulk round, repeat the checkpoint until a
   * round finds no new frames: the first repeat waits for the disk to absorb the bulk round's
   * writes (~250 ms measured: nothing may be held back meanwhile), the next ones take a
   * millisecond or two. Even a round that found nothing new can miss a commit made while it ran
   * (measured: about one cycle in twenty at an update every 5 ms, each miss doubling the WAL), so
   * a last round always runs with main-thread writes held back (the WORKER_CHECKPOINTING
   * handshake, at most checkpointHoldMs per write). It usually has nothing to copy and takes
   * microseconds; then it is complete and the next writer starts the WAL over. Should it overrun
   * the hold, a write goes ahead and only this cycle misses its restart. Background checkpoints
   * (`background`) skip that round while the WAL is under backgroundHoldFrames.
   */
  const checkpoint = (background = false): number => {
    const started = performance.now();
    const [bulk] = db.pragma('wal_checkpoint(PASSIVE)') as CheckpointRow[];
    if (bulk && bulk.busy === 0 && rowsSinceCheckpoint > 0 && bulk.log > 0) {
      framesPerRow = Math.min(64, Math.max(0.5, bulk.log / rowsSinceCheckpoint));
    }
    rowsSinceCheckpoint = 0;
    if (!bulk || bulk.busy !== 0) return performance.now() - started;
    let previous = bulk;
    for (let round = 0; round < tuning.checkpointRepeats; round++) {
      const [result] = db.pragma('wal_checkpoint(PASSIVE)') as CheckpointRow[];
      if (!result || result.busy !== 0) return performance.now() - started;
      const settled = result.log === previous.log && result.checkpointed === result.log;
      previous = result;
      if (settled) break;
    }
    // A small WAL can wait for the next background cycle (see backgroundHoldFrames).
    if (background && previous.log < tuning.backgroundHoldFrames) return performance.now() - started;
    claim(WORKER_CHECKPOINTING);
    const held = performance.now();
    try {
      // RESTART rather than PASSIVE: writers in other processes, which the handshake does not
      // hold back, would otherwise add frames during this round, every round, and the WAL would
      // never start over. It waits for them (and for readers of older snapshots) at most
      // restartWaitMs, then copies what it can, as PASSIVE does.
      db.pragma(`busy_timeout = ${tuning.restartWaitMs}`);
      db.pragma('wal_checkpoint(RESTART)');
    } finally {
      db.pragma(`busy_timeout = ${data.busyTimeout}`);
      release();
    }
    longestHold = Math.max(longestHold, performance.now() - held);
    return performance.now() - started;
  };

  /**
   * The handshake with main-thread writes, a Dekker-style pair of flags (Atomics are sequentially
   * consistent). The main thread raises WRITERS, then waits while SIGNAL_WORKER is not IDLE; the
   * worker sets SIGNAL_WORKER, then backs off while WRITERS is up. So either the worker sees the
   * write coming and does not start, or the main thread sees the worker busy and waits for the
   * notify sent as soon as it is done: right after a commit (a transaction ends early, at the
   * next statement, when WRITERS goes up, see deleteBatch), or after a checkpoint's last round.
   * Without it the main thread would wait in SQLite's busy handler, which sleeps 1, 2, 5, 10
   * ms...: measured, that made a write wait ~8 ms for a lock freed after 2, and idled the worker
   * as long. The worker waits for pending writes at most yieldMs, then goes ahead anyway.
   */
  const claim = (state: number): void => {
    const until = performance.now() + tuning.yieldMs;
    for (;;) {
      for (let pending = Atomics.load(signal, SIGNAL_WRITERS); pending > 0; pending = Atomics.load(signal, SIGNAL_WRITERS)) {
        const left = until - performance.now();
        if (left <= 0) break;
        Atomics.wait(signal, SIGNAL_WRITERS, pending, left);
      }
      Atomics.store(signal, SIGNAL_WORKER, state);
      if (Atomics.load(signal, SIGNAL_WRITERS) === 0 || performance.now() >= until) return;
      release();
    }
  };
  const release = (): void => {
    Atomics.store(signal, SIGNAL_WORKER, WORKER_IDLE);
    Atomics.notify(signal, SIGNAL_WORKER);
  };

  const pageCount = db.prepare('PRAGMA page_count').pluck();

  const sweepCall = (before: number, limit: number): SweepReport => {
    const started = performance.now();
    const checkpointFrames = Math.min(
      tuning.checkpointMaxFrames,
      Math.max(tuning.checkpointMinFrames, Math.round((pageCount.get() as number) * tuning.checkpointShare)),
    );
    const report: SweepReport = { deleted: 0, more: false, transactions: 0, maxTransactionMs: 0, checkpointMs: 0, maxHoldMs: 0 };
    longestHold = 0;
    let exhausted = false;
    while (report.deleted < limit) {
      if (Atomics.load(signal, SIGNAL_STOP) !== 0 || performance.now() - started >= tuning.callBudgetMs) {
        report.more = true;
        break;
      }
      claim(WORKER_WRITING);
      const begun = performance.now();
      let batch: { deleted: number; exhausted: boolean };
      try {
        batch = deleteBatch.immediate(before, limit - report.deleted);
      } finally {
        release();
      }
      report.maxTransactionMs = Math.max(report.maxTransactionMs, performance.now() - begun);
      report.deleted += batch.deleted;
      report.transactions++;
      rowsSinceCheckpoint += batch.deleted;
      if (batch.exhausted) {
        exhausted = true;
        break;
      }
      if (rowsSinceCheckpoint * framesPerRow >= checkpointFrames) report.checkpointMs += checkpoint();
      else if (tuning.gapMs > 0) sleepSync(tuning.gapMs);
    }
    // At the end of a sweep, leave a checkpointed WAL behind: the main connection's
    // auto-checkpoint comes back on and must find nothing to do.
    if (exhausted && rowsSinceCheckpoint > 0) report.checkpointMs += checkpoint();
    report.maxHoldMs = longestHold;
    return report;
  };

  port.on('message', (request: SweeperRequest) => {
    if (request.type === 'close') {
      db.close();
      port.close();
      return;
    }
    try {
      if (request.type === 'sweep') {
        port.postMessage({ type: 'swept', id: request.id, ...sweepCall(request.before, request.limit) } satisfies SweeperReply);
      } else {
        checkpoint(request.background === true);
        port.postMessage({ type: 'checkpointed', id: request.id } satisfies SweeperReply);
      }
    } catch (error) {
      const failure = error as { message?: unknown; code?: unknown };
      port.postMessage({
        type: 'failed',
        id: request.id,
        message: String(failure.message ?? error),
        ...(typeof failure.code === 'string' ? { code: failure.code } : {}),
      } satisfies SweeperReply);
    }
  });
  port.postMessage({ type: 'ready' } satisfies SweeperReply);
}

const data = workerData as Partial<SweeperData> | null;
if (!isMainThread && parentPort && data?.kind === SWEEPER_KIND) run(data as SweeperData, parentPort);
