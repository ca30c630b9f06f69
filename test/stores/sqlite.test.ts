import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { CoatcheckError, ConfigError } from '../../src/errors.js';
import { createSessions } from '../../src/index.js';
import { refusedWorkerFlags, workerExecArgv } from '../../src/stores/sqlite-sweeper.js';
import { SQLITE_SCHEMA_VERSION, sqliteStore } from '../../src/stores/sqlite.js';
import { SWEEP_SLACK_MAX_MS, liveRowsCte, sweepBatchSql, sweepHint, sweepSlack } from '../../src/stores/sqlite-sweep-hint.js';
import type { Awaitable } from '../../src/stores/types.js';
import { writeSchemaV1 } from '../helpers/sqlite-schema-v1.js';
import { holdWriteLock } from '../helpers/sqlite-write-lock.js';
import { checkWholeMillisecondTimes } from '../helpers/whole-ms-times.js';
import { makeRecord, randomId, testStore } from '../../src/testing/store-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'coatcheck-sqlite-'));
let files = 0;
/** A fresh database path inside this run's temp directory. */
function tempPath(name = 'sessions'): string {
  return join(dir, `${name}-${files++}.db`);
}
after(() => rmSync(dir, { recursive: true, force: true }));

const later = () => ({ lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 });

// A sweeper worker that fails to start makes the store sweep inline with a process warning: the
// worker-path tests below assert that none was emitted (else they would pass on the fallback).
const sweeperWarnings: string[] = [];
process.on('warning', (warning) => {
  if (/sweeper worker/.test(warning.message)) sweeperWarnings.push(warning.message);
});

/**
 * Adds `count` expired rows (expires_at from before - count to before - 1) to the store's table in
 * one transaction through a connection of its own. With `shuffled`, expiry order is unrelated to
 * insertion order, as when sessions are touched at random: the sweep then hits rows all over the
 * table (the expensive case).
 */
function addExpired(path: string, count: number, before: number, shuffled = false, data = '{"cart":[1,2,3],"theme":"dark"}'): void {
  const offsets = Array.from({ length: count }, (_, i) => i);
  if (shuffled) {
    for (let i = count - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [offsets[i], offsets[j]] = [offsets[j] as number, offsets[i] as number];
    }
  }
  const raw = new Database(path);
  const insert = raw.prepare(
    `INSERT INTO coatcheck_sessions (id, user_id, data, meta, created_at, last_seen_at, expires_at, ip, user_agent)
     VALUES (?, ?, ?, '{}', ?, ?, ?, '127.0.0.1', 'test')`,
  );
  raw.transaction(() => {
    for (let i = 0; i < count; i++) {
      const expiresAt = before - count + (offsets[i] as number);
      insert.run(randomId(), i % 3 === 0 ? null : `user-${i % 997}`, data, expiresAt - 1_000, expiresAt - 1_000, expiresAt);
    }
  })();
  raw.close();
}

/**
 * The WAL-index header in the -shm file (sqlite.org/walformat.html): the last valid frame of the
 * WAL (mxFrame, offset 16) and how many frames have been copied back into the database
 * (nBackfill, offset 96, right after the header's two 48-byte copies). Native byte order.
 */
function walIndex(path: string): { frames: number; backfilled: number } {
  const shm = readFileSync(`${path}-shm`);
  return { frames: shm.readUInt32LE(16), backfilled: shm.readUInt32LE(96) };
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

function countRows(path: string): number {
  const raw = new Database(path, { readonly: true });
  const { n } = raw.prepare('SELECT count(*) AS n FROM coatcheck_sessions').get() as { n: number };
  raw.close();
  return n;
}

/** Runs a TypeScript snippet in a child process (with tsx) and resolves with its exit and output. */
function runChild(code: string, timeoutMs = 30_000, nodeFlags: string[] = []): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk) => (stdout += chunk));
    proc.stderr.on('data', (chunk) => (stderr += chunk));
    proc.on('close', (exitCode, signal) => resolve({ code: exitCode, signal, stdout, stderr }));
  });
}

testStore('sqlite (:memory:)', { create: () => sqliteStore({ path: ':memory:' }) });

