/** The CLI without a store server: help, version, usage errors, keygen, store selection. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cookieStore } from '../../src/stores/cookie.js';
import { cli, cliWithClosedStdout, json } from './run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'coatcheck-cli-basics-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const COMMANDS = ['clear-expired', 'kill', 'list', 'stats', 'migrate', 'keygen'];

/** A failure must be one line on stderr, without a stack trace. */
function assertOneLine(stderr: string): void {
  assert.equal(stderr.trimEnd().split('\n').length, 1, `expected one line, got:\n${stderr}`);
  assert.doesNotMatch(stderr, /^\s+at /m);
}

describe('coatcheck help and version', () => {
  it('--help lists every command on stdout and exits 0', async () => {
    const result = await cli(['--help']);
    assert.equal(result.status, 0);
    for (const name of COMMANDS) assert.match(result.stdout, new RegExp(`^  ${name} `, 'm'));
    assert.match(result.stdout, /Exit status: 0 done, 1 failed .*, 2 usage error/);
    assert.equal(result.stderr, '');
  });

  it('no command prints the help on stderr and exits 2', async () => {
    const result = await cli([]);
    assert.equal(result.status, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /Usage:/);
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const result = await cli(['--version']);
    assert.equal(result.status, 0);
    assert.equal(result.stdout, `${pkg.version}\n`);
  });

  for (const name of COMMANDS) {
    it(`${name} --help shows usage, options and examples; "help ${name}" is the same`, async () => {
      const result = await cli([name, '--help']);
      assert.equal(result.status, 0);
      assert.match(result.stdout, new RegExp(`^coatcheck ${name}: `));
      assert.match(result.stdout, /\nUsage:\n/);
      assert.match(result.stdout, /\nOptions:\n[\s\S]*--json[\s\S]*-h, --help/);
      assert.match(result.stdout, /\nExamples:\n/);
      if (name !== 'keygen') assert.match(result.stdout, /--store URL/);
      assert.equal((await cli(['help', name])).stdout, result.stdout);
    });
  }
});

describe('coatcheck usage errors exit 2 with one line on stderr', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['an unknown command, with a suggestion', ['stat'], /unknown command "stat" \(did you mean stats\?\)/],
    ['an option before the command', ['--json', 'stats'], /the command comes first/],
    ['an unknown option', ['stats', '--verbose'], /^coatcheck stats: unknown option --verbose \(see coatcheck stats --help\)$/m],
    ['a positional argument', ['list', 'alice'], /unexpected argument alice/],
    ['a missing option value', ['list', '--user'], /option --user needs a value/],
    ['an option given twice', ['kill', '--user', 'a', '--user', 'b'], /option --user given more than once/],
    ['kill without a scope', ['kill'], /exactly one of --user ID, --guests or --all/],
    ['kill with two scopes', ['kill', '--user', 'a', '--guests'], /exactly one of/],
    ['kill --user __guest__', ['kill', '--user', '__guest__'], /reserved for guest sessions: use --guests/],
    // Not a user either: it would end every user's rotation forwarders.
    ['kill --user __moved__', ['kill', '--user', '__moved__'], /^coatcheck kill: __moved__ is reserved for rotation forwarders .*not a user: give a user id \(see coatcheck kill --help\)$/m],
    ['kill --yes without --all', ['kill', '--guests', '--yes'], /--yes only applies to --all/],
    ['kill --all without --yes off a terminal', ['kill', '--all'], /pass --yes to confirm when not running on a terminal/],
    ['list without --user', ['list'], /--user ID is required/],
    ['a bad --batch-size', ['clear-expired', '--batch-size', '0'], /--batch-size must be an integer from 1/],
    ['a bad --top', ['stats', '--top', 'many'], /--top must be an integer from 0 to 1000/],
    ['keygen --bytes below 32', ['keygen', '--bytes', '16'], /--bytes must be an integer from 32 to 1024/],
    ['keygen --store (keygen uses no store)', ['keygen', '--store', 'sqlite:x'], /unknown option --store/],
    // Only the schemes the CLI takes are offered (memory: and cookie: are refused below).
    ['an unknown store scheme', ['stats', '--store', 'mysql://db'], /unknown store URL "mysql:\/\/db": use sqlite:PATH, postgres:\/\/… or redis:\/\/… \(see coatcheck stats --help\)\n$/],
    ['help for an unknown command', ['help', 'nope'], /^coatcheck: no help for "nope" \(see coatcheck --help\)\n$/],
    ['a memory: store', ['stats', '--store', 'memory:'], /holds no sessions another process can reach/],
    ['a cookie: store', ['kill', '--guests', '--store', 'cookie:'], /holds no sessions another process can reach/],
    ['a sqlite: URL without a path', ['stats', '--store', 'sqlite:'], /needs a path/],
    ['an unknown sqlite parameter', ['stats', '--store', 'sqlite:x.db?prefix=a'], /only \?table=/],
    ['a table name that is not an identifier', ['stats', '--store', 'postgres://h/db?table=a;drop'], /\?table= must be letters/],
    // The stores' own limits, checked before anything is opened (no server at h).
    ['a PostgreSQL table name over 50 characters', ['stats', '--store', `postgres://h/db?table=${'t'.repeat(51)}`], /\?table= .*at most 50 characters for a PostgreSQL table, got "t{51}" \(51 characters\)/],
    ['a PostgreSQL table name of 64 characters', ['migrate', '--store', `postgres://h/db?table=${'t'.repeat(64)}`], /at most 50 characters for a PostgreSQL table/],
    ['a PostgreSQL schema name over 63 characters', ['kill', '--guests', '--store', `postgres://h/db?schema=${'s'.repeat(64)}`], /\?schema= .*at most 63 characters for a PostgreSQL schema/],
    ['a SQLite table name over 63 characters', ['stats', '--store', `sqlite:./nowhere/x.db?table=${'t'.repeat(64)}`], /\?table= .*at most 63 characters for a SQLite table/],
    ['a Redis prefix with braces', ['stats', '--store', 'redis://h?prefix={x}'], /\?prefix= must be non-empty/],
  ];
  for (const [what, args, expected] of cases) {
    it(what, async () => {
      const result = await cli(args);
      assert.equal(result.status, 2, result.stderr);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, expected);
      assertOneLine(result.stderr);
    });
  }

  it('--debug adds the stack trace', async () => {
    const result = await cli(['kill', '--debug']);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /UsageError: give exactly one of[\s\S]*\n\s+at /);
  });
});

