/** Every command against a temporary SQLite file, run as a child process. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SQLITE_SCHEMA_VERSION, sqliteStore } from '../../src/stores/sqlite.js';
import type { SessionRecord, Store } from '../../src/stores/types.js';
import { makeRecord } from '../../src/testing/store-contract.js';
import { writeSchemaV1 } from '../helpers/sqlite-schema-v1.js';
import { holdWriteLock } from '../helpers/sqlite-write-lock.js';
import { cli, inTerminal, json, terminalAvailable } from './run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'coatcheck-cli-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** A fresh database file path (not created). */
const freshPath = () => join(dir, `s${files++}.db`);
const url = (path: string, table?: string) => `sqlite:${path}${table ? `?table=${table}` : ''}`;

/** Writes records straight into the store, as an app would have. */
async function seed(path: string, records: SessionRecord[], table?: string): Promise<void> {
  const store = sqliteStore({ path, ...(table && { table }) });
  for (const record of records) await store.create(record);
  await store.close();
}

async function ids(path: string, records: SessionRecord[]): Promise<string[]> {
  const store: Store = sqliteStore({ path });
  const left: string[] = [];
  for (const r of records) if (await store.get(r.id)) left.push(r.id);
  await store.close();
  return left;
}

const hasStats = typeof sqliteStore({ path: ':memory:' }).stats === 'function';

