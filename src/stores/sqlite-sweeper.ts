/**
 * The SQLite store's sweeper: the entry of a `worker_threads` worker that deletes expired rows
 * through its own connection to the store's file, so neither the `DELETE`s nor the WAL
 * checkpoints they cause ever run on the app's event loop.
 *
 * Started by `sqliteStore` (see `startSweeper` in `./sqlite.ts`); not a public module. It imports
 * nothing relative, so it runs the same from the TypeScript sources and from `dist/`.
 *
 * How it stays out of the app's way (every number here was measured, see docs/stores/sqlite.md):
 * - SQLite has one write lock per file. While this worker holds it, a write on the main thread
 *   waits synchronously, which stalls the event loop. So a write transaction lasts at most about
 *   {@link SweeperTuning.transactionMs}, is made of ~1 ms DELETE statements, and ends at the next
 *   statement boundary as soon as the main thread signals (shared memory) that a write is coming;
 *   the main thread waits for exactly that commit (see enterTransaction).
 * - WAL checkpoints copy pages back into the database file and wait for the disk. This
 *   connection runs them (PASSIVE: they never take the write lock, so they never block a
 *   write) while the main connection's auto-checkpoint is switched off for the sweep.
 *
 * @internal
 * @module
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

/** Marks workerData as ours, so importing this module anywhere else does nothing. */
export const SWEEPER_KIND = 'coatcheck-sqlite-sweeper';

/** Slots of the shared Int32Array. */
export const SIGNAL_WRITERS = 0; // main-thread writes in progress (the worker steps aside while > 0)
export const SIGNAL_STOP = 1; // set by close(): finish the current transaction and return
export const SIGNAL_WORKER_WRITING = 2; // 1 while the worker is in (or entering) a write transaction
export const SIGNAL_SLOTS = 3;

export interface SweeperTuning {
  /** End a write transaction after about this many ms (unless a main-thread write ends it sooner). */
  transactionMs: number;
  /** Size each DELETE statement to take about this many ms (bounded by min/maxChunk rows). */
  chunkMs: number;
  minChunk: number;
  maxChunk: number;
  /**
   * Run a PASSIVE checkpoint once the WAL holds about this share of the database's pages, within
   * [checkpointMinFrames, checkpointMaxFrames]. Larger checkpoints copy a page changed by several
   * transactions only once (measured on a 1M-row file: 16k frames 20k rows/s, 64k frames 30k
   * rows/s), but the -wal file keeps its largest size until the last connection closes.
   */
  checkpointShare: number;
  checkpointMinFrames: number;
  checkpointMaxFrames: number;
  /** Return early (with "call again") after this much work in one call, in ms. */
  callBudgetMs: number;
  /** Longest the worker waits for pending main-thread writes before a transaction, in ms. */
  yieldMs: number;
}

export const DEFAULT_SWEEPER_TUNING: SweeperTuning = {
  transactionMs: 10,
  chunkMs: 1,
  minChunk: 8,
  maxChunk: 1_024,
  checkpointShare: 0.25,
  checkpointMinFrames: 4_096, // 16 MB of 4 KB pages
  checkpointMaxFrames: 65_536, // 256 MB
  callBudgetMs: 1_000,
  yieldMs: 50,
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
  | { type: 'checkpoint'; id: number }
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
}