describe('coatcheck keygen', () => {
  it('prints 32 random bytes as base64url, different every time', async () => {
    const [a, b] = await Promise.all([cli(['keygen']), cli(['keygen'])]);
    assert.equal(a.status, 0);
    assert.match(a.stdout, /^[A-Za-z0-9_-]{43}\n$/);
    assert.equal(Buffer.from(a.stdout.trim(), 'base64url').length, 32);
    assert.notEqual(a.stdout, b.stdout);
  });

  it('makes secrets cookieStore accepts', async () => {
    const secret = (await cli(['keygen'])).stdout.trim();
    const store = cookieStore({ secrets: [secret] });
    await store.close();
  });

  it('--bytes and --json', async () => {
    const result = await cli(['keygen', '--bytes', '64', '--json']);
    assert.equal(result.status, 0);
    const out = json<{ secret: string; bytes: number; encoding: string }>(result);
    assert.deepEqual(Object.keys(out), ['secret', 'bytes', 'encoding']);
    assert.equal(out.bytes, 64);
    assert.equal(out.encoding, 'base64url');
    assert.equal(Buffer.from(out.secret, 'base64url').length, 64);
  });
});

describe('coatcheck output to a reader that stops early', () => {
  // `coatcheck list … | head -1`, `coatcheck keygen | true`: once the reader is gone, writes fail
  // with EPIPE. That ends the command quietly instead of crashing with a stack trace.
  for (const args of [['keygen'], ['keygen', '--json'], ['--help'], ['stats', '--help']]) {
    it(`coatcheck ${args.join(' ')} exits 0 with nothing on stderr`, async () => {
      const result = await cliWithClosedStdout(args);
      assert.equal(result.stderr, '');
      assert.equal(result.status, 0);
    });
  }

  it('a store command still does its work and reports failures as usual', async () => {
    const path = join(dir, 'epipe.db');
    assert.equal((await cli(['migrate', '--store', `sqlite:${path}`])).status, 0);
    const listed = await cliWithClosedStdout(['list', '--user', 'nobody', '--store', `sqlite:${path}`]);
    assert.deepEqual(listed, { status: 0, stderr: '' });
    const failed = await cliWithClosedStdout(['list', '--user', 'nobody', '--store', `sqlite:${join(dir, 'missing.db')}`]);
    assert.equal(failed.status, 1);
    assert.match(failed.stderr, /^coatcheck list: no SQLite database at /);
    assertOneLine(failed.stderr);
  });

  it('any other stdout failure is one line on stderr and exit 1', { skip: !existsSync('/dev/full') && 'no /dev/full' }, async () => {
    const { spawnSync } = await import('node:child_process');
    const { openSync, closeSync } = await import('node:fs');
    const full = openSync('/dev/full', 'w');
    try {
      const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'keygen'], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8', timeout: 60_000 });
      assert.equal(result.status, 1);
      assert.match(result.stderr, /ENOSPC/);
      assertOneLine(result.stderr);
    } finally {
      closeSync(full);
    }
  });
});

describe('coatcheck store selection', () => {
  it('defaults to sqlite:./data/sessions.db in the working directory', async () => {
    const cwd = mkdtempSync(join(dir, 'default-'));
    const missing = await cli(['stats'], { cwd });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /no SQLite database at \.\/data\/sessions\.db \(create it with: coatcheck migrate --store sqlite:\.\/data\/sessions\.db\)/);
    assert.equal(existsSync(join(cwd, 'data')), false, 'a read-only command created the database');
    const created = await cli(['migrate'], { cwd });
    assert.equal(created.status, 0, created.stderr);
    assert.ok(existsSync(join(cwd, 'data/sessions.db')));
  });

  it('reads COATCHECK_STORE, and --store wins over it', async () => {
    const fromEnv = join(dir, 'env.db');
    const fromFlag = join(dir, 'flag.db');
    const env = { COATCHECK_STORE: `sqlite:${fromEnv}` };
    assert.equal((await cli(['migrate'], { env })).status, 0);
    assert.ok(existsSync(fromEnv));
    assert.equal((await cli(['migrate', '--store', `sqlite:${fromFlag}`], { env })).status, 0);
    assert.ok(existsSync(fromFlag));
  });

  it('never prints a password from the URL', async () => {
    const result = await cli(['stats', '--store', 'postgres://app:s3cret@127.0.0.1:1/db']);
    assert.equal(result.status, 1);
    assert.doesNotMatch(result.stderr, /s3cret/);
  });
});