describe('sqliteStore setup', () => {
  it('adopts a table made by hand from the documented DDL, and refuses one it could not use before changing it', () => {
    const DDL = `(id TEXT NOT NULL PRIMARY KEY, user_id TEXT, data TEXT NOT NULL, meta TEXT NOT NULL, created_at INTEGER NOT NULL,
      last_seen_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, ip TEXT, user_agent TEXT)`;
    const cases: [string, string, RegExp][] = [
      ['no_key', DDL.replace('id TEXT NOT NULL PRIMARY KEY', 'id TEXT NOT NULL'), /id is not its primary key/],
      ['without_rowid', `${DDL} WITHOUT ROWID`, /it is a WITHOUT ROWID table/],
      ['text_times', DDL.replace('expires_at INTEGER NOT NULL', 'expires_at TEXT NOT NULL'), /its column expires_at is text, not integer/],
      ['extra', DDL.replace('user_agent TEXT', 'user_agent TEXT, tenant TEXT NOT NULL'), /its column tenant is NOT NULL without a default/],
    ];
    for (const [table, ddl, why] of cases) {
      const path = join(dir, `adopt-${table}.db`);
      const raw = new Database(path);
      raw.exec(`CREATE TABLE ${table} ${ddl}`);
      const before = raw.prepare("SELECT sql FROM sqlite_master WHERE tbl_name = ? ORDER BY name").pluck().all(table);
      raw.close();
      assert.throws(() => sqliteStore({ path, table }), (error: unknown) => error instanceof ConfigError && why.test(error.message), table);
      const check = new Database(path);
      assert.deepEqual(check.prepare("SELECT sql FROM sqlite_master WHERE tbl_name = ? ORDER BY name").pluck().all(table), before, `${table}: left as it was`);
      check.close();
    }
    const path = join(dir, 'adopt-ok.db');
    const raw = new Database(path);
    raw.exec(`CREATE TABLE hand_made ${DDL} STRICT`);
    raw.close();
    const store = sqliteStore({ path, table: 'hand_made', sweepInWorker: false, checkpointInWorker: false });
    return store.close();
  });

  it('refuses a path that is a directory at setup, naming the fix', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cc-sqlite-dir-'));
    try {
      assert.throws(() => sqliteStore({ path: dir }), (e: Error & { code?: string }) => e.code === 'ERR_CONFIG' && /is a directory; path names the database file/.test(e.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const contractFile = tempPath('contract');
testStore('sqlite (file, WAL)', {
  create: () => sqliteStore({ path: contractFile }),
  extra: (getStore) => {
    it('runs the file in WAL mode', () => {
      const raw = new Database(contractFile);
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
      raw.close();
      assert.equal(getStore().name, 'sqlite');
    });
  },
});

describe('sqliteStore', () => {
  it('creates its schema on a fresh file (and the parent directory), and data survives a restart', async () => {
    const path = join(dir, 'nested', 'deeper', 'sessions.db');
    assert.equal(existsSync(path), false);
    const record = makeRecord({ userId: 'u1', data: { cart: [1, 2] }, meta: { csrf: 'x' } });
    const first = sqliteStore({ path });
    await first.create(record);
    await first.update(record.id, { data: { set: { more: true } }, ...later() });
    await first.close();
    assert.ok(existsSync(path));

    const second = sqliteStore({ path });
    const loaded = await second.get(record.id);
    assert.deepEqual(loaded?.data, { cart: [1, 2], more: true });
    assert.deepEqual(loaded?.meta, { csrf: 'x' });
    assert.deepEqual((await second.listByUser('u1')).map((s) => s.id), [record.id]);
    await second.close();
  });

  it('records the schema version and reopens an existing database without failing', async () => {
    const path = tempPath();
    await sqliteStore({ path }).close();
    await sqliteStore({ path }).close();
    const raw = new Database(path);
    assert.deepEqual(raw.prepare('SELECT name, version FROM coatcheck_schema').all(), [
      { name: 'coatcheck_sessions', version: SQLITE_SCHEMA_VERSION },
    ]);
    const indexes = (raw.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'coatcheck_sessions' AND sql IS NOT NULL").all() as { name: string }[])
      .map((r) => r.name)
      .sort();
    assert.deepEqual(indexes, ['coatcheck_sessions_sweep', 'coatcheck_sessions_user']);
    raw.close();
  });

  it('keeps tables of different names apart, each with its own version row', async () => {
    const path = tempPath();
    const a = sqliteStore({ path, table: 'sessions_a' });
    const b = sqliteStore({ path, table: 'sessions_b' });
    const record = makeRecord();
    await a.create(record);
    assert.equal(await b.get(record.id), null);
    assert.equal(await b.destroyAll(), 0);
    assert.ok(await a.get(record.id));
    await a.close();
    await b.close();
    const raw = new Database(path);
    assert.deepEqual(raw.prepare('SELECT name FROM coatcheck_schema ORDER BY name').all(), [{ name: 'sessions_a' }, { name: 'sessions_b' }]);
    raw.close();
  });

  it('migrates a schema 1 table: rows keep their data, the sweep hint starts at the exact expiry', async () => {
    const path = tempPath();
    const now = Date.now();
    writeSchemaV1(path, [
      { id: 'live', userId: 'u1', data: '{"cart":[1]}', createdAt: now, expiresAt: now + 3_600_000 },
      { id: 'gone', userId: 'u1', data: '{}', createdAt: now - 10_000, expiresAt: now - 1 },
    ]);

    const store = sqliteStore({ path, sweepInWorker: false });
    assert.deepEqual((await store.get('live'))?.data, { cart: [1] });
    assert.deepEqual(await store.deleteExpired({ before: now, limit: 10 }), { deleted: 1, cursor: null });
    assert.equal(await store.get('gone'), null);
    assert.deepEqual((await store.listByUser('u1')).map((s) => s.id), ['live']);
    await store.close();
    const check = new Database(path);
    assert.deepEqual(check.prepare('SELECT sweep_at - expires_at AS lead FROM coatcheck_sessions').all(), [{ lead: 0 }]);
    assert.deepEqual(check.prepare('SELECT version FROM coatcheck_schema').all(), [{ version: SQLITE_SCHEMA_VERSION }]);
    check.close();
  });

  it('refuses a table written by a newer schema version', () => {
    const path = tempPath();
    sqliteStore({ path }).close();
    const raw = new Database(path);
    raw.prepare('UPDATE coatcheck_schema SET version = ? WHERE name = ?').run(SQLITE_SCHEMA_VERSION + 1, 'coatcheck_sessions');
    raw.close();
    assert.throws(() => sqliteStore({ path }), (error: unknown) => error instanceof ConfigError && /newer/.test(error.message));
  });

  it('createTable: false changes nothing: no file, no table, no migration, only a check', async () => {
    const tables = (path: string) => {
      const raw = new Database(path, { readonly: true });
      try {
        return raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
      } finally {
        raw.close();
      }
    };
    const refused = (pattern: RegExp) => (error: unknown) => error instanceof ConfigError && pattern.test(error.message);

    const missing = tempPath('missing');
    assert.throws(() => sqliteStore({ path: missing, createTable: false }), refused(/no database file/));
    assert.equal(existsSync(missing), false, 'no file created');
    const nested = join(dir, `absent-${files++}`);
    assert.throws(() => sqliteStore({ path: join(nested, 'x.db'), createTable: false }), refused(/no database file/));
    assert.equal(existsSync(nested), false, 'no directory created');

    const path = tempPath();
    await sqliteStore({ path }).close();
    assert.throws(() => sqliteStore({ path, table: 'typo', createTable: false }), refused(/no table typo/));
    assert.deepEqual(tables(path), ['coatcheck_schema', 'coatcheck_sessions'], 'no table created');

    const old = tempPath('v1');
    writeSchemaV1(old, [{ id: 'kept', userId: 'u1', data: '{"a":1}', createdAt: Date.now(), expiresAt: Date.now() + 60_000 }]);
    assert.throws(() => sqliteStore({ path: old, createTable: false }), refused(/schema version 1, this coatcheck needs/));
    const raw = new Database(old, { readonly: true });
    assert.deepEqual(raw.prepare('SELECT version FROM coatcheck_schema').pluck().all(), [1], 'not migrated');
    raw.close();

    assert.throws(() => sqliteStore({ path: ':memory:', createTable: false }), refused(/no table coatcheck_sessions/));
    assert.throws(() => sqliteStore({ path: ':memory:', createTable: 'no' as unknown as boolean }), refused(/createTable/));

    const store = sqliteStore({ path, createTable: false });
    const record = makeRecord();
    await store.create(record);
    assert.deepEqual(await store.get(record.id), record);
    await store.close();
  });

  it('rejects get with ERR_CORRUPT_RECORD for a row that cannot be decoded, without crashing', async () => {
    const database = new Database(':memory:');
    const store = sqliteStore({ database });
    const garbage = makeRecord();
    const array = makeRecord();
    const badMeta = makeRecord();
    const fine = makeRecord();
    for (const r of [garbage, array, badMeta, fine]) await store.create(r);
    database.prepare('UPDATE coatcheck_sessions SET data = ? WHERE id = ?').run('{"not json', garbage.id);
    database.prepare('UPDATE coatcheck_sessions SET data = ? WHERE id = ?').run('[1,2]', array.id);
    database.prepare('UPDATE coatcheck_sessions SET meta = ? WHERE id = ?').run('null', badMeta.id);
    for (const r of [garbage, array, badMeta]) {
      await assert.rejects(async () => store.get(r.id), (error: unknown) => {
        assert.ok(error instanceof CoatcheckError);
        assert.equal(error.code, 'ERR_CORRUPT_RECORD');
        assert.equal(error.message.includes(r.id), false, 'the session key leaked into the message');
        return true;
      });
    }
    // Patching the corrupt namespace refuses too (rather than silently wiping the data) ...
    await assert.rejects(async () => store.update(garbage.id, { data: { set: { a: 1 } }, ...later() }), { code: 'ERR_CORRUPT_RECORD' });
    // ... and the store keeps working for everything else.
    assert.deepEqual((await store.get(fine.id))?.data, fine.data);
    await store.destroy(garbage.id);
    assert.equal(await store.get(garbage.id), null);
    await store.close();
    database.close();
  });

  it('leaves an app-owned database open on close()', async () => {
    const database = new Database(tempPath());
    const store = sqliteStore({ database, table: 'app_sessions' });
    await store.create(makeRecord());
    await store.close();
    await store.close();
    assert.equal(database.open, true);
    assert.equal((database.prepare('SELECT count(*) AS n FROM app_sessions').get() as { n: number }).n, 1);
    database.close();
  });

  it('answers get, update and touch synchronously, so the engine loads and saves in the same tick', async () => {
    const store = sqliteStore({ path: tempPath() });
    try {
      const record = makeRecord({ data: { a: 1 } });
      await store.create(record);
      const got = store.get(record.id);
      assert.ok(!(got instanceof Promise));
      assert.deepEqual(got?.data, { a: 1 });
      assert.equal(store.update(record.id, { data: { set: { a: 2 } }, ...later() }), true);
      assert.equal(store.touch(record.id, later()), true);
      assert.equal(store.update(randomId(), { data: { set: { a: 2 } }, ...later() }), false);
      const sessions = createSessions({ store });
      const opened = await sessions.open({ cookieHeader: null, https: false }).load();
      opened.set('a', 1);
      const cookie = ((await opened.commit(200))?.setCookie[0] ?? '').split(';')[0];
      const session = sessions.open({ cookieHeader: cookie, https: false });
      void session.load();
      assert.equal(session.loaded, true, 'loaded within load()');
      session.set('a', 2);
      assert.ok(!(session.commitNow(200) instanceof Promise), 'saved within commitNow()');
      assert.equal((await sessions.open({ cookieHeader: cookie, https: false }).load()).get('a'), 2);
    } finally {
      await store.close();
    }
  });

  it('takes fractional millisecond times (a high-resolution clock), stored rounded to whole ms', async () => {
    // STRICT INTEGER columns refuse 1795529754628.3555: every create, save and touch used to fail.
    const store = sqliteStore({ path: ':memory:' });
    try {
      const { expiresAt: expiry } = await checkWholeMillisecondTimes(store);
      // A fractional sweep cutoff: a row not yet expired by it stays; one past it (and past its
      // sweep hint's slack) goes.
      assert.equal((await store.deleteExpired({ before: expiry + 60_000.75, limit: 10 })).deleted, 0);
      assert.equal((await store.deleteExpired({ before: expiry + 60_001.25 + SWEEP_SLACK_MAX_MS, limit: 10 })).deleted, 1);
    } finally {
      await store.close();
    }
  });

  it('saves sessions with fractional expiries and a fractional clock through the engine', async () => {
    const store = sqliteStore({ path: ':memory:' });
    try {
      const clock = { now: () => performance.timeOrigin + performance.now() };
      const sessions = createSessions({ store, clock, idleTimeout: 3600 / 7 });
      const opened = await sessions.open({ cookieHeader: null, https: false }).load();
      opened.set('a', 1);
      opened.setExpiry(3600 / 7);
      const cookie = ((await opened.commit(200))?.setCookie[0] ?? '').split(';')[0];
      assert.ok(cookie, 'the first save went through');
      const again = await sessions.open({ cookieHeader: cookie, https: false }).load();
      assert.equal(again.get('a'), 1);
      again.set('a', 2);
      await again.commit(200); // rejects with a StoreError if the store refused the times
      assert.equal((await sessions.open({ cookieHeader: cookie, https: false }).load()).get('a'), 2);
    } finally {
      await store.close();
    }
  });

  it('closes the connection it opened itself', async () => {
    const store = sqliteStore({ path: tempPath() });
    await store.close();
    await store.close(); // idempotent
    // A closed connection fails the call (thrown, as the store answers synchronously), never "no session".
    await assert.rejects(async () => store.get(makeRecord().id), /not open/);
  });

  it('refuses bad options with ConfigError at setup', () => {
    for (const table of ['', '1abc', 'a-b', 'sessions; DROP TABLE x', 'a"b', 'x'.repeat(64), 'naïve']) {
      assert.throws(() => sqliteStore({ path: ':memory:', table }), ConfigError, table);
    }
    assert.doesNotThrow(() => sqliteStore({ path: ':memory:', table: `_${'x'.repeat(62)}` }).close());
    const database = new Database(':memory:');
    assert.throws(() => sqliteStore({ path: ':memory:', database }), ConfigError);
    assert.throws(() => sqliteStore({ path: ':memory:', busyTimeout: -1 }), ConfigError);
    assert.throws(() => sqliteStore({ database: {} as Database.Database }), ConfigError);
    database.close();
  });

  it('lists only unexpired sessions of a user', async () => {
    const store = sqliteStore({ path: ':memory:' });
    const now = Date.now();
    const live = makeRecord({ userId: 'u', createdAt: now - 10 });
    await store.create(live);
    await store.create(makeRecord({ userId: 'u', createdAt: now - 20, expiresAt: now - 1 }));
    assert.deepEqual((await store.listByUser('u')).map((s) => s.id), [live.id]);
    await store.close();
  });

  it('destroys guest sessions except the ones named', async () => {
    const store = sqliteStore({ path: ':memory:' });
    const keep = makeRecord({ userId: null });
    await store.create(keep);
    await store.create(makeRecord({ userId: null }));
    await store.create(makeRecord({ userId: 'someone' }));
    assert.equal(await store.destroyByUser(null, [keep.id]), 1);
    assert.ok(await store.get(keep.id));
    await store.close();
  });

  it('sweeps with a cursor that stays non-null only while full batches go', async () => {
    const store = sqliteStore({ path: ':memory:' });
    const now = Date.now();
    for (let i = 0; i < 4; i++) await store.create(makeRecord({ expiresAt: now - 1_000 + i }));
    await store.create(makeRecord({ expiresAt: now + 60_000 }));
    assert.deepEqual(await store.deleteExpired({ before: now, limit: 2 }), { deleted: 2, cursor: String(now) });
    const second = await store.deleteExpired({ before: now, limit: 2, cursor: String(now) });
    assert.equal(second.deleted, 2);
    assert.deepEqual(await store.deleteExpired({ before: now, limit: 2, cursor: second.cursor }), { deleted: 0, cursor: null });
    assert.deepEqual(await store.deleteExpired({ before: now, limit: 10 }), { deleted: 0, cursor: null });
    await store.close();
  });

  it('uses the indexes for user lookups and the sweep', () => {
    const database = new Database(':memory:');
    sqliteStore({ database }).close();
    const plan = (sql: string, ...params: unknown[]) =>
      (database.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail).join(' | ');
    assert.match(plan('SELECT id FROM coatcheck_sessions WHERE user_id = ? AND expires_at > ? ORDER BY created_at, id', 'u', 0), /USING INDEX coatcheck_sessions_user/);
    assert.match(plan(sweepBatchSql('coatcheck_sessions'), 0, 0, 10), /SEARCH coatcheck_sessions USING INDEX coatcheck_sessions_sweep \(sweep_at<\?\)/);
    assert.match(plan('DELETE FROM coatcheck_sessions WHERE user_id IS ? AND id NOT IN (SELECT value FROM json_each(?))', null, '[]'), /USING INDEX coatcheck_sessions_user/);
    // stats reads live rows from the sweep index: rows only inside the one-slack window, never a
    // table scan (which would read every session's data).
    const statsPlan = plan(`WITH ${liveRowsCte('coatcheck_sessions')} SELECT count(*), count(DISTINCT user_id) FROM live`, { now: 0, far: 1 });
    assert.match(statsPlan, /SEARCH coatcheck_sessions USING COVERING INDEX coatcheck_sessions_sweep \(sweep_at>\?\)/);
    assert.match(statsPlan, /SEARCH coatcheck_sessions USING INDEX coatcheck_sessions_sweep \(sweep_at>\? AND sweep_at<\?\)/);
    assert.doesNotMatch(statsPlan, /SCAN coatcheck_sessions/);
    database.close();
  });

  it('keeps all 50 interleaved updates from two connections to one file', async () => {
    const path = tempPath();
    const a = sqliteStore({ path });
    const b = sqliteStore({ path });
    const record = makeRecord({ data: {} });
    await a.create(record);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? a : b).update(record.id, { data: { set: { [`k${i}`]: i } }, ...later() })),
    );
    assert.ok(results.every(Boolean));
    for (const store of [a, b]) {
      const loaded = await store.get(record.id);
      assert.equal(Object.keys(loaded?.data ?? {}).length, 50);
      for (let i = 0; i < 50; i++) assert.equal(loaded?.data[`k${i}`], i);
    }
    await a.close();
    await b.close();
  });

  it('lets exactly one guarded consume win across two connections to one file', async () => {
    const path = tempPath();
    const a = sqliteStore({ path });
    const b = sqliteStore({ path });
    const record = makeRecord({ meta: { 'otk.x': 1 } });
    await a.create(record);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 === 0 ? a : b).update(record.id, { meta: { unset: ['otk.x'] }, guard: { present: ['otk.x'] }, ...later() }),
      ),
    );
    assert.equal(results.filter(Boolean).length, 1);
    assert.deepEqual((await b.get(record.id))?.meta, {});
    await a.close();
    await b.close();
  });

  it('keeps every update when separate processes write one session at the same moment', async () => {
    const path = tempPath();
    const store = sqliteStore({ path });
    const record = makeRecord({ data: {} });
    await store.create(record);
    const perProcess = 100;
    const startAt = Date.now() + 1_500; // every child spins until then, so their writes overlap
    const child = (name: string) => `
      import { sqliteStore } from './src/stores/sqlite.ts';
      const store = sqliteStore({ path: ${JSON.stringify(path)} });
      while (Date.now() < ${startAt}) {}
      for (let i = 0; i < ${perProcess}; i++) {
        const ok = await store.update(${JSON.stringify(record.id)}, {
          data: { set: { [${JSON.stringify(name)} + i]: i } },
          lastSeenAt: Date.now(), expiresAt: Date.now() + 60000,
        });
        if (!ok) throw new Error('update found no row');
      }
      await store.close();
    `;
    const run = (name: string) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child(name)], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        proc.stderr.on('data', (chunk) => (stderr += chunk));
        proc.on('close', (code) => resolve({ code, stderr }));
      });
    const outcomes = await Promise.all([run('p'), run('q'), run('r')]);
    for (const outcome of outcomes) assert.equal(outcome.code, 0, outcome.stderr);
    const loaded = await store.get(record.id);
    assert.equal(Object.keys(loaded?.data ?? {}).length, 3 * perProcess);
    await store.close();
  });
});