export type SweeperReply =
  | { type: 'ready' }
  | ({ type: 'swept'; id: number } & SweepReport)
  | { type: 'checkpointed'; id: number }
  | { type: 'failed'; id: number; message: string; code?: string };

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
  const sweep = db.prepare(`DELETE FROM ${t} WHERE rowid IN (SELECT rowid FROM ${t} WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`);

  let chunk = 32; // rows per DELETE statement, adapted towards chunkMs
  let framesPerRow = 4; // learned from checkpoints
  let rowsSinceCheckpoint = 0;
  let lastCkptEnd = 0; // TEMPORARY

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
      const got = sweep.run(before, asked).changes;
      const took = performance.now() - started;
      if (process.env.CC_DEBUG2 && took > 15) process.stderr.write(`slow statement ${took.toFixed(1)}ms rows=${got} at ${performance.timeOrigin + started - lastCkptEnd}ms after ckpt\n`); // TEMPORARY
      deleted += got;
      if (got < asked) return { deleted, exhausted: true };
      const ideal = (tuning.chunkMs * got) / Math.max(took, 0.01);
      chunk = Math.round(Math.max(tuning.minChunk, Math.min(tuning.maxChunk, chunk * 2, Math.max(chunk / 2, ideal))));
      if (Atomics.load(signal, SIGNAL_WRITERS) > 0 || performance.now() - begun >= tuning.transactionMs) break;
    }
    return { deleted, exhausted: false };
  });

  const passiveCheckpoint = (): CheckpointRow | undefined => (db.pragma('wal_checkpoint(PASSIVE)') as CheckpointRow[])[0];

  /**
   * PASSIVE checkpoints never wait for a lock, so main-thread commits carry on during one. Those
   * frames are not copied, yet the checkpoint reports itself complete (`log` is the frame count
   * when it started). A WAL with uncopied frames cannot be restarted by the next writer, and it
   * grows for as long as writes keep overlapping checkpoints (measured: 1.8 GB during a 200k-row
   * sweep with an update every 5 ms; retrying until a round found nothing new still let it reach
   * twice the threshold). So after the bulk round, a second round copies what was committed
   * meanwhile (a few pages) while main-thread writes are held back through the same handshake as
   * a write transaction: it completes, and the next writer starts the WAL over. That costs a
   * write arriving in those few milliseconds a short wait, once per checkpoint.
   */
  const checkpoint = (): number => {
    const started = performance.now();
    const bulk = passiveCheckpoint();
    if (process.env.CC_DEBUG) process.stderr.write(`ckpt bulk ${JSON.stringify(bulk)} ${(performance.now() - started).toFixed(1)}ms at ${(performance.timeOrigin + started).toFixed(0)}\n`); // TEMPORARY
    if (bulk && bulk.busy === 0 && rowsSinceCheckpoint > 0 && bulk.log > 0) {
      framesPerRow = Math.min(64, Math.max(0.5, bulk.log / rowsSinceCheckpoint));
    }
    if (bulk && bulk.busy === 0) {
      for (let r = 0; r < 5; r++) { // EXPERIMENT
        const t2 = performance.now();
        const last = passiveCheckpoint();
        if (process.env.CC_DEBUG) process.stderr.write(`ckpt round${r + 2} ${JSON.stringify(last)} ${(performance.now() - t2).toFixed(1)}ms\n`);
      }
    }
    rowsSinceCheckpoint = 0;
    lastCkptEnd = performance.timeOrigin + performance.now(); // TEMPORARY
    return performance.now() - started;
  };

  /**
   * The handshake with main-thread writes, a Dekker-style pair of flags (Atomics are sequentially
   * consistent). The main thread raises WRITERS, then waits while WORKER_WRITING is up; the
   * worker raises WORKER_WRITING, then backs off while WRITERS is up. So either the worker sees
   * the write coming and does not start a transaction, or the main thread sees the transaction and
   * waits for the notify sent right after its commit (ended early at the next statement, see
   * deleteBatch). Without it the main thread would wait in SQLite's busy handler, which sleeps 1,
   * 2, 5, 10 ms...: measured, that made a write wait ~8 ms for a lock freed after 2, and idled
   * the worker as long. Waiting for pending writes is bounded by yieldMs, after which the worker
   * goes ahead anyway (it still ends its transaction at the first statement boundary).
   */
  const enterTransaction = (): void => {
    const until = performance.now() + tuning.yieldMs;
    for (;;) {
      for (let pending = Atomics.load(signal, SIGNAL_WRITERS); pending > 0; pending = Atomics.load(signal, SIGNAL_WRITERS)) {
        const left = until - performance.now();
        if (left <= 0) break;
        Atomics.wait(signal, SIGNAL_WRITERS, pending, left);
      }
      Atomics.store(signal, SIGNAL_WORKER_WRITING, 1);
      if (Atomics.load(signal, SIGNAL_WRITERS) === 0 || performance.now() >= until) return;
      leaveTransaction();
    }
  };
  const leaveTransaction = (): void => {
    Atomics.store(signal, SIGNAL_WORKER_WRITING, 0);
    Atomics.notify(signal, SIGNAL_WORKER_WRITING);
  };

  const pageCount = db.prepare('PRAGMA page_count').pluck();

  const sweepCall = (before: number, limit: number): SweepReport => {
    const started = performance.now();
    const checkpointFrames = Math.min(
      tuning.checkpointMaxFrames,
      Math.max(tuning.checkpointMinFrames, Math.round((pageCount.get() as number) * tuning.checkpointShare)),
    );
    const report: SweepReport = { deleted: 0, more: false, transactions: 0, maxTransactionMs: 0, checkpointMs: 0 };
    let exhausted = false;
    while (report.deleted < limit) {
      if (Atomics.load(signal, SIGNAL_STOP) !== 0 || performance.now() - started >= tuning.callBudgetMs) {
        report.more = true;
        break;
      }
      enterTransaction();
      const begun = performance.now();
      let batch: { deleted: number; exhausted: boolean };
      try {
        batch = deleteBatch.immediate(before, limit - report.deleted);
      } finally {
        leaveTransaction();
      }
      if (process.env.CC_DEBUG2 && performance.now() - begun > 15) process.stderr.write(`slow txn ${(performance.now() - begun).toFixed(1)}ms rows=${batch.deleted} ${performance.timeOrigin + begun - lastCkptEnd}ms after ckpt\n`); // TEMPORARY
      report.maxTransactionMs = Math.max(report.maxTransactionMs, performance.now() - begun);
      report.deleted += batch.deleted;
      report.transactions++;
      rowsSinceCheckpoint += batch.deleted;
      if (batch.exhausted) {
        exhausted = true;
        break;
      }
      if (rowsSinceCheckpoint * framesPerRow >= checkpointFrames) report.checkpointMs += checkpoint();
    }
    // At the end of a sweep, leave a checkpointed WAL behind: the main connection's
    // auto-checkpoint comes back on and must find nothing to do.
    if (exhausted && rowsSinceCheckpoint > 0) report.checkpointMs += checkpoint();
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
        checkpoint();
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
