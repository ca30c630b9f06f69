/** Holding a SQLite file's write lock from another connection, as another process would. */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** A second connection, in a worker thread, holds the file's write lock for `ms`; resolves once it does. */
export async function holdWriteLock(path: string, ms: number): Promise<Worker> {
  const holder = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const Database = require(workerData.driver);
     const db = new Database(workerData.path);
     db.exec('BEGIN IMMEDIATE');
     parentPort.postMessage('locked');
     Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, workerData.ms);
     db.exec('COMMIT');
     db.close();`,
    { eval: true, workerData: { path, ms, driver: createRequire(import.meta.url).resolve('better-sqlite3') } },
  );
  await new Promise((resolve) => holder.once('message', resolve));
  return holder;
}