describe('sqliteStore shared by several processes', () => {
  it('opens a new file from four processes at once: every one starts (no SQLITE_BUSY while switching to WAL)', async () => {
    for (let round = 0; round < 3; round++) {
      const path = tempPath(`fresh-${round}`);
      const startAt = Date.now() + 1_500;
      const code = `
        import { sqliteStore } from './src/stores/sqlite.ts';
        import { makeRecord } from './src/testing/store-contract.ts';
        while (Date.now() < ${startAt}) {}
        const store = sqliteStore({ path: ${JSON.stringify(path)} });
        await store.create(makeRecord());
        await store.close();
      `;
      const outcomes = await Promise.all(Array.from({ length: 4 }, () => runChild(code)));
      for (const outcome of outcomes) assert.equal(outcome.code, 0, outcome.stderr);
      assert.equal(countRows(path), 4);
    }
  });

  it("a sweep in one process holds another process's writes back briefly, not for its busy handler's long sleeps", async () => {
    const path = tempPath('shared-sweep');
    const setup = sqliteStore({ path });
    await setup.close();
    const raw = new Database(path);
    const insert = raw.prepare(
      `INSERT INTO coatcheck_sessions (id, user_id, data, meta, created_at, last_seen_at, expires_at, ip, user_agent, sweep_at)
       VALUES (?, NULL, ?, '{}', ?, ?, ?, NULL, NULL, ?)`,
    );
    const past = Date.now() - 86_400_000;
    raw.transaction(() => {
      for (let i = 0; i < 150_000; i++) insert.run(`expired-${i}`, JSON.stringify({ pad: 'x'.repeat(400) }), past, past, past + i, past + i);
    })();
    raw.close();
    const live = makeRecord({ lastSeenAt: Date.now(), expiresAt: Date.now() + 3_600_000 });
    const store = sqliteStore({ path });
    await store.create(live);
    // The writer: an update every 2 ms until told to stop (a file appears), reporting its slowest.
    const stopFile = `${path}.stop`;
    const writer = runChild(`
      import { existsSync } from 'node:fs';
      import { sqliteStore } from './src/stores/sqlite.ts';
      const store = sqliteStore({ path: ${JSON.stringify(path)}, sweepInWorker: false, checkpointInWorker: false });
      let slowest = 0, writes = 0;
      while (!existsSync(${JSON.stringify(stopFile)})) {
        const started = performance.now();
        await store.update(${JSON.stringify(live.id)}, { data: { set: { n: writes } }, lastSeenAt: Date.now(), expiresAt: Date.now() + 3_600_000 });
        slowest = Math.max(slowest, performance.now() - started);
        writes++;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      await store.close();
      console.log(JSON.stringify({ slowest, writes }));
    `, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // the writer is running
    const sessions = createSessions({ store });
    const swept = await sessions.clearExpired({ batchSize: 1_000 });
    writeFileSync(stopFile, '');
    const outcome = await writer;
    await sessions.close();
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.equal(swept.deleted, 150_000);
    const { slowest, writes } = JSON.parse(outcome.stdout) as { slowest: number; writes: number };
    assert.ok(writes > 100, `the writer ran during the sweep (${writes} writes)`);
    // SQLite's busy handler alone sleeps up to 100 ms per retry and kept missing the sweep's
    // gaps (measured here: 104 and 136 ms, and 0.3 to 1.9 s in longer sweeps); polling takes the
    // next gap, one ~10 ms transaction away (measured: 16 and 19 ms).
    assert.ok(slowest < 75, `slowest write in the other process: ${slowest.toFixed(1)} ms`);
  });
});

describe('sqliteStore sweep hint', () => {
  /** A store on a connection this test can read, and the sweep hint of one row. */
  const open = () => {
    const database = new Database(':memory:');
    const store = sqliteStore({ database });
    const hintOf = (id: string) => (database.prepare('SELECT sweep_at FROM coatcheck_sessions WHERE id = ?').get(id) as { sweep_at: number }).sweep_at;
    return { database, store, hintOf };
  };

  it('leaves the hint alone while a save or touch slides the expiry within its slack, then moves it', async () => {
    const { database, store, hintOf } = open();
    const now = Date.now();
    const record = makeRecord({ userId: 'u1', lastSeenAt: now, expiresAt: now + 3_600_000 });
    await store.create(record);
    const first = hintOf(record.id);
    assert.equal(first, now + 3_600_000 + sweepSlack(now, now + 3_600_000));
    assert.equal(sweepSlack(now, now + 3_600_000), 450_000); // an eighth of the hour

    const slid = { lastSeenAt: now + 100_000, expiresAt: now + 3_700_000 };
    assert.equal(await store.update(record.id, { data: { set: { a: 1 } }, ...slid }), true);
    assert.equal(hintOf(record.id), first, 'a save within the slack moved the hint');
    assert.equal(await store.touch(record.id, { lastSeenAt: now + 200_000, expiresAt: now + 3_800_000 }), true);
    assert.equal(hintOf(record.id), first, 'a touch within the slack moved the hint');
    assert.equal((await store.get(record.id))?.expiresAt, now + 3_800_000, 'the exact expiry is what get returns');

    // Past the hint: the save moves it to the new expiry plus a new slack.
    const past = { lastSeenAt: now + 1_000_000, expiresAt: now + 4_600_000 };
    assert.equal(await store.update(record.id, { data: { set: { a: 2 } }, ...past }), true);
    assert.equal(hintOf(record.id), sweepHint(past.lastSeenAt, past.expiresAt));
    const touched = { lastSeenAt: now + 2_000_000, expiresAt: now + 5_600_000 };
    assert.equal(await store.touch(record.id, touched), true);
    assert.equal(hintOf(record.id), sweepHint(touched.lastSeenAt, touched.expiresAt));

    // A shorter expiry (a browser-session cookie instead of a long one) pulls the hint back in.
    const shorter = { lastSeenAt: now + 2_000_000, expiresAt: now + 2_060_000 };
    assert.equal(await store.update(record.id, { meta: { set: { m: 1 } }, ...shorter }), true);
    assert.equal(hintOf(record.id), sweepHint(shorter.lastSeenAt, shorter.expiresAt));
    // A user change rewrites the index entry anyway (user_id is in it), and the hint with it.
    assert.equal(await store.update(record.id, { userId: 'u2', ...shorter }), true);
    assert.equal(hintOf(record.id), sweepHint(shorter.lastSeenAt, shorter.expiresAt));
    assert.deepEqual((await store.get(record.id))?.data, { count: 1, a: 2 });
    assert.equal(await store.touch('missing', touched), false);
    await store.close();
    database.close();
  });

  it('writes one WAL page for a save within the slack (no index entry moves), two once the hint moves', async () => {
    const path = tempPath();
    // No worker: nothing checkpoints or restarts the WAL behind the test's back.
    const store = sqliteStore({ path, sweepInWorker: false, checkpointInWorker: false });
    const now = Date.now();
    const record = makeRecord({ userId: 'u1', lastSeenAt: now, expiresAt: now + 3_600_000 });
    await store.create(record);
    let before = walIndex(path).frames;
    assert.equal(await store.update(record.id, { data: { set: { a: 1 } }, lastSeenAt: now + 1_000, expiresAt: now + 3_601_000 }), true);
    assert.equal(walIndex(path).frames - before, 1, 'only the table page');
    before = walIndex(path).frames;
    assert.equal(await store.touch(record.id, { lastSeenAt: now + 2_000, expiresAt: now + 3_602_000 }), true);
    assert.equal(walIndex(path).frames - before, 1, 'a touch too');
    before = walIndex(path).frames;
    assert.equal(await store.update(record.id, { data: { set: { a: 2 } }, lastSeenAt: now + 1_000_000, expiresAt: now + 4_600_000 }), true);
    assert.equal(walIndex(path).frames - before, 2, 'the table page and the sweep index page');
    await store.close();
  });

  it('migrates a table that already has the sweep_at column (created from the documented DDL) without failing', async () => {
    const path = tempPath();
    const raw = new Database(path);
    raw.exec(`CREATE TABLE coatcheck_sessions (id TEXT NOT NULL PRIMARY KEY, user_id TEXT, data TEXT NOT NULL, meta TEXT NOT NULL,
      created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, ip TEXT, user_agent TEXT,
      sweep_at INTEGER NOT NULL DEFAULT 0) STRICT`);
    raw.close();
    const store = sqliteStore({ path });
    const record = makeRecord();
    await store.create(record);
    assert.ok(await store.get(record.id));
    await store.close();
  });

  it('sweeps a record once its hint has passed too, and never a live row with a wrong hint', async () => {
    const { database, store, hintOf } = open();
    const now = Date.now();
    const record = makeRecord({ lastSeenAt: now - 80_000, expiresAt: now - 1 });
    await store.create(record);
    const hint = hintOf(record.id);
    assert.ok(hint > now, 'the hint trails the expiry by a slack');
    // Expired but not yet hinted: it waits (never served meanwhile: the engine checks expiresAt).
    assert.deepEqual(await store.deleteExpired({ before: now, limit: 10 }), { deleted: 0, cursor: null });
    assert.deepEqual(await store.deleteExpired({ before: hint, limit: 10 }), { deleted: 1, cursor: null });

    // A row written by other code with no hint (the column's default, 0) but a live expiry.
    database.prepare(
      `INSERT INTO coatcheck_sessions (id, user_id, data, meta, created_at, last_seen_at, expires_at, ip, user_agent)
       VALUES ('foreign', NULL, '{}', '{}', ?, ?, ?, NULL, NULL)`,
    ).run(now, now, now + 60_000);
    assert.equal(hintOf('foreign'), 0);
    assert.deepEqual(await store.deleteExpired({ before: now, limit: 10 }), { deleted: 0, cursor: null });
    assert.ok(await store.get('foreign'));
    await store.close();
    database.close();
  });

  it('counts rows inside the slack window by their exact expiry in stats', async () => {
    const { database, store, hintOf } = open();
    const now = Date.now();
    const inWindowExpired = makeRecord({ userId: 'w', lastSeenAt: now - 80_000, expiresAt: now - 1 });
    const inWindowLive = makeRecord({ userId: 'w', lastSeenAt: now, expiresAt: now + 60_000 });
    const farLive = makeRecord({ userId: 'far', expiresAt: now + 86_400_000 });
    const longGone = makeRecord({ userId: 'gone', lastSeenAt: now - 7_200_000, expiresAt: now - 3_600_000 });
    for (const r of [inWindowExpired, inWindowLive, farLive, longGone]) await store.create(r);
    assert.ok(hintOf(inWindowExpired.id) > now && hintOf(inWindowLive.id) <= now + SWEEP_SLACK_MAX_MS);
    assert.ok(hintOf(farLive.id) > now + SWEEP_SLACK_MAX_MS && hintOf(longGone.id) <= now);
    assert.deepEqual(await store.stats?.(now), {
      sessions: 2,
      expired: 2,
      users: 2,
      guests: 0,
      topUsers: [
        { userId: 'far', sessions: 1 },
        { userId: 'w', sessions: 1 },
      ],
    });
    await store.close();
    database.close();
  });
});

describe('sqliteStore sweeping', () => {
  it('starts its worker with the execArgv a worker accepts (no --input-type, no eval code)', () => {
    assert.deepEqual(workerExecArgv(['--import', 'tsx', '--input-type=module', '-e', 'code()', '--no-warnings']), ['--import', 'tsx', '--no-warnings']);
    assert.deepEqual(workerExecArgv(['--input-type', 'module', '--eval=x', '-p', '1', '--print', '2', '--max-old-space-size=100']), ['--max-old-space-size=100']);
    assert.deepEqual(workerExecArgv([]), []);
    // What Node refuses for a worker (V8 and per-process options) is read off its error.
    const refused = Object.assign(new Error('Initiated Worker with invalid execArgv flags: --expose-gc, --max-old-space-size=100'), {
      code: 'ERR_WORKER_INVALID_EXEC_ARGV',
    });
    assert.deepEqual([...(refusedWorkerFlags(refused) ?? [])], ['--expose-gc', '--max-old-space-size=100']);
    assert.equal(refusedWorkerFlags(new Error('flags: --x')), null);
  });

  it('still gets its worker in a process started with V8 options a worker refuses (--max-old-space-size, --expose-gc)', async () => {
    const path = tempPath();
    const { code, stdout, stderr } = await runChild(
      `
      const { sqliteStore } = await import(${JSON.stringify(new URL('../../src/stores/sqlite.ts', import.meta.url).href)});
      const warnings = [];
      process.on('warning', (w) => warnings.push(w.message));
      const store = sqliteStore({ path: ${JSON.stringify(path)} });
      const now = Date.now();
      const record = (id, expiresAt) => ({ id, userId: null, data: {}, meta: {}, createdAt: now - 10_000, lastSeenAt: now - 10_000, expiresAt, ip: null, userAgent: null });
      for (let i = 0; i < 20; i++) await store.create(record('gone' + i, now - 5_000));
      await store.create(record('kept', now + 60_000));
      // Without the worker the store would sweep inline and warn "cannot start the sweeper worker".
      const result = await store.deleteExpired({ before: now, limit: 100 });
      const kept = store.get('kept') !== null;
      await store.close();
      await new Promise((resolve) => setTimeout(resolve, 10)); // warnings are emitted on a later tick
      console.log(JSON.stringify({ result, kept, warnings }));
      `,
      30_000,
      ['--max-old-space-size=512', '--expose-gc'],
    );
    assert.equal(code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), { result: { deleted: 20, cursor: null }, kept: true, warnings: [] });
  });

  it('sweeps a file in the worker: correct counts and cursor, live rows kept, nothing run inline', async () => {
    const path = tempPath();
    const store = sqliteStore({ path });
    const now = Date.now();
    const live = makeRecord({ userId: 'keeper', expiresAt: now + 60_000 });
    await store.create(live);
    addExpired(path, 2_500, now);
    const oldest = new Database(path, { readonly: true });
    const { id: firstExpired } = oldest.prepare('SELECT id FROM coatcheck_sessions ORDER BY expires_at LIMIT 1').get() as { id: string };
    oldest.close();

    // The worker path does not delete during the call: right after it, the row is still there.
    // (The inline path deletes synchronously, see the ':memory:' test below.)
    const pending = store.deleteExpired({ before: now, limit: 1_000 });
    const meanwhile = store.get(firstExpired);
    assert.deepEqual(await pending, { deleted: 1_000, cursor: String(now) });
    assert.ok(await meanwhile, 'the first batch ran on the main thread');
    assert.equal(await store.get(firstExpired), null);

    assert.deepEqual(await store.deleteExpired({ before: now, limit: 1_000, cursor: String(now) }), { deleted: 1_000, cursor: String(now) });
    assert.deepEqual(await store.deleteExpired({ before: now, limit: 1_000, cursor: String(now) }), { deleted: 500, cursor: null });
    assert.deepEqual(await store.deleteExpired({ before: now, limit: 1_000 }), { deleted: 0, cursor: null });
    assert.deepEqual(await store.deleteExpired({ before: now, limit: 0 }), { deleted: 0, cursor: null });
    assert.ok(await store.get(live.id));
    assert.deepEqual((await store.listByUser('keeper')).map((s) => s.id), [live.id]);
    await store.close();
    assert.equal(countRows(path), 1);
    assert.deepEqual(sweeperWarnings, []);
  });

  it('runs the engine sweep (clearExpired) through the worker to the end', async () => {
    const path = tempPath();
    const store = sqliteStore({ path });
    const sessions = createSessions({ store });
    const now = Date.now();
    addExpired(path, 3_210, now);
    await store.create(makeRecord({ expiresAt: now + 60_000 }));
    const result = await sessions.clearExpired({ batchSize: 1_000 });
    assert.equal(result.deleted, 3_210);
    assert.equal(result.cursor, null);
    await sessions.close();
    assert.equal(countRows(path), 1);
    assert.deepEqual(sweeperWarnings, []);
  });

  it('close() stops the worker: its connection is gone, so the WAL file is removed with the last one', async () => {
    const path = tempPath();
    const store = sqliteStore({ path });
    const now = Date.now();
    addExpired(path, 500, now);
    assert.equal((await store.deleteExpired({ before: now, limit: 100 })).deleted, 100);
    assert.ok(existsSync(`${path}-wal`));
    await store.close();
    // SQLite deletes the -wal file when the LAST connection to the file closes: had the worker's
    // connection survived close(), it would still be there.
    assert.equal(existsSync(`${path}-wal`), false);
    await store.close(); // idempotent
    await assert.rejects(store.deleteExpired({ before: now, limit: 100 })); // closed, like every method
    assert.equal(countRows(path), 400);
  });

  it('close() during a sweep lets the current call finish (partially) and still shuts the worker down', async () => {
    const path = tempPath();
    const store = sqliteStore({ path });
    const now = Date.now();
    addExpired(path, 20_000, now);
    await store.deleteExpired({ before: now, limit: 1 }); // start the worker
    const sweeping = store.deleteExpired({ before: now, limit: 20_000 });
    await store.close();
    const result = await sweeping;
    assert.ok(result.deleted >= 0 && result.deleted <= 20_000);
    if (result.deleted < 20_000) assert.equal(result.cursor, String(now)); // stopped early: "call again"
    assert.equal(existsSync(`${path}-wal`), false);
    assert.equal(countRows(path), 20_000 - 1 - result.deleted);
  });

  it('a process that only swept (and never closed the store) still exits on its own', async () => {
    const path = tempPath();
    await sqliteStore({ path }).close();
    addExpired(path, 1_500, Date.now());
    const child = await runChild(`
      import { sqliteStore } from './src/stores/sqlite.ts';
      const store = sqliteStore({ path: ${JSON.stringify(path)} });
      // Top-level awaits: if the worker were unref()ed while a call is pending, Node would exit
      // here with code 13 (unsettled top-level await) instead of waiting for the reply.
      const first = await store.deleteExpired({ before: Date.now(), limit: 1000 });
      const second = await store.deleteExpired({ before: Date.now(), limit: 1000 });
      console.log(JSON.stringify([first.deleted, second.deleted, second.cursor]));
    `);
    assert.equal(child.signal, null, 'the child was killed: it did not exit on its own');
    assert.equal(child.code, 0, child.stderr);
    assert.doesNotMatch(child.stderr, /sweeping on the main thread/); // it really used the worker
    assert.equal(child.stdout.trim(), '[1000,500,null]');
    assert.equal(countRows(path), 0);
  });

  it('sweeps inline for :memory:, an app-owned database and sweepInWorker: false', async () => {
    const now = Date.now();
    const appDatabase = new Database(tempPath());
    appDatabase.pragma('journal_mode = WAL');
    const cases = [
      { name: ':memory:', store: sqliteStore({ path: ':memory:' }) },
      { name: 'app-owned', store: sqliteStore({ database: appDatabase }) },
      { name: 'sweepInWorker: false', store: sqliteStore({ path: tempPath(), sweepInWorker: false }) },
    ];
    for (const { name, store } of cases) {
      const expired = makeRecord({ expiresAt: now - 1_000 });
      await store.create(expired);
      await store.create(makeRecord({ expiresAt: now - 500 }));
      const pending = store.deleteExpired({ before: now, limit: 1 });
      // Inline means synchronous: the row is gone before the promise is even awaited.
      const meanwhile = store.get(expired.id);
      assert.deepEqual(await pending, { deleted: 1, cursor: String(now) }, name);
      assert.equal(await meanwhile, null, `${name}: the sweep did not run inline`);
      assert.deepEqual(await store.deleteExpired({ before: now, limit: 5 }), { deleted: 1, cursor: null }, name);
      await store.close();
    }
    assert.equal(appDatabase.open, true);
    appDatabase.close();
    assert.throws(() => sqliteStore({ path: ':memory:', sweepInWorker: 'yes' as unknown as boolean }), ConfigError);
    assert.throws(() => sqliteStore({ path: ':memory:', checkpointInWorker: 1 as unknown as boolean }), ConfigError);
  });

  it('checkpoints in the worker while the app writes: the WAL is copied back with no request doing it', async () => {
    const path = tempPath();
    // sweepInWorker: false — the worker runs for checkpoints alone.
    const store = sqliteStore({ path, sweepInWorker: false });
    const record = makeRecord({ data: { n: 0 } });
    await store.create(record);
    // 40 small commits: a few hundred WAL frames, under SQLite's own 1 000-page auto-checkpoint,
    // so nothing on this thread copies them back.
    for (let round = 1; round <= 2; round++) {
      for (let i = 0; i < 40; i++) assert.equal(await store.update(record.id, { data: { set: { n: i } }, ...later() }), true);
      assert.ok(walIndex(path).frames > 0);
      const copied = await until(() => {
        const wal = walIndex(path);
        return wal.frames > 0 && wal.backfilled === wal.frames;
      }, 10_000);
      assert.ok(copied, `round ${round}: the WAL was not checkpointed (${JSON.stringify(walIndex(path))})`);
    }
    assert.deepEqual((await store.get(record.id))?.data, { n: 39 });

    // SQLite's own auto-checkpoint is off now: 800 commits in one synchronous burst (under the
    // 1 000 writes that call the worker early; a 6 KB value that differs from one write to the
    // next makes each write at least two WAL frames, well over 1 000 in all) leave every frame in
    // the WAL. With it on, the commit crossing 1 000 frames would have checkpointed and the next
    // one restarted the WAL.
    const burst: Array<Awaitable<boolean>> = [];
    for (let i = 0; i < 800; i++) burst.push(store.update(record.id, { data: { set: { n: i, pad: String(i % 10).repeat(6_000) } }, ...later() }));
    const afterBurst = walIndex(path);
    assert.ok(afterBurst.frames > 1_100 && afterBurst.backfilled === 0, `checkpointed inline: ${JSON.stringify(afterBurst)}`);
    assert.ok((await Promise.all(burst)).every(Boolean));
    assert.ok(await until(() => walIndex(path).backfilled === walIndex(path).frames, 10_000), 'the burst was not checkpointed');

    // Sweeps still run inline with sweepInWorker: false, and their pages get checkpointed too.
    addExpired(path, 3_000, Date.now());
    const expired = makeRecord({ expiresAt: Date.now() - 1 });
    await store.create(expired);
    assert.ok(await until(() => walIndex(path).backfilled === walIndex(path).frames, 10_000));
    const sweeping = store.deleteExpired({ before: Date.now(), limit: 10_000 });
    assert.equal(await store.get(expired.id), null, 'the sweep did not run inline');
    assert.deepEqual(await sweeping, { deleted: 3_001, cursor: null });
    assert.ok(walIndex(path).frames > walIndex(path).backfilled);
    assert.ok(await until(() => walIndex(path).backfilled === walIndex(path).frames, 10_000), 'the inline sweep was not checkpointed');
    await store.close();
    assert.equal(existsSync(`${path}-wal`), false);
    assert.deepEqual(sweeperWarnings, []);
  });

  it('leaves checkpoints to SQLite with checkpointInWorker: false', async () => {
    const path = tempPath();
    const store = sqliteStore({ path, checkpointInWorker: false });
    const record = makeRecord({ data: { n: 0 } });
    await store.create(record);
    for (let i = 0; i < 40; i++) await store.update(record.id, { data: { set: { n: i } }, ...later() });
    await new Promise((resolve) => setTimeout(resolve, 600));
    const wal = walIndex(path);
    assert.ok(wal.frames > 0);
    assert.equal(wal.backfilled, 0, 'something checkpointed under the 1 000-page threshold');
    await store.close();
  });

  it('a process that only wrote (and never closed the store) still exits on its own', async () => {
    const path = tempPath();
    await sqliteStore({ path }).close();
    const child = await runChild(`
      import { sqliteStore } from './src/stores/sqlite.ts';
      const store = sqliteStore({ path: ${JSON.stringify(path)} });
      const record = { id: 'x'.repeat(43), userId: null, data: { n: 0 }, meta: {}, createdAt: Date.now(), lastSeenAt: Date.now(), expiresAt: Date.now() + 60000, ip: null, userAgent: null };
      await store.create(record);
      for (let i = 1; i <= 20; i++) await store.update(record.id, { data: { set: { n: i } }, lastSeenAt: Date.now(), expiresAt: Date.now() + 60000 });
      // Long enough for the background checkpoint to have started the worker and run.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const { readFileSync } = await import('node:fs');
      const shm = readFileSync(${JSON.stringify(path)} + '-shm');
      console.log(JSON.stringify([(await store.get(record.id)).data, shm.readUInt32LE(16) > 0 && shm.readUInt32LE(96) === shm.readUInt32LE(16)]));
    `);
    assert.equal(child.signal, null, 'the child was killed: it did not exit on its own');
    assert.equal(child.code, 0, child.stderr);
    assert.doesNotMatch(child.stderr, /sweeper worker/);
    // [data, "the worker checkpointed the 21 commits" (under SQLite's own 1 000-frame threshold)]
    assert.equal(child.stdout.trim(), '[{"n":20},true]');
    const raw = new Database(path, { readonly: true });
    assert.equal((raw.prepare('SELECT data FROM coatcheck_sessions').get() as { data: string }).data, '{"n":20}');
    raw.close();
  });

  it('keeps serving reads and writes on the main thread while the worker sweeps 50k rows', async () => {
    const path = tempPath();
    const store = sqliteStore({ path });
    const sessions = createSessions({ store });
    const now = Date.now();
    const rows = 50_000;
    // Realistically sized sessions (~600 bytes of data each), expiring in no particular order.
    addExpired(path, rows, now, true, JSON.stringify({ cart: Array.from({ length: 20 }, (_, i) => ({ sku: `SKU-${i}`, qty: i })) }));
    const live = Array.from({ length: 20 }, () => makeRecord({ userId: 'busy-user', data: { n: 0 } }));
    for (const record of live) await store.create(record);
    await store.deleteExpired({ before: now, limit: 1 }); // start the worker outside the measurement

    // The longest time between two turns of the event loop, counting the one still open at the
    // end (monitorEventLoopDelay only samples when its timer fires, so it can miss one long block
    // that ends just before disable()).
    const delay = monitorEventLoopDelay({ resolution: 1 });
    let lastTick = performance.now();
    let longestGap = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longestGap = Math.max(longestGap, now - lastTick);
      lastTick = now;
    }, 1);
    let writes = 0;
    let slowestWrite = 0;
    let failures = 0;
    let sweeping = true;
    const writer = (async () => {
      // A request saving its session every ~2 ms for as long as the sweep runs.
      while (sweeping) {
        const record = live[writes % live.length] as (typeof live)[number];
        const started = performance.now();
        const saved = store.update(record.id, { data: { set: { n: writes } }, ...later() });
        slowestWrite = Math.max(slowestWrite, performance.now() - started); // the synchronous part
        if (!(await saved) || !(await store.get(record.id))) failures++;
        writes++;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    delay.enable();
    lastTick = performance.now();
    const started = performance.now();
    // One batch of everything: inline, that is a single DELETE blocking the loop for its whole
    // duration (measured ~0.5 s); the worker splits it into short transactions.
    const result = await sessions.clearExpired({ batchSize: rows });
    const elapsed = performance.now() - started;
    longestGap = Math.max(longestGap, performance.now() - lastTick);
    clearInterval(ticker);
    delay.disable();
    sweeping = false;
    await writer;

    assert.equal(result.deleted, rows - 1);
    assert.equal(result.cursor, null);
    assert.equal(failures, 0);
    assert.ok(writes >= 5, `only ${writes} writes during a ${Math.round(elapsed)} ms sweep`);
    // Through the worker a write waits at most for one short transaction. The bounds are
    // generous because CI machines stall on their own (measured here: max ~15-30 ms).
    const maxDelay = Math.max(longestGap, delay.max / 1e6);
    assert.ok(maxDelay < 250, `event loop blocked for ${maxDelay.toFixed(1)} ms`);
    assert.ok(slowestWrite < 250, `a write waited ${slowestWrite.toFixed(1)} ms`);
    for (const record of live) assert.ok(await store.get(record.id));
    await sessions.close();
    assert.equal(countRows(path), live.length);
    assert.deepEqual(sweeperWarnings, []);
  });
});

describe('sqliteStore table names in another letter case', () => {
  it('opens the table SQLite finds (names match without regard to case): no re-migration, no second version row', async () => {
    const path = tempPath('case');
    const first = sqliteStore({ path, sweepInWorker: false });
    await first.create(makeRecord({ id: randomId() }));
    await first.close();
    const db = new Database(path);
    const hintsBefore = db.prepare('SELECT sweep_at FROM coatcheck_sessions').all();
    db.prepare('UPDATE coatcheck_sessions SET sweep_at = 12345').run(); // a rewrite would reset it
    db.close();
    for (const table of ['Coatcheck_Sessions', 'COATCHECK_SESSIONS']) {
      const store = sqliteStore({ path, table, sweepInWorker: false });
      await store.close();
      const strict = sqliteStore({ path, table, createTable: false, sweepInWorker: false });
      await strict.close();
    }
    const check = new Database(path);
    try {
      assert.deepEqual(check.prepare('SELECT name, version FROM coatcheck_schema').all(), [{ name: 'coatcheck_sessions', version: SQLITE_SCHEMA_VERSION }]);
      assert.deepEqual(check.prepare('SELECT sweep_at FROM coatcheck_sessions').all(), [{ sweep_at: 12345 }]);
      assert.equal(hintsBefore.length, 1);
    } finally {
      check.close();
    }
  });
});

describe('sqliteStore opening while another connection holds the write lock', () => {
  it('waits past busyTimeout for the lock when its table must be created (another process migrating), instead of failing to start', async () => {
    const path = tempPath('startup-lock');
    const created = new Database(path); // the file exists, the table does not
    created.pragma('journal_mode = WAL');
    created.close();
    const holder = await holdWriteLock(path, 1_500);
    const started = performance.now();
    const store = sqliteStore({ path, busyTimeout: 200, sweepInWorker: false });
    const waited = performance.now() - started;
    await store.close();
    await new Promise((resolve) => holder.once('exit', resolve));
    assert.ok(waited > 1_000, `opened after ${Math.round(waited)} ms, while the lock was held for 1.5 s`);
  });

  it('opens at once when its table is current, whoever holds the write lock', async () => {
    const path = tempPath('startup-current');
    await sqliteStore({ path, sweepInWorker: false }).close(); // the table exists, at this version
    const holder = await holdWriteLock(path, 1_500);
    const started = performance.now();
    const store = sqliteStore({ path, sweepInWorker: false });
    const waited = performance.now() - started;
    await store.close();
    await new Promise((resolve) => holder.once('exit', resolve));
    assert.ok(waited < 500, `opened after ${Math.round(waited)} ms while another connection held the write lock`);
  });
});

describe('sqliteStore review fixes', () => {
  it('recreates a table dropped while its schema-version row stayed (createTable: true), and createTable: false refuses it', async () => {
    const path = tempPath('dropped');
    await sqliteStore({ path, sweepInWorker: false }).close();
    const raw = new Database(path);
    raw.exec('DROP TABLE coatcheck_sessions');
    raw.close();
    assert.throws(() => sqliteStore({ path, createTable: false }), (error: unknown) => error instanceof ConfigError && /no table coatcheck_sessions/.test(error.message));
    const store = sqliteStore({ path, sweepInWorker: false });
    const record = makeRecord();
    await store.create(record);
    assert.deepEqual(await store.get(record.id), record);
    await store.close();
    const check = new Database(path, { readonly: true });
    try {
      assert.deepEqual(check.prepare('SELECT name, version FROM coatcheck_schema').all(), [{ name: 'coatcheck_sessions', version: SQLITE_SCHEMA_VERSION }]);
      const indexes = check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'coatcheck_sessions' AND sql IS NOT NULL ORDER BY name").pluck().all();
      assert.deepEqual(indexes, ['coatcheck_sessions_sweep', 'coatcheck_sessions_user']);
    } finally {
      check.close();
    }
  });

  it('closes the connection it opened when setup fails after the schema check (20 failed opens leak no file descriptor)', () => {
    const path = tempPath('bad-columns');
    // Recorded as current, but without the sweep_at column: the statements fail to prepare.
    const raw = new Database(path);
    raw.exec(`CREATE TABLE coatcheck_sessions (id TEXT NOT NULL PRIMARY KEY, user_id TEXT, data TEXT NOT NULL, meta TEXT NOT NULL,
      created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, ip TEXT, user_agent TEXT) STRICT;
      CREATE TABLE coatcheck_schema (name TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL);`);
    raw.prepare('INSERT INTO coatcheck_schema VALUES (?, ?)').run('coatcheck_sessions', SQLITE_SCHEMA_VERSION);
    raw.close();
    const openFds = () => readdirSync('/proc/self/fd').length;
    const before = openFds();
    for (let i = 0; i < 20; i++) {
      assert.throws(() => sqliteStore({ path, createTable: i % 2 === 0 }), /sweep_at/);
    }
    assert.ok(openFds() - before < 3, `${openFds() - before} file descriptors left open by 20 failed opens`);
  });

  it("bounds a main-thread write by one busyTimeout while the worker waits for another connection's lock", async () => {
    const path = tempPath('one-deadline');
    const busyTimeout = 300;
    const store = sqliteStore({ path, busyTimeout, checkpointInWorker: false });
    const record = makeRecord();
    await store.create(record);
    // A first sweep starts the worker, so the next one reaches BEGIN IMMEDIATE at once.
    assert.deepEqual(await store.deleteExpired({ before: Date.now(), limit: 10 }), { deleted: 0, cursor: null });
    assert.deepEqual(sweeperWarnings, []);
    const holder = await holdWriteLock(path, 2_000);
    try {
      // The worker marks itself WRITING and waits in SQLite's busy handler for the holder's lock.
      const sweep = Promise.resolve(store.deleteExpired({ before: Date.now(), limit: 10 })).then(
        () => 'swept',
        (error: unknown) => (error as { code?: string }).code,
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = performance.now();
      assert.throws(() => store.update(record.id, { data: { set: { a: 1 } }, ...later() }), (error: unknown) => (error as { code?: string }).code === 'SQLITE_BUSY');
      const blocked = performance.now() - started;
      assert.ok(blocked < busyTimeout + 100, `the event loop was blocked ${Math.round(blocked)} ms (busyTimeout ${busyTimeout} ms)`);
      assert.equal(await sweep, 'SQLITE_BUSY');
    } finally {
      await new Promise((resolve) => holder.once('exit', resolve));
      await store.close();
    }
  });

  it('createTable: false leaves a DELETE-mode file in DELETE mode (no WAL switch), and the store still works', async () => {
    const path = tempPath('rollback-journal');
    await sqliteStore({ path, sweepInWorker: false }).close();
    const raw = new Database(path);
    raw.pragma('journal_mode = DELETE');
    raw.close();
    const mode = () => {
      const check = new Database(path, { readonly: true });
      try {
        return check.pragma('journal_mode', { simple: true });
      } finally {
        check.close();
      }
    };
    assert.equal(mode(), 'delete');
    const store = sqliteStore({ path, createTable: false });
    try {
      assert.equal(mode(), 'delete', 'opening switched the file to another journal mode');
      const now = Date.now();
      const record = makeRecord({ data: { a: 1 } });
      await store.create(record);
      await store.create(makeRecord({ expiresAt: now - 1_000 }));
      assert.equal(await store.update(record.id, { data: { set: { b: 2 } }, ...later() }), true);
      assert.deepEqual((await store.get(record.id))?.data, { a: 1, b: 2 });
      assert.deepEqual(await store.deleteExpired({ before: now, limit: 10 }), { deleted: 1, cursor: null });
      assert.equal(existsSync(`${path}-wal`), false, 'no WAL file');
    } finally {
      await store.close();
    }
    assert.equal(mode(), 'delete');
    assert.deepEqual(sweeperWarnings, []);
  });
});
