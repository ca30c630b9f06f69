/**
 * In-process checks of what a child process cannot show: a store without stats(), the progress
 * line on a terminal, escaping of client-supplied text, and URL parsing.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { clean, table } from '../../src/cli/format.js';
import type { CliIo } from '../../src/cli/io.js';
import { bar, progressLine } from '../../src/cli/progress.js';
import { run } from '../../src/cli/run.js';
import { parseStoreUrl } from '../../src/cli/store-url.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { Store } from '../../src/stores/types.js';
import { makeRecord } from '../../src/testing/store-contract.js';

function capture(isTTY = false) {
  let text = '';
  return {
    stream: { isTTY, write: (chunk: string) => ((text += chunk), true) },
    get text() {
      return text;
    },
  };
}

function io() {
  const stdout = capture();
  const stderr = capture();
  const value: CliIo = { stdout: stdout.stream, stderr: stderr.stream, stdin: new PassThrough(), env: {} };
  return { io: value, stdout, stderr };
}

/** A memory store with `stats` taken away, like a third-party store that lacks it. */
function storeWithoutStats(): Store {
  const { stats: _stats, ...rest } = memoryStore({ sweepInterval: 0 });
  return rest;
}

describe('CLI units', () => {
  it('stats on a store without stats() fails with a clear message and exit 1', async () => {
    const store = storeWithoutStats();
    assert.equal(store.stats, undefined);
    const { io: cliIo, stdout, stderr } = io();
    const status = await run(['stats'], cliIo, { openStore: async () => store });
    assert.equal(status, 1);
    assert.equal(stdout.text, '');
    assert.equal(stderr.text, 'coatcheck stats: stats is not supported by the memory store (it has no stats() method)\n');
  });

  it('stats and list work on any store handed in, and list escapes client-supplied text', async () => {
    // memoryStore's close() keeps its records, so one store serves both runs.
    const store = memoryStore({ sweepInterval: 0 });
    await store.create(makeRecord({ userId: 'eve', userAgent: 'evil\u001b[2J\u001b]0;pwned\u0007agent' }));
    const statsRun = io();
    assert.equal(await run(['stats', '--json'], statsRun.io, { openStore: async () => store }), 0);
    assert.deepEqual(JSON.parse(statsRun.stdout.text), {
      store: 'memory',
      sessions: 1,
      expired: 0,
      users: 1,
      guests: 0,
      topUsers: [{ userId: 'eve', sessions: 1 }],
    });
    const listRun = io();
    assert.equal(await run(['list', '--user', 'eve'], listRun.io, { openStore: async () => store }), 0);
    assert.ok(!listRun.stdout.text.includes('\u001b'), 'an escape character reached the terminal');
    assert.match(listRun.stdout.text, /evil\\x1b\[2J\\x1b\]0;pwned\\x07agent/);
  });

  it('draws progress only on a terminal, throttled, and erases it when done', () => {
    let now = 0;
    const tty = capture(true);
    const progress = progressLine(tty.stream, { now: () => now, intervalMs: 100 });
    assert.equal(progress.enabled, true);
    progress.update('one');
    progress.update('skipped: too soon');
    now += 100;
    progress.update('two');
    progress.update('forced', true);
    progress.done();
    assert.equal(tty.text, '\r\u001b[Kone\r\u001b[Ktwo\r\u001b[Kforced\r\u001b[K');

    const pipe = capture(false);
    const silent = progressLine(pipe.stream);
    silent.update('one', true);
    silent.done();
    assert.equal(silent.enabled, false);
    assert.equal(pipe.text, '');
  });

  it('renders a bar for a fraction', () => {
    assert.equal(bar(0), '[....................]   0%');
    assert.equal(bar(0.5), '[##########..........]  50%');
    assert.equal(bar(2), '[####################] 100%');
  });

  it('aligns tables and shows missing cells as -', () => {
    assert.equal(table([['a', null], ['long', 'x']], ['H1', 'H2']), 'H1    H2\na     -\nlong  x\n');
    assert.equal(clean('tab\there\u009b'), 'tab\\x09here\\x9b');
    assert.equal(clean('user\u202egnp.exe'), 'user\\u202egnp.exe');
  });

  it('splits the CLI\'s URL parameters off and hides passwords', () => {
    assert.deepEqual(parseStoreUrl('sqlite:./a.db?table=s'), { kind: 'sqlite', display: 'sqlite:./a.db?table=s', location: './a.db', table: 's' });
    const pg = parseStoreUrl('postgres://app:secret@db:5432/app?table=s&schema=x&sslmode=require');
    assert.equal(pg.location, 'postgres://app:secret@db:5432/app?sslmode=require');
    assert.equal(pg.table, 's');
    assert.equal(pg.schema, 'x');
    assert.doesNotMatch(pg.display, /secret/);
    const plain = parseStoreUrl('redis://127.0.0.1:6379/2');
    assert.deepEqual(plain, { kind: 'redis', display: 'redis://127.0.0.1:6379/2', location: 'redis://127.0.0.1:6379/2' });
    assert.equal(parseStoreUrl('redis://h:1?prefix=app:').prefix, 'app:');
  });
});
