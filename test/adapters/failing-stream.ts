/**
 * A response body stream that fails after the route has answered, as a file that does not exist
 * does (`fs.createReadStream` opens asynchronously), and a recorder of uncaught exceptions: an
 * unhandled 'error' event on such a stream ends the process.
 */
import { createReadStream, type ReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function missingFileStream(): ReadStream {
  return createReadStream(join(tmpdir(), `coatcheck-no-such-dir-${process.pid}`, 'missing.txt'));
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