describe('coatcheck on SQLite', () => {
  describe('migrate', () => {
    it('creates the file and table, then has nothing to do', async () => {
      const path = freshPath();
      const first = await cli(['migrate', '--store', url(path), '--json']);
      assert.equal(first.status, 0, first.stderr);
      assert.deepEqual(json(first), { store: 'sqlite', action: 'created', table: 'coatcheck_sessions', fromVersion: null, version: SQLITE_SCHEMA_VERSION });
      const again = await cli(['migrate', '--store', url(path)]);
      assert.equal(again.status, 0);
      assert.equal(again.stdout, `sqlite: table coatcheck_sessions in ${path} is already at schema version ${SQLITE_SCHEMA_VERSION}, nothing to do\n`);
    });

    it('upgrades a schema 1 table and says from which version', async () => {
      const path = freshPath();
      writeSchemaV1(path, [{ id: 'kept', userId: 'u1', data: '{"a":1}', createdAt: Date.now(), expiresAt: Date.now() + 60_000 }]);
      const migrated = await cli(['migrate', '--store', url(path), '--json']);
      assert.equal(migrated.status, 0, migrated.stderr);
      assert.deepEqual(json(migrated), { store: 'sqlite', action: 'migrated', table: 'coatcheck_sessions', fromVersion: 1, version: SQLITE_SCHEMA_VERSION });
      const store = sqliteStore({ path });
      assert.deepEqual((await store.get('kept'))?.data, { a: 1 });
      await store.close();
    });

    it('?table= names the table every command uses', async () => {
      const path = freshPath();
      const created = await cli(['migrate', '--store', url(path, 'app_sessions')]);
      assert.equal(created.stdout, `sqlite: created table app_sessions in ${path} (schema version ${SQLITE_SCHEMA_VERSION})\n`);
      await seed(path, [makeRecord({ userId: 'tabled' })], 'app_sessions');
      assert.equal(json<unknown[]>(await cli(['list', '--user', 'tabled', '--json', '--store', url(path, 'app_sessions')])).length, 1);
      // The default table was never created in this file: an error, not an empty list.
      const other = await cli(['list', '--user', 'tabled', '--json', '--store', url(path)]);
      assert.equal(other.status, 1);
      assert.match(other.stderr, /no table coatcheck_sessions in /);
    });
  });

  describe('migrate, review fixes', () => {
    it('adopts a table made by hand from the documented DDL (says so), and refuses another library\'s table of that name, leaving it alone', async () => {
      const path = freshPath();
      const raw = new Database(path);
      raw.exec(`CREATE TABLE coatcheck_sessions (id TEXT NOT NULL PRIMARY KEY, user_id TEXT, data TEXT NOT NULL, meta TEXT NOT NULL,
        created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, ip TEXT, user_agent TEXT) STRICT`);
      raw.exec('CREATE TABLE sessions (sid TEXT PRIMARY KEY, sess TEXT, expire INTEGER)');
      raw.close();
      const adopted = await cli(['migrate', '--json', '--store', url(path)]);
      assert.equal(adopted.status, 0, adopted.stderr);
      assert.deepEqual(json(adopted), { store: 'sqlite', action: 'adopted', table: 'coatcheck_sessions', fromVersion: null, version: SQLITE_SCHEMA_VERSION });
      const foreign = await cli(['migrate', '--store', url(path, 'sessions')]);
      assert.equal(foreign.status, 1);
      assert.equal(
        foreign.stderr,
        'coatcheck migrate: sqliteStore: table sessions exists but is not a coatcheck session table (it has no column id, user_id, data, meta, created_at, last_seen_at, expires_at, ip, user_agent; its columns: sid, sess, expire); give the store another table name, or move that table away\n',
      );
      const check = new Database(path, { readonly: true });
      assert.deepEqual(check.prepare('SELECT name FROM pragma_table_info(?)').pluck().all('sessions'), ['sid', 'sess', 'expire'], 'left as it was');
      check.close();
    });

    it('recreates a table dropped while its version row stayed, and says it created it', async () => {
      const path = freshPath();
      assert.equal((await cli(['migrate', '--store', url(path)])).status, 0);
      const raw = new Database(path);
      raw.exec('DROP TABLE coatcheck_sessions');
      raw.close();
      const again = await cli(['migrate', '--json', '--store', url(path)]);
      assert.equal(again.status, 0, again.stderr);
      assert.deepEqual(json(again), { store: 'sqlite', action: 'created', table: 'coatcheck_sessions', fromVersion: null, version: SQLITE_SCHEMA_VERSION });
      const stats = await cli(['stats', '--json', '--store', url(path)]);
      assert.equal(stats.status, 0, stats.stderr);
    });

    it('of several runs migrating one file at once, only the one that created the table says so', async () => {
      const path = freshPath();
      const empty = new Database(path); // the file exists, the table does not
      empty.pragma('journal_mode = WAL');
      empty.close();
      // Another connection holds the write lock while the runs start: every one reads "no table"
      // before it opens the store, then waits for the lock to migrate.
      const holder = await holdWriteLock(path, 5_000);
      const released = new Promise((resolve) => holder.once('exit', resolve));
      const runs = await Promise.all(Array.from({ length: 3 }, () => cli(['migrate', '--json', '--store', url(path)])));
      await released;
      for (const run of runs) assert.equal(run.status, 0, run.stderr);
      const actions = runs.map((run) => json<{ action: string }>(run).action).sort();
      assert.deepEqual(actions, ['created', 'unchanged', 'unchanged']);
    });
  });

  describe('with data', () => {
    let path: string;
    const now = Date.now();
    let alice: SessionRecord[];
    let others: SessionRecord[];
    beforeEach(async () => {
      path = freshPath();
      assert.equal((await cli(['migrate', '--store', url(path)])).status, 0);
      alice = [
        makeRecord({ userId: 'alice', createdAt: now - 60_000, ip: '203.0.113.5', userAgent: 'Firefox' }),
        makeRecord({ userId: 'alice', createdAt: now - 120_000, ip: null, userAgent: null }),
        makeRecord({ userId: 'alice', expiresAt: now - 1_000 }),
      ];
      others = [makeRecord({ userId: 'bob' }), makeRecord({ userId: null }), makeRecord({ userId: null }), makeRecord({ userId: null, expiresAt: now - 5 })];
      await seed(path, [...alice, ...others]);
    });

    it('list --user prints live sessions oldest first: handles, times, IP, user agent', async () => {
      const result = await cli(['list', '--user', 'alice', '--store', url(path)]);
      assert.equal(result.status, 0, result.stderr);
      const lines = result.stdout.trimEnd().split('\n');
      assert.equal(lines[0], '2 live sessions of user alice:');
      assert.match(lines[1] ?? '', /^HANDLE\s+CREATED\s+LAST SEEN\s+EXPIRES\s+IP\s+USER AGENT$/);
      assert.ok(lines[2]?.startsWith(`${alice[1]?.id}  `), 'oldest first');
      assert.match(lines[2] ?? '', /\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+-\s+-$/);
      assert.ok(lines[3]?.startsWith(`${alice[0]?.id}  `));
      assert.match(lines[3] ?? '', /203\.0\.113\.5\s+Firefox$/);
      assert.equal(lines.length, 4, 'the expired session is not listed');
      assert.doesNotMatch(result.stdout, /count/, 'no session data');
    });

    it('list --user --json prints an array with ISO times', async () => {
      const result = await cli(['list', '--user', 'alice', '--json', '--store', url(path)]);
      const list = json<Array<Record<string, unknown>>>(result);
      assert.deepEqual(
        list.map((d) => [d.handle, d.ip, d.userAgent]),
        [
          [alice[1]?.id, null, null],
          [alice[0]?.id, '203.0.113.5', 'Firefox'],
        ],
      );
      assert.deepEqual(Object.keys(list[0] ?? {}), ['handle', 'userId', 'createdAt', 'lastSeenAt', 'expiresAt', 'ip', 'userAgent']);
      assert.equal(list[1]?.createdAt, new Date(alice[0]?.createdAt ?? 0).toISOString());
      assert.deepEqual(json(await cli(['list', '--user', 'nobody', '--json', '--store', url(path)])), []);
      assert.equal((await cli(['list', '--user', 'nobody', '--store', url(path)])).stdout, 'no live sessions for user nobody\n');
    });

    it('stats counts sessions, users, guests and expired records', async () => {
      if (!hasStats) {
        // Until the SQLite store has stats(), the command must say so clearly.
        const result = await cli(['stats', '--store', url(path)]);
        assert.equal(result.status, 1);
        assert.equal(result.stderr, 'coatcheck stats: stats is not supported by the sqlite store (it has no stats() method)\n');
        return;
      }
      const result = await cli(['stats', '--json', '--store', url(path)]);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(json(result), {
        store: 'sqlite',
        sessions: 5,
        expired: 2,
        users: 2,
        guests: 2,
        topUsers: [
          { userId: 'alice', sessions: 2 },
          { userId: 'bob', sessions: 1 },
        ],
      });
      const human = await cli(['stats', '--top', '1', '--store', url(path)]);
      assert.equal(
        human.stdout,
        `store     ${url(path)}\nsessions  5 live\nexpired   2 awaiting clear-expired\nusers     2\nguests    2\n\ntop users:\nUSER   SESSIONS\nalice  2\n`,
      );
    });

    it('stats leaves out rotation forwarders (user __moved__), and kill --user __moved__ is refused', async () => {
      if (!hasStats) return; // the "not supported" answer is tested above
      const forwarders = [
        makeRecord({ userId: '__moved__' }),
        makeRecord({ userId: '__moved__' }),
        makeRecord({ userId: '__moved__' }),
        // An expired one awaits clear-expired like any record.
        makeRecord({ userId: '__moved__', expiresAt: now - 10 }),
      ];
      await seed(path, forwarders);
      const result = await cli(['stats', '--json', '--store', url(path)]);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(json(result), {
        store: 'sqlite',
        sessions: 5,
        expired: 3,
        users: 2,
        guests: 2,
        topUsers: [
          { userId: 'alice', sessions: 2 },
          { userId: 'bob', sessions: 1 },
        ],
      });
      const kill = await cli(['kill', '--user', '__moved__', '--store', url(path)]);
      assert.equal(kill.status, 2);
      assert.match(kill.stderr, /^coatcheck kill: __moved__ is reserved for rotation forwarders/);
      assert.equal((await ids(path, forwarders)).length, forwarders.length, 'nothing was deleted');
      for (const reserved of ['__moved__', '__guest__']) {
        const listed = await cli(['list', '--user', reserved, '--store', url(path)]);
        assert.equal(listed.status, 2);
        assert.match(listed.stderr, /is a reserved id, not a user/);
      }
    });

    it('kill --user ends only that user\'s sessions', async () => {
      const result = await cli(['kill', '--user', 'alice', '--json', '--store', url(path)]);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(json(result), { store: 'sqlite', scope: 'user', user: 'alice', killed: 3 });
      assert.deepEqual(await ids(path, alice), []);
      assert.equal((await ids(path, others)).length, others.length);
      assert.equal((await cli(['kill', '--user', 'alice', '--store', url(path)])).stdout, 'ended 0 sessions of user alice\n');
    });

    it('kill --guests ends every session without a user', async () => {
      const result = await cli(['kill', '--guests', '--store', url(path)]);
      assert.equal(result.stdout, 'ended 3 sessions of guests\n');
      assert.equal((await ids(path, alice)).length, 3);
      assert.deepEqual(await ids(path, others), [others[0]?.id]);
    });

    it('kill --all refuses without --yes off a terminal, deleting nothing; with --yes it ends everything', async () => {
      const refused = await cli(['kill', '--all', '--store', url(path)]);
      assert.equal(refused.status, 2);
      assert.equal((await ids(path, [...alice, ...others])).length, 7);
      const done = await cli(['kill', '--all', '--yes', '--store', url(path)]);
      assert.equal(done.status, 0, done.stderr);
      assert.equal(done.stdout, 'ended 7 sessions\n');
      assert.deepEqual(await ids(path, [...alice, ...others]), []);
    });

    it('clear-expired deletes only expired sessions', async () => {
      const result = await cli(['clear-expired', '--json', '--store', url(path)]);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(json(result), { store: 'sqlite', deleted: 2, batches: 1, complete: true });
      assert.equal((await ids(path, [...alice, ...others])).length, 5);
      assert.equal((await cli(['clear-expired', '--store', url(path)])).stdout, 'deleted 0 expired sessions in 1 batch\n');
    });
  });

  describe('clear-expired in batches', () => {
    let path: string;
    before(async () => {
      path = freshPath();
      const now = Date.now();
      await seed(path, [
        ...Array.from({ length: 25 }, (_, i) => makeRecord({ expiresAt: now - 10_000 + i })),
        ...Array.from({ length: 5 }, () => makeRecord()),
      ]);
    });

    it('stops at --max-batches and says more may remain, then finishes', async () => {
      const partial = await cli(['clear-expired', '--batch-size', '10', '--max-batches', '1', '--store', url(path)]);
      assert.equal(partial.status, 0, partial.stderr);
      assert.equal(
        partial.stdout,
        'deleted 10 expired sessions in 1 batch\nstopped after --max-batches 1: more expired sessions may remain, run again to continue\n',
      );
      const rest = await cli(['clear-expired', '--batch-size', '10', '--json', '--store', url(path)]);
      assert.deepEqual(json(rest), { store: 'sqlite', deleted: 15, batches: 2, complete: true });
    });
  });

  describe('clear-expired with an exact multiple of --batch-size expired', () => {
    let path: string;
    before(async () => {
      path = freshPath();
      const now = Date.now();
      await seed(path, [...Array.from({ length: 20 }, (_, i) => makeRecord({ expiresAt: now - 10_000 + i })), makeRecord()]);
    });

    it('never claims that sessions remain: the store cannot tell after a full batch', async () => {
      const first = await cli(['clear-expired', '--batch-size', '10', '--max-batches', '2', '--store', url(path)]);
      assert.equal(first.status, 0, first.stderr);
      // All 20 are gone, but the second batch was full, so the store reported no end.
      assert.equal(
        first.stdout,
        'deleted 20 expired sessions in 2 batches\nstopped after --max-batches 2: more expired sessions may remain, run again to continue\n',
      );
      const again = await cli(['clear-expired', '--batch-size', '10', '--max-batches', '2', '--json', '--store', url(path)]);
      assert.deepEqual(json(again), { store: 'sqlite', deleted: 0, batches: 1, complete: true });
    });
  });

  describe('an empty store URL is a usage error, never the fallback store', () => {
    // The default store (./data/sessions.db in the working directory) and a COATCHECK_STORE one,
    // both holding sessions: `--store "$DATABASE_URL"` with the variable unset must touch neither.
    let cwd: string;
    let fromEnv: string;
    const records = [makeRecord({ userId: 'alice' }), makeRecord({ userId: null })];
    const left = async (path: string) => (await ids(path, records)).length;
    beforeEach(async () => {
      cwd = mkdtempSync(join(dir, 'empty-store-'));
      fromEnv = freshPath();
      assert.equal((await cli(['migrate'], { cwd })).status, 0);
      await seed(join(cwd, 'data/sessions.db'), records);
      await seed(fromEnv, records);
    });

    it('kill --all --yes --store "" deletes nothing and exits 2', async () => {
      for (const args of [['--store', ''], ['--store=']]) {
        for (const env of [{}, { COATCHECK_STORE: url(fromEnv) }] as Array<Record<string, string>>) {
          const result = await cli(['kill', '--all', '--yes', ...args], { cwd, env });
          assert.equal(result.status, 2, result.stdout + result.stderr);
          assert.equal(result.stdout, '');
          assert.equal(result.stderr, 'coatcheck kill: --store needs a store URL, got an empty value (is the variable you passed unset?) (see coatcheck kill --help)\n');
        }
      }
      assert.equal(await left(join(cwd, 'data/sessions.db')), 2, 'the default store was touched');
      assert.equal(await left(fromEnv), 2, 'the COATCHECK_STORE store was touched');
    });

    it('COATCHECK_STORE set but empty is refused too, and --store still wins over it', async () => {
      const env = { COATCHECK_STORE: '' };
      const result = await cli(['kill', '--all', '--yes'], { cwd, env });
      assert.equal(result.status, 2, result.stdout + result.stderr);
      assert.equal(result.stderr, 'coatcheck kill: COATCHECK_STORE is set but empty: set it to a store URL, or unset it to use the default (see coatcheck kill --help)\n');
      assert.equal(await left(join(cwd, 'data/sessions.db')), 2, 'the default store was touched');
      const named = await cli(['kill', '--guests', '--json', '--store', url(fromEnv)], { cwd, env });
      assert.deepEqual(json(named), { store: 'sqlite', scope: 'guests', killed: 1 });
    });
  });

  describe('failures', () => {
    it('a file that is not a database exits 1 with one line', async () => {
      const path = join(dir, 'garbage.db');
      writeFileSync(path, 'this is not a database, just some text that is long enough to have a header'.repeat(20));
      const result = await cli(['kill', '--guests', '--store', url(path)]);
      assert.equal(result.status, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^coatcheck kill: .*not a database\n$/);
    });

    it('a path that is a directory is a usage error (exit 2) for every command, migrate included, and nothing is created', async () => {
      const folder = join(dir, 'a-directory');
      mkdirSync(folder);
      for (const args of [['stats'], ['list', '--user', 'x'], ['kill', '--guests'], ['clear-expired'], ['migrate']]) {
        for (const target of [folder, `${folder}/`]) {
          const result = await cli([...args, '--store', url(target)]);
          assert.equal(result.status, 2, `${args[0]}: ${result.stderr}`);
          assert.equal(result.stdout, '');
          assert.equal(
            result.stderr,
            `coatcheck ${args[0]}: ${url(target)} is a directory: sqlite:PATH names the database file, e.g. sqlite:${folder}/sessions.db (see coatcheck ${args[0]} --help)\n`,
          );
        }
      }
      assert.deepEqual(readdirSync(folder), []);
    });

    it('a ?table= longer than SQLite takes is a usage error naming the limit, for migrate too, and creates nothing', async () => {
      const long = 't'.repeat(64);
      const existing = freshPath();
      assert.equal((await cli(['migrate', '--store', url(existing)])).status, 0);
      const missing = freshPath();
      for (const [args, path] of [[['stats'], existing], [['migrate'], existing], [['migrate'], missing]] as const) {
        const result = await cli([...args, '--store', url(path, long)]);
        assert.equal(result.status, 2, result.stderr);
        assert.equal(
          result.stderr,
          `coatcheck ${args[0]}: ?table= must be letters, digits and _ (not starting with a digit), at most 63 characters for a SQLite table, got "${long}" (64 characters) (see coatcheck ${args[0]} --help)\n`,
        );
      }
      assert.equal(existsSync(missing), false);
      // The longest name SQLite takes works with every command.
      const longest = 't'.repeat(63);
      assert.equal((await cli(['migrate', '--store', url(existing, longest)])).status, 0);
      assert.equal((await cli(['list', '--user', 'x', '--store', url(existing, longest)])).status, 0);
    });

    it('a missing file is never created by a read-only command', async () => {
      const path = freshPath();
      const result = await cli(['list', '--user', 'x', '--store', url(path)]);
      assert.equal(result.status, 1);
      assert.equal(result.stderr, `coatcheck list: no SQLite database at ${path} (create it with: coatcheck migrate --store ${url(path)})\n`);
    });
  });

  describe('never creates or upgrades a schema outside migrate', () => {
    const tables = async (path: string) => {
      const { default: Database } = await import('better-sqlite3');
      const raw = new Database(path, { readonly: true });
      try {
        return raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
      } finally {
        raw.close();
      }
    };

    it('a mistyped ?table= fails with one line naming migrate, and creates no table', async () => {
      const path = freshPath();
      assert.equal((await cli(['migrate', '--store', url(path)])).status, 0);
      await seed(path, [makeRecord({ userId: 'bob' })]);
      for (const args of [['kill', '--user', 'bob'], ['list', '--user', 'bob'], ['stats'], ['clear-expired'], ['kill', '--all', '--yes']]) {
        const result = await cli([...args, '--store', url(path, 'coatcheck_session')]);
        assert.equal(result.status, 1, `${args.join(' ')}: ${result.stdout}`);
        assert.equal(result.stdout, '');
        assert.equal(
          result.stderr,
          `coatcheck ${args[0]}: no table coatcheck_session in ${path} (check ?table=, or create it with: coatcheck migrate --store ${url(path, 'coatcheck_session')})\n`,
        );
      }
      assert.deepEqual(await tables(path), ['coatcheck_schema', 'coatcheck_sessions']);
      assert.equal(json<unknown[]>(await cli(['list', '--user', 'bob', '--json', '--store', url(path)])).length, 1, 'bob was not killed');
    });

    it('an old schema is refused, not silently upgraded, until migrate runs', async () => {
      const path = freshPath();
      writeSchemaV1(path, [{ id: 'kept', userId: 'u1', data: '{"a":1}', createdAt: Date.now(), expiresAt: Date.now() + 60_000 }]);
      const result = await cli(['stats', '--store', url(path)]);
      assert.equal(result.status, 1);
      assert.equal(
        result.stderr,
        `coatcheck stats: table coatcheck_sessions in ${path} is at schema version 1, this coatcheck needs ${SQLITE_SCHEMA_VERSION} (upgrade it with: coatcheck migrate --store ${url(path)})\n`,
      );
      const { default: Database } = await import('better-sqlite3');
      const raw = new Database(path, { readonly: true });
      assert.deepEqual(raw.prepare('SELECT version FROM coatcheck_schema').pluck().all(), [1], 'stats did not migrate');
      raw.close();
      assert.equal((await cli(['migrate', '--store', url(path)])).status, 0);
      assert.equal(json<{ sessions: number }>(await cli(['stats', '--json', '--store', url(path)])).sessions, 1);
    });
  });

  // SQLite matches table names without regard to case, but coatcheck_schema rows are looked up by
  // exact name: a ?table= in another case once read as "schema version unknown", and migrate then
  // rewrote every row of the live table and left a second version row.
  describe('?table= in another letter case names the same table', () => {
    const raw = async <T>(path: string, read: (db: import('better-sqlite3').Database) => T): Promise<T> => {
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(path, { readonly: true });
      try {
        return read(db);
      } finally {
        db.close();
      }
    };
    const versionRows = (path: string) => raw(path, (db) => db.prepare('SELECT name, version FROM coatcheck_schema ORDER BY name').raw().all());
    const sweepHints = (path: string) =>
      raw(path, (db) => db.prepare('SELECT id, sweep_at, expires_at FROM coatcheck_sessions ORDER BY id').raw().all() as Array<[string, number, number]>);

    it('every command works on it, and migrate leaves the table and its version alone', async () => {
      const path = freshPath();
      assert.equal((await cli(['migrate', '--store', url(path)])).status, 0);
      const bob = [makeRecord({ userId: 'bob' }), makeRecord({ userId: 'bob' })];
      await seed(path, [...bob, makeRecord({ userId: null })]);
      const hints = await sweepHints(path);
      // The hints differ from the expiry: a re-run of the 1 → 2 step would set them equal.
      assert.ok(hints.every(([, sweepAt, expiresAt]) => sweepAt !== expiresAt));

      for (const spelling of ['Coatcheck_Sessions', 'COATCHECK_SESSIONS']) {
        const migrated = await cli(['migrate', '--json', '--store', url(path, spelling)]);
        assert.equal(migrated.status, 0, migrated.stderr);
        assert.deepEqual(await sweepHints(path), hints, `migrate with ?table=${spelling} rewrote the rows`);
        assert.deepEqual(await versionRows(path), [['coatcheck_sessions', SQLITE_SCHEMA_VERSION]], 'no second version row');
        assert.deepEqual(json(migrated), { store: 'sqlite', action: 'unchanged', table: 'coatcheck_sessions', fromVersion: SQLITE_SCHEMA_VERSION, version: SQLITE_SCHEMA_VERSION });
      }
      const human = await cli(['migrate', '--store', url(path, 'Coatcheck_Sessions')]);
      assert.equal(human.stdout, `sqlite: table coatcheck_sessions in ${path} is already at schema version ${SQLITE_SCHEMA_VERSION}, nothing to do\n`);

      const stats = await cli(['stats', '--json', '--store', url(path, 'Coatcheck_Sessions')]);
      assert.equal(stats.status, 0, stats.stderr);
      assert.equal(json<{ sessions: number }>(stats).sessions, 3);
      const listed = await cli(['list', '--user', 'bob', '--json', '--store', url(path, 'COATCHECK_SESSIONS')]);
      assert.equal(listed.status, 0, listed.stderr);
      assert.equal(json<unknown[]>(listed).length, 2);

      const killed = await cli(['kill', '--user', 'bob', '--json', '--store', url(path, 'Coatcheck_Sessions')]);
      assert.equal(json<{ killed: number }>(killed).killed, 2);
    });

    it('a table whose version row is spelled otherwise than the table (set up by the app) is current', async () => {
      // The app's sqliteStore({ table: 'Coatcheck_Sessions' }) created the table and its row.
      const path = freshPath();
      await seed(path, [makeRecord({ userId: 'carol' })], 'Coatcheck_Sessions');
      assert.deepEqual(await versionRows(path), [['Coatcheck_Sessions', SQLITE_SCHEMA_VERSION]]);
      const stats = await cli(['stats', '--json', '--store', url(path)]);
      assert.equal(stats.status, 0, stats.stderr);
      assert.equal(json<{ sessions: number }>(stats).sessions, 1);
      const migrated = await cli(['migrate', '--json', '--store', url(path, 'coatcheck_sessions')]);
      assert.equal(json<{ action: string }>(migrated).action, 'unchanged');
      assert.deepEqual(await versionRows(path), [['Coatcheck_Sessions', SQLITE_SCHEMA_VERSION]]);
    });

    it('after two version rows were written (the old bug), the highest is the one read', async () => {
      const path = freshPath();
      writeSchemaV1(path, [{ id: 'kept', userId: 'u1', data: '{"a":1}', createdAt: Date.now(), expiresAt: Date.now() + 60_000 }]);
      assert.equal((await cli(['migrate', '--store', url(path)])).status, 0);
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(path);
      db.prepare('INSERT INTO coatcheck_schema (name, version) VALUES (?, ?)').run('Coatcheck_Sessions', 1);
      db.close();
      for (const spelling of [undefined, 'Coatcheck_Sessions']) {
        const result = await cli(['list', '--user', 'u1', '--json', '--store', url(path, spelling)]);
        assert.equal(result.status, 0, result.stderr);
        assert.equal(json<unknown[]>(result).length, 1);
      }
    });
  });

  describe('on a terminal', { skip: !terminalAvailable && 'util-linux `script` is not installed' }, () => {
    let path: string;
    let records: SessionRecord[];
    beforeEach(async () => {
      path = freshPath();
      records = [makeRecord({ userId: 'tty' }), makeRecord(), makeRecord({ expiresAt: Date.now() - 1 })];
      await seed(path, records);
    });

    it('kill --all asks first; anything but yes deletes nothing and exits 1', async () => {
      const declined = await inTerminal(['kill', '--all', '--store', url(path)], 'n\n');
      assert.equal(declined.status, 1);
      assert.match(declined.output, new RegExp(`Delete EVERY session in ${url(path).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*\\? \\[y/N\\]`));
      assert.match(declined.output, /coatcheck kill: aborted: nothing was deleted/);
      assert.equal((await ids(path, records)).length, 3);
      const silent = await inTerminal(['kill', '--all', '--store', url(path)], '');
      assert.equal(silent.status, 1, 'end of input is no');
      assert.equal((await ids(path, records)).length, 3);
    });

    it('kill --all goes ahead on yes', async () => {
      const accepted = await inTerminal(['kill', '--all', '--store', url(path)], 'yes\n');
      assert.equal(accepted.status, 0, accepted.output);
      assert.match(accepted.output, /ended 3 sessions/);
      assert.deepEqual(await ids(path, records), []);
    });

    it('clear-expired draws a progress line on stderr and erases it', async () => {
      const result = await inTerminal(['clear-expired', '--store', url(path)]);
      assert.equal(result.status, 0, result.output);
      // \r, then ESC [ K (erase to end of line): the line is redrawn in place, then erased.
      const reset = '\r\u001b[K';
      assert.ok(result.output.includes(`${reset}clearing expired sessions`), JSON.stringify(result.output));
      assert.ok(result.output.endsWith(`${reset}deleted 1 expired session in 1 batch\r\n`), JSON.stringify(result.output));
    });
  });
});
