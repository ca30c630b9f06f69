/**
 * A response body stream that fails after the route has answered, as a file that does not exist
 * does (`fs.createReadStream` opens asynchronously), and a recorder of uncaught exceptions: an
 * unhandled 'error' event on such a stream ends the process.
 */
import { createReadStream, type ReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryStore } from '../../src/stores/memory.js';
import type { Store } from '../../src/stores/types.js';

export function missingFileStream(): ReadStream {
  return createReadStream(join(tmpdir(), `coatcheck-no-such-dir-${process.pid}`, 'missing.txt'));
}

/**
 * A memory store whose `create` waits for `gate.wait` (a stream's failure, say) before it answers:
 * a commit held until the body has failed, on a loaded machine too (no race against a timer).
 */
export function gatedCreateStore(): { store: Store; gate: { wait: Promise<unknown> } } {
  const inner = memoryStore({ sweepInterval: 0 });
  const gate = { wait: Promise.resolve() as Promise<unknown> };
  return { store: { ...inner, create: async (record) => (await gate.wait, inner.create(record)) }, gate };
}

/** Resolves when `stream` has closed (after its 'error'), without listening for the error itself. */
export function closed(stream: ReadStream): Promise<void> {
  return new Promise((resolve) => stream.once('close', () => resolve()));
}

/** Runs `run`, and returns what reached `uncaughtException` meanwhile. */
export async function uncaughtDuring(run: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const record = (error: unknown) => void seen.push(error);
  process.on('uncaughtException', record);
  try {
    await run();
    // An 'error' event is emitted a tick after the failure: let any straggler arrive.
    await new Promise((resolve) => setTimeout(resolve, 20));
  } finally {
    process.off('uncaughtException', record);
  }
  return seen;
}
