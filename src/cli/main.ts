#!/usr/bin/env node
/**
 * The `coatcheck` command (package.json `bin`). Everything lives in run.ts; this file only binds
 * it to the real process. See docs/cli.md.
 */
import { ExitCode } from './exit.js';
import { processIo } from './io.js';
import { run } from './run.js';

// A reader that stops early (`coatcheck list … | head -1`) closes the pipe: the next write fails
// with EPIPE. That is a normal end, not a crash: the rest of the output is unwanted, so drop it.
// Any other failure to write stdout is reported like every error, on one line.
let stdoutClosed = false;
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') {
    stdoutClosed = true;
    return;
  }
  process.stderr.write(`coatcheck: cannot write to stdout: ${error.message}\n`);
  process.exit(ExitCode.failure);
});

/** Resolves once everything written so far has reached the OS (pipes are asynchronous). */
const flushed = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => stream.write('', () => resolve()));

const status = await run(process.argv.slice(2), processIo());
await Promise.all([stdoutClosed ? undefined : flushed(process.stdout), flushed(process.stderr)]);
// Exit now rather than when the loop drains: drivers may keep timers after close (ioredis waits
// 2 s on a socket to a dead server), and a script should not wait for them.
process.exit(status);
