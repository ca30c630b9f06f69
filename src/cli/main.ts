#!/usr/bin/env node
/**
 * The `coatcheck` command (package.json `bin`). Everything lives in run.ts; this file only binds
 * it to the real process. See docs/cli.md.
 */
import { processIo } from './io.js';
import { run } from './run.js';

/** Resolves once everything written so far has reached the OS (pipes are asynchronous). */
const flushed = (stream: NodeJS.WriteStream) => new Promise<void>((resolve) => stream.write('', () => resolve()));

const status = await run(process.argv.slice(2), processIo());
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
// Exit now rather than when the loop drains: drivers may keep timers after close (ioredis waits
// 2 s on a socket to a dead server), and a script should not wait for them.
process.exit(status);
