import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { CoatcheckError, ConfigError } from '../../src/errors.js';
import { postgresStore, type PostgresStore } from '../../src/stores/postgres.js';
import type { SessionRecord } from '../../src/stores/types.js';
import { makeRecord, testStore } from '../../src/testing/store-contract.js';
import { POSTGRES_URL, serviceAvailable } from '../helpers/services.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { checkWholeMillisecondTimes } from '../helpers/whole-ms-times.js';

const up = await serviceAvailable('postgres');

function code(expected: string) {
  return (error: unknown) => {
    assert.ok(error instanceof CoatcheckError, `expected a CoatcheckError, got ${String(error)}`);
    assert.equal(error.code, expected);
    return true;
  };
}

if (up) {
  // Unique per process: test runs in parallel (or a crashed run) never share a table.
  const prefix = `cc_test_${randomBytes(4).toString('hex')}`;
  const tables: string[] = [];
  /** A fresh table name, dropped when the file is done. */
  const freshTable = (suffix: string): string => {
    const name = `${prefix}_${suffix}`;
    tables.push(name);
    return name;
  };
  const schemas: string[] = [];
  const freshSchema = (suffix: string): string => {
    const name = `${prefix}_${suffix}`;
    schemas.push(name);
    return name;
  };
  const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });

  after(async () => {
    for (const name of tables) await admin.query(`DROP TABLE IF EXISTS "${name}"`);
    for (const name of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
    await admin.query('DELETE FROM coatcheck_schema WHERE table_name = ANY($1)', [tables]).catch(() => {});
    await admin.end();
  });

  testStore('postgres', { create: () => postgresStore({ connectionString: POSTGRES_URL, table: freshTable('contract') }) });

  describe('postgresStore', () => {
    const table = freshTable('main');
    let store: PostgresStore;
    before(() => {
      store = postgresStore({ connectionString: POSTGRES_URL, table });
    });
    after(async () => {
      await store.close();
    });

    it('counts the wait for a pool connection against queryTimeout: a call given up on is never applied later', async () => {
      const name = freshTable('late');
      const small = postgresStore({ connectionString: POSTGRES_URL, table: name, maxConnections: 1, queryTimeout: 1_000, connectTimeout: 3_000 });
      const holder = await admin.connect();
      try {
        const record = makeRecord();
        await small.create(record);
        // An outside transaction holds the row for 1.6 s.
        await holder.query('BEGIN');
        await holder.query(`SELECT 1 FROM "${name}" WHERE id = $1 FOR UPDATE`, [record.id]);
        const release = setTimeout(() => void holder.query('COMMIT'), 1_600);
        const later = () => ({ lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 });
        // A takes the only connection and waits on the lock until its statement_timeout (1 s).
        const a = Promise.resolve(small.update(record.id, { data: { set: { a: 1 } }, ...later() }));
        // B queues for the connection about as long: it must not be sent once its time is up.
        const b = Promise.resolve(small.update(record.id, { data: { set: { b: 1 } }, ...later() }));
        await assert.rejects(a);
        await assert.rejects(b, /queryTimeout|statement timeout|canceling statement/);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        clearTimeout(release);
        const after = await small.get(record.id);
        assert.deepEqual(after?.data, record.data, 'neither A nor B was applied after failing');
        // A wait alone (no lock) still leaves a statement what remains of its budget.
        const c = small.update(record.id, { data: { set: { c: 1 } }, ...later() });
        const d = small.update(record.id, { data: { set: { d: 1 } }, ...later() });
        assert.deepEqual(await Promise.all([c, d]), [true, true]);
      } finally {
        holder.release();
        await small.close();
      }
    });

    it("leaves an app-owned pool's connection settings alone, and gives back a connection it never used", async () => {
      const name = freshTable('app_pool');
      const appPool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
      appPool.on('connect', (client) => void client.query('SET statement_timeout = 1500'));
      // Migrated first with the default budget: the migration lock is shared by every test file
      // migrating at once, and a 300 ms wait for it could fail for reasons of its own.
      const migrator = postgresStore({ connectionString: POSTGRES_URL, table: name });
      await migrator.migrate();
      await migrator.close();
      const onApp = postgresStore({ pool: appPool, table: name, queryTimeout: 300 });
      try {
        await onApp.migrate();
        // The app holds its one connection 120 ms while the store's call queues for it.
        const busy = appPool.query('SELECT pg_sleep(0.12)');
        assert.equal(await onApp.get('none'), null);
        await busy;
        assert.equal((await appPool.query('SHOW statement_timeout')).rows[0].statement_timeout, '1500ms', 'the app\'s own setting');
        assert.equal((await appPool.query('SHOW client_connection_check_interval')).rows[0].client_connection_check_interval, '0', 'left at the server default');
        // Held past the store's whole budget: the queued call is not sent, and the connection is kept.
        const before = appPool.totalCount;
        const held = appPool.query('SELECT pg_sleep(0.4)');
        await assert.rejects(Promise.resolve(onApp.get('none')), /no connection within queryTimeout/);
        await held;
        assert.equal(appPool.totalCount, before, 'the unused connection went back to the pool, not destroyed');
      } finally {
        await onApp.close();
        await appPool.end();
      }
    });

    it('records the schema version and migrates idempotently', async () => {
      await store.migrate();
      await store.migrate();
      const { rows } = await admin.query('SELECT version FROM coatcheck_schema WHERE table_name = $1', [table]);
      assert.deepEqual(rows, [{ version: 1 }]);
      const indexes = await admin.query('SELECT indexname FROM pg_indexes WHERE tablename = $1 ORDER BY indexname', [table]);
      assert.deepEqual(
        indexes.rows.map((r: { indexname: string }) => r.indexname),
        [`${table}_expires_idx`, `${table}_pkey`, `${table}_user_idx`],
      );
    });

    it('does not end an app-owned pool on close()', async () => {
      const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
      try {
        const own = postgresStore({ pool, table });
        const record = makeRecord();
        await own.create(record);
        assert.equal((await own.get(record.id))?.id, record.id);
        await own.close();
        assert.equal(pool.ended, false);
        const { rows } = await pool.query('SELECT 1 AS one');
        assert.equal(rows[0].one, 1);
      } finally {
        await pool.end();
      }
    });

    it('instances racing to create the schema on first use all succeed', async () => {
      // A fresh schema each round, so coatcheck_schema itself is created in the race too.
      for (let round = 0; round < 3; round++) {
        const schema = freshSchema(`race${round}`);
        await admin.query(`CREATE SCHEMA "${schema}"`);
        const stores = Array.from({ length: 4 }, () => postgresStore({ connectionString: POSTGRES_URL, schema, table: 'sessions' }));
        try {
          const records = stores.map(() => makeRecord());
          await Promise.all(stores.map((s, i) => s.create(records[i] as SessionRecord)));
          for (const record of records) assert.ok(await stores[0]?.get(record.id));
          const { rows } = await admin.query(`SELECT table_name, version FROM "${schema}".coatcheck_schema`);
          assert.deepEqual(rows, [{ table_name: 'sessions', version: 1 }]);
        } finally {
          await Promise.all(stores.map((s) => s.close()));
        }
      }
    });

    it('keeps all 50 concurrent updates to different keys made through two pools', async () => {
      const a = postgresStore({ connectionString: POSTGRES_URL, table });
      const b = postgresStore({ connectionString: POSTGRES_URL, table });
      try {
        const record = makeRecord({ data: { before: true }, meta: { m: 0 } });
        await a.create(record);
        await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            (i % 2 === 0 ? a : b).update(record.id, {
              data: { set: { [`k${i}`]: i } },
              meta: i === 7 ? { unset: ['m'] } : undefined,
              lastSeenAt: Date.now(),
              expiresAt: Date.now() + 60_000,
            }),
          ),
        );
        const loaded = await b.get(record.id);
        assert.equal(Object.keys(loaded?.data ?? {}).length, 51);
        for (let i = 0; i < 50; i++) assert.equal(loaded?.data[`k${i}`], i);
        assert.deepEqual(loaded?.meta, {});
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });

    it('sets and unsets prototype-looking keys through update', async () => {
      const record = makeRecord({ data: { a: 1 } });
      await store.create(record);
      const set = JSON.parse('{"__proto__":{"polluted":true},"constructor":1}');
      await store.update(record.id, { data: { set }, lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 });
      let loaded = await store.get(record.id);
      assert.deepEqual(Object.keys(loaded?.data ?? {}).sort(), ['__proto__', 'a', 'constructor']);
      assert.equal(Object.getPrototypeOf(loaded?.data), Object.prototype);
      await store.update(record.id, { data: { unset: ['__proto__'] }, lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 });
      loaded = await store.get(record.id);
      assert.deepEqual(Object.keys(loaded?.data ?? {}).sort(), ['a', 'constructor']);
    });

    it('rejects a row whose data or meta is not a JSON object with ERR_CORRUPT_RECORD', async () => {
      const record = makeRecord();
      await store.create(record);
      await admin.query(`UPDATE "${table}" SET data = '[1,2]'::jsonb WHERE id = $1`, [record.id]);
      await assert.rejects(async () => store.get(record.id), code('ERR_CORRUPT_RECORD'));
      await admin.query(`UPDATE "${table}" SET data = '{}'::jsonb, meta = '"text"'::jsonb WHERE id = $1`, [record.id]);
      await assert.rejects(async () => store.get(record.id), code('ERR_CORRUPT_RECORD'));
    });

    it('refuses U+0000 and lone surrogates (jsonb cannot hold them) and writes nothing', async () => {
      await assert.rejects(store.create(makeRecord({ data: { bad: 'a\u0000b' } })), code('ERR_INVALID_VALUE'));
      await assert.rejects(store.create(makeRecord({ data: { nested: [{ 'k\u0000': 1 }] } })), code('ERR_INVALID_VALUE'));
      await assert.rejects(store.create(makeRecord({ meta: { half: '\ud83e' } })), code('ERR_INVALID_VALUE'));
      const record = makeRecord({ data: { ok: 1 } });
      await store.create(record);
      const now = Date.now();
      await assert.rejects(
        async () => store.update(record.id, { data: { set: { fine: 1, bad: ['\u0000'] } }, lastSeenAt: now, expiresAt: now + 1 }),
        (error: unknown) => code('ERR_INVALID_VALUE')(error) && (error as { key?: string }).key === 'bad',
      );
      assert.deepEqual((await store.get(record.id))?.data, { ok: 1 });
    });

    it('round-trips text that only looks like an unstorable escape, and paired surrogates', async () => {
      const data = { literal: '\\u0000 and \\ud800', emoji: '🧥\ud83e\udde5', 'back\\slash': '\\' };
      const record = makeRecord({ data });
      await store.create(record);
      assert.deepEqual((await store.get(record.id))?.data, data);
    });

    it('lists only unexpired sessions, by the store clock', async () => {
      let now = Date.now();
      const clocked = postgresStore({ connectionString: POSTGRES_URL, table, clock: { now: () => now } });
      try {
        const soon = makeRecord({ userId: 'clock-user', expiresAt: now + 1_000 });
        const later = makeRecord({ userId: 'clock-user', expiresAt: now + 60_000 });
        const gone = makeRecord({ userId: 'clock-user', expiresAt: now - 1 });
        for (const r of [soon, later, gone]) await clocked.create(r);
        assert.deepEqual((await clocked.listByUser('clock-user')).map((s) => s.id).sort(), [soon.id, later.id].sort());
        now += 1_000;
        assert.deepEqual((await clocked.listByUser('clock-user')).map((s) => s.id), [later.id]);
      } finally {
        await clocked.close();
      }
    });

    it('destroys more guests than one batch holds', async () => {
      const fresh = freshTable('batch');
      const own = postgresStore({ connectionString: POSTGRES_URL, table: fresh });
      try {
        await own.migrate();
        const now = Date.now();
        // 12 001 guests and 3 users' sessions, inserted in bulk.
        await admin.query(
          `INSERT INTO "${fresh}" (id, user_id, created_at, last_seen_at, expires_at)
           SELECT 'g' || n, NULL, $1::bigint, $1::bigint, $1::bigint + 60000 FROM generate_series(1, 12001) AS n
           UNION ALL SELECT 'u' || n, 'user', $1::bigint, $1::bigint, $1::bigint + 60000 FROM generate_series(1, 3) AS n`,
          [now],
        );
        assert.equal(await own.destroyByUser(null, ['g5']), 12_000);
        assert.ok(await own.get('g5'));
        assert.equal((await own.listByUser('user')).length, 3);
        assert.equal(await own.destroyAll(), 4);
      } finally {
        await own.close();
      }
    });

    it('sweeps around a row a save holds locked, without waiting, and keeps it when extended', async () => {
      const fresh = freshTable('sweep');
      const own = postgresStore({ connectionString: POSTGRES_URL, table: fresh, queryTimeout: 2_000 });
      const now = Date.now();
      const saving = makeRecord({ expiresAt: now - 10 });
      const others = Array.from({ length: 3 }, () => makeRecord({ expiresAt: now - 5 }));
      const locker = await admin.connect();
      try {
        for (const r of [saving, ...others]) await own.create(r);
        await locker.query('BEGIN');
        await locker.query(`UPDATE "${fresh}" SET expires_at = $2 WHERE id = $1`, [saving.id, now + 60_000]);
        const started = Date.now();
        assert.deepEqual(await own.deleteExpired({ before: now, limit: 10 }), { deleted: 3, cursor: null });
        assert.ok(Date.now() - started < 1_000, 'the sweep waited for the lock');
        await locker.query('COMMIT');
        assert.deepEqual(await own.deleteExpired({ before: now, limit: 10 }), { deleted: 0, cursor: null });
        assert.equal((await own.get(saving.id))?.expiresAt, now + 60_000);
      } finally {
        await locker.query('ROLLBACK').catch(() => {});
        locker.release();
        await own.close();
      }
    });

    it('rejects when a statement runs past queryTimeout (a held row lock)', async () => {
      const quick = postgresStore({ connectionString: POSTGRES_URL, table, queryTimeout: 1000 });
      const record = makeRecord();
      await store.create(record);
      const locker = await admin.connect();
      try {
        await locker.query('BEGIN');
        await locker.query(`SELECT 1 FROM "${table}" WHERE id = $1 FOR UPDATE`, [record.id]);
        const started = Date.now();
        // Cancelled by the server (57014), not abandoned by the client while still waiting on the
        // lock: an abandoned statement would apply once the lock is freed, after the 503.
        await assert.rejects(async () => quick.touch(record.id, { lastSeenAt: 1, expiresAt: 2 }), (error: Error & { code?: string }) => error.code === '57014');
        assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
      } finally {
        await locker.query('ROLLBACK');
        locker.release();
        await quick.close();
      }
      // The failed call changed nothing and the store works afterwards.
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal((await store.get(record.id))?.expiresAt, record.expiresAt);
    });

    it('without createTable, fails until migrate() runs', async () => {
      const fresh = freshTable('manual');
      const manual = postgresStore({ connectionString: POSTGRES_URL, table: fresh, createTable: false });
      try {
        await assert.rejects(async () => manual.get(makeRecord().id), /does not exist/);
        await manual.migrate();
        assert.equal(await manual.get(makeRecord().id), null);
      } finally {
        await manual.close();
      }
    });

    it('migrate() into a schema that does not exist: a ConfigError saying to create it, with pg\'s error (3F000) as its cause', async () => {
      const schema = freshSchema('not_yet'); // dropped after the file, once created below
      const missingSchema = (error: unknown) => {
        assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
        assert.equal(error.code, 'ERR_CONFIG');
        assert.equal(
          error.message,
          `coatcheck: postgresStore: cannot create table ${schema}.coatcheck_sessions: create the schema first (CREATE SCHEMA "${schema}"; ` +
            `the store creates tables, never schemas) or correct its name; PostgreSQL says: schema "${schema}" does not exist`,
        );
        assert.equal((error.cause as { code?: unknown }).code, '3F000');
        return true;
      };
      for (const createTable of [false, true]) {
        const own = postgresStore({ connectionString: POSTGRES_URL, schema, createTable });
        try {
          await assert.rejects(own.migrate(), missingSchema);
        } finally {
          await own.close();
        }
      }
      // On first use (createTable), the call fails like an outage (503) with the same advice.
      const own = postgresStore({ connectionString: POSTGRES_URL, schema });
      try {
        await assert.rejects(async () => own.get(makeRecord().id), (error: unknown) => {
          assert.ok(error instanceof CoatcheckError && error.code === 'ERR_STORE' && error.status === 503, String(error));
          assert.match(error.message, new RegExp(`^coatcheck: store postgres failed during migrate: cannot create table ${schema}\\.coatcheck_sessions: create the schema first`));
          assert.equal(((error.cause as Error).cause as { code?: unknown }).code, '3F000');
          return true;
        });
        // Not remembered: once the schema exists, the same store migrates and works.
        await admin.query(`CREATE SCHEMA "${schema}"`);
        assert.equal(await own.get(makeRecord().id), null);
        await own.migrate();
      } finally {
        await own.close();
      }
    });

    it('migrate() with no schema on the search_path: a ConfigError saying so', async () => {
      const url = new URL(POSTGRES_URL);
      url.searchParams.set('options', `-c search_path=${prefix}_nowhere`);
      const own = postgresStore({ connectionString: url.toString(), createTable: false });
      try {
        await assert.rejects(own.migrate(), (error: unknown) => {
          assert.ok(error instanceof ConfigError, String(error));
          assert.match(error.message, /^coatcheck: postgresStore: cannot create table coatcheck_sessions: no schema on the connection's search_path exists; give the schema option/);
          assert.equal((error.cause as { code?: unknown }).code, '3F000');
          return true;
        });
      } finally {
        await own.close();
      }
    });

    it('takes fractional millisecond times (a high-resolution clock), stored rounded to whole ms', async () => {
      // bigint columns refuse "1795529754628.3555": every create, save and touch used to fail.
      await checkWholeMillisecondTimes(store);
    });

    it('destroyByUser keeps a session whose owner changed while the delete waited for its row lock', async () => {
      const fresh = freshTable('owner');
      const own = postgresStore({ connectionString: POSTGRES_URL, table: fresh });
      try {
        const guest = makeRecord({ userId: null });
        const alices = makeRecord({ userId: 'lock-alice' });
        await own.create(guest);
        await own.create(alices);
        /** Holds the row lock with a second connection while the store's delete runs into it. */
        async function moveWhileDeleting(id: string, to: string, destroy: () => Promise<number>): Promise<number> {
          const locker = await admin.connect();
          try {
            await locker.query('BEGIN');
            await locker.query(`UPDATE "${fresh}" SET user_id = $2 WHERE id = $1`, [id, to]);
            const deleting = destroy();
            // Wait until the delete is blocked on that row lock, then let the move commit.
            for (let i = 0; ; i++) {
              const { rows } = await admin.query(
                `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1 AND pid <> pg_backend_pid()`,
                [`%DELETE FROM "${fresh}"%`],
              );
              if (rows[0].n > 0) break;
              assert.ok(i < 500, 'the delete never waited for the row lock');
              await new Promise((resolve) => setTimeout(resolve, 10));
            }
            await locker.query('COMMIT');
            return await deleting;
          } finally {
            await locker.query('ROLLBACK').catch(() => {});
            locker.release();
          }
        }
        // A guest purge must not delete the session that signed in meanwhile...
        assert.equal(await moveWhileDeleting(guest.id, 'lock-alice', () => own.destroyByUser(null)), 0);
        assert.equal((await own.get(guest.id))?.userId, 'lock-alice');
        // ...nor a user's kill one that moved to another user.
        assert.equal(await moveWhileDeleting(alices.id, 'lock-bob', () => own.destroyByUser('lock-alice', [guest.id])), 0);
        assert.equal((await own.get(alices.id))?.userId, 'lock-bob');
        assert.equal(await own.destroyByUser('lock-bob'), 1);
        assert.equal(await own.destroyByUser('lock-alice'), 1);
      } finally {
        await own.close();
      }
    });

    it('migrate() recreates a table dropped while its version row stayed', async () => {
      const fresh = freshTable('dropped');
      const own = postgresStore({ connectionString: POSTGRES_URL, table: fresh });
      const manual = postgresStore({ connectionString: POSTGRES_URL, table: fresh, createTable: false });
      try {
        await own.create(makeRecord());
        await admin.query(`DROP TABLE "${fresh}"`);
        assert.deepEqual((await admin.query('SELECT version FROM coatcheck_schema WHERE table_name = $1', [fresh])).rows, [{ version: 1 }]);
        // An explicit migrate() (the CLI's) recreates it, indexes included...
        await manual.migrate();
        const record = makeRecord({ userId: 'back' });
        await manual.create(record);
        assert.deepEqual((await manual.listByUser('back')).map((s) => s.id), [record.id]);
        const indexes = await admin.query('SELECT indexname FROM pg_indexes WHERE tablename = $1 ORDER BY indexname', [fresh]);
        assert.deepEqual(
          indexes.rows.map((r: { indexname: string }) => r.indexname),
          [`${fresh}_expires_idx`, `${fresh}_pkey`, `${fresh}_user_idx`],
        );
        // ...and so does the first-use migration of a store started afterwards.
        await admin.query(`DROP TABLE "${fresh}"`);
        const restarted = postgresStore({ connectionString: POSTGRES_URL, table: fresh });
        try {
          await restarted.create(makeRecord());
        } finally {
          await restarted.close();
        }
        assert.deepEqual((await admin.query('SELECT version FROM coatcheck_schema WHERE table_name = $1', [fresh])).rows, [{ version: 1 }]);
      } finally {
        await Promise.all([own.close(), manual.close()]);
      }
    });

    it('a save whose connection was lost while it waited for a row lock never applies once the lock is freed', async () => {
      const name = freshTable('lost');
      const target = new URL(POSTGRES_URL);
      const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
      const viaProxy = new URL(POSTGRES_URL);
      viaProxy.port = String(proxy.port);
      // A long queryTimeout: the server-side statement_timeout alone would let the save wait (and
      // apply) for seconds after the client was told it failed.
      const lossy = postgresStore({ connectionString: viaProxy.toString(), table: name, queryTimeout: 10_000 });
      const holder = await admin.connect();
      try {
        const record = makeRecord();
        await lossy.create(record);
        await holder.query('BEGIN');
        await holder.query(`SELECT 1 FROM "${name}" WHERE id = $1 FOR UPDATE`, [record.id]);
        const save = Promise.resolve(lossy.update(record.id, { data: { set: { lost: 1 } }, lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 }));
        const waiting = () =>
          admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`, [`UPDATE "${name}"%`]);
        for (let i = 0; i < 100 && (await waiting()).rows[0].n === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal((await waiting()).rows[0].n, 1, 'the save waits for the row lock');
        proxy.drop(); // the connection is lost: the save fails
        await assert.rejects(save);
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        await holder.query('COMMIT');
        await new Promise((resolve) => setTimeout(resolve, 300));
        const { rows } = await admin.query(`SELECT data FROM "${name}" WHERE id = $1`, [record.id]);
        assert.deepEqual(rows[0]?.data, record.data, 'the save reported as failed was applied after all');
        assert.equal((await waiting()).rows[0].n, 0);
      } finally {
        await holder.query('ROLLBACK').catch(() => {});
        holder.release();
        await lossy.close();
        await proxy.close();
      }
    });

    it('close() is idempotent', async () => {
      const own = postgresStore({ connectionString: POSTGRES_URL, table });
      await own.get(makeRecord().id);
      await own.close();
      await own.close();
    });
  });

  describe('postgresStore adopting a table made by hand (no version row)', () => {
    const DDL = `(id text PRIMARY KEY, user_id text, data jsonb NOT NULL DEFAULT '{}'::jsonb, meta jsonb NOT NULL DEFAULT '{}'::jsonb,
      created_at bigint NOT NULL, last_seen_at bigint NOT NULL, expires_at bigint NOT NULL, ip text, user_agent text)`;
    it('refuses one it could not use, before changing anything: text data, no key on id, a column it cannot fill, a view', async () => {
      const schema = freshSchema('adopt');
      await admin.query(`CREATE SCHEMA "${schema}"`);
      const cases: [string, string, RegExp][] = [
        ['text_data', DDL.replace("data jsonb NOT NULL DEFAULT '{}'::jsonb", "data text NOT NULL DEFAULT '{}'"), /its column data is text, not jsonb/],
        ['no_key', DDL.replace('id text PRIMARY KEY', 'id text'), /id is not its primary key/],
        ['extra', DDL.replace('user_agent text', 'user_agent text, tenant text NOT NULL'), /its column tenant is NOT NULL without a default/],
      ];
      for (const [table, ddl, why] of cases) {
        await admin.query(`CREATE TABLE "${schema}"."${table}" ${ddl}`);
        const store = postgresStore({ connectionString: POSTGRES_URL, schema, table });
        await assert.rejects(store.migrate(), (error: unknown) => error instanceof ConfigError && why.test(error.message), table);
        await store.close();
        const indexes = await admin.query('SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = $2', [schema, table]);
        assert.ok(indexes.rows.every((row: { indexname: string }) => row.indexname.endsWith('_pkey')), `${table}: no index added`);
      }
      await admin.query(`CREATE VIEW "${schema}".a_view AS SELECT * FROM "${schema}".extra`);
      const view = postgresStore({ connectionString: POSTGRES_URL, schema, table: 'a_view' });
      await assert.rejects(view.migrate(), /it is not a plain table/);
      await view.close();
      // The documented DDL itself is adopted, and works.
      await admin.query(`CREATE TABLE "${schema}".hand_made ${DDL}`);
      const adopted = postgresStore({ connectionString: POSTGRES_URL, schema, table: 'hand_made' });
      await adopted.migrate();
      const record = makeRecord({ data: { a: 1 } });
      await adopted.create(record);
      assert.equal(await adopted.update(record.id, { data: { set: { b: 2 } }, lastSeenAt: record.lastSeenAt, expiresAt: record.expiresAt }), true);
      assert.deepEqual((await adopted.get(record.id))?.data, { a: 1, b: 2 });
      await adopted.close();
    });

    it('without a schema, looks only where it would create the table, not further along the search_path', async () => {
      const [app, lib] = [freshSchema('sp_app'), freshSchema('sp_lib')];
      for (const schema of [app, lib]) await admin.query(`CREATE SCHEMA "${schema}"`);
      // Another library's session table further along the search_path.
      await admin.query(`CREATE TABLE "${lib}".session (sid varchar PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL)`);
      const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1, options: `-c search_path=${app},${lib}` });
      const store = postgresStore({ pool, table: 'session' });
      await store.migrate();
      const created = await admin.query('SELECT table_schema FROM information_schema.columns WHERE table_name = $1 AND column_name = $2', ['session', 'meta']);
      assert.deepEqual(created.rows.map((row: { table_schema: string }) => row.table_schema), [app], 'its own table, in the first schema');
      await store.close();
      await pool.end();
    });
  });
} else {
  describe('postgres store', { skip: 'PostgreSQL not reachable' }, () => {});
}

// These need no server: they run everywhere.
describe('postgresStore without a server', () => {
  it('rejects (never resolves "no session") when nothing listens, within the timeout', async () => {
    const store = postgresStore({ connectionString: 'postgres://postgres@127.0.0.1:1/test', queryTimeout: 1_000 });
    try {
      const started = Date.now();
      await assert.rejects(async () => store.get(makeRecord().id));
      await assert.rejects(store.create(makeRecord()));
      assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
    } finally {
      await store.close();
    }
  });

  it('rejects within connectTimeout when the server accepts but never answers', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket)); // never writes a byte
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    const store = postgresStore({ connectionString: `postgres://postgres@127.0.0.1:${port}/test`, queryTimeout: 500 });
    try {
      const started = Date.now();
      await assert.rejects(async () => store.get(makeRecord().id), /timeout/i);
      assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
    } finally {
      await store.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('refuses bad identifiers and options with ConfigError at setup', () => {
    const url = 'postgres://postgres@127.0.0.1:1/test';
    for (const table of ['', 'bad-name', 'x"; DROP TABLE users; --', '1abc', 'a.b', 'x'.repeat(51), 'tab le']) {
      assert.throws(() => postgresStore({ connectionString: url, table }), ConfigError, table);
    }
    for (const schema of ['', 'my schema', 'a.b', '"x"', 'y'.repeat(64)]) {
      assert.throws(() => postgresStore({ connectionString: url, schema }), ConfigError, schema);
    }
    assert.throws(() => postgresStore({}), ConfigError);
    assert.throws(() => postgresStore({ connectionString: undefined }), /connectionString is undefined: is the environment variable you passed unset\?/);
    assert.throws(() => postgresStore({ connectionString: url, pool: new pg.Pool() }), ConfigError);
    assert.throws(() => postgresStore({ connectionString: url, queryTimeout: 0 }), ConfigError);
    assert.throws(() => postgresStore({ connectionString: url, connectTimeout: -5 }), ConfigError);
    // A string from the environment ("false") would have counted as true and run DDL.
    assert.throws(() => postgresStore({ connectionString: url, createTable: 'false' as unknown as boolean }), /createTable must be a boolean/);
    // Past setTimeout's limit pg would time out every query (or connection) after 1 ms.
    for (const timeout of [2 ** 31, 1e12, Infinity]) {
      assert.throws(() => postgresStore({ connectionString: url, queryTimeout: timeout }), /queryTimeout .*2147483647/);
      assert.throws(() => postgresStore({ connectionString: url, connectTimeout: timeout }), /connectTimeout .*2147483647/);
    }
    assert.doesNotThrow(() => postgresStore({ connectionString: url, queryTimeout: 2 ** 31 - 1 }));
    assert.doesNotThrow(() => postgresStore({ connectionString: url, table: 'Sessions_2', schema: 'app_data' }));
  });
});
