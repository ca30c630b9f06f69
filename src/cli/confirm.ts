/** A yes/no question on the terminal, for destructive commands. */
import { createInterface } from 'node:readline';
import type { CliIo } from './io.js';

/** True when a person can answer: stdin and stderr (where the question goes) are terminals. */
export function canAsk(io: CliIo): boolean {
  return io.stdin.isTTY === true && io.stderr.isTTY === true;
}

/** Asks `question` on stderr and resolves true only for `y` or `yes` (any case). */
export async function confirm(io: CliIo, question: string): Promise<boolean> {
  // terminal: false: the terminal's own line editing (cooked mode) is enough for a y/N answer.
  const rl = createInterface({ input: io.stdin, terminal: false });
  try {
    io.stderr.write(`${question} [y/N] `);
    // End of input (Ctrl-D) counts as "no".
    const answer = await new Promise<string>((resolve) => {
      rl.once('line', resolve);
      rl.once('close', () => resolve(''));
    });
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
