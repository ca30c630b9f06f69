/**
 * Lock waits for a SQLite file shared with other processes. SQLite's own busy handler sleeps in
 * growing steps (1, 2, 5, 10 … up to 100 ms), so a write in one process waiting behind another
 * process's back-to-back transactions (a sweep) nearly always wakes while the lock is taken again
 * and can wait for seconds. Polling every millisecond takes the next gap instead.
 */
const SLEEP_CELL = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));

/** Blocks this thread for `ms` (a cell only ever waited on, never notified). */
export function sleepSync(ms: number): void {
  Atomics.wait(SLEEP_CELL, 0, 0, ms);
}

/** True for SQLITE_BUSY and its extended codes (SQLITE_BUSY_SNAPSHOT, SQLITE_BUSY_RECOVERY...). */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * Runs `run` (a statement or a whole transaction, which SQLite has rolled back when it answers
 * busy), again every millisecond while the file is locked, for up to `timeoutMs`; then throws the
 * last SQLITE_BUSY. Synchronous, as the driver is.
 */
export function retryWhileBusy<R>(timeoutMs: number, run: () => R): R {
  let deadline = -1;
  for (;;) {
    try {
      return run();
    } catch (error) {
      if (!isBusy(error)) throw error;
      const now = performance.now();
      if (deadline < 0) deadline = now + timeoutMs;
      if (now >= deadline) throw error;
    }
    sleepSync(1);
  }
}
