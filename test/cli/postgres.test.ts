/**
 * Every store command against PostgreSQL, in a schema of its own (`?schema=`), so even
 * `kill --all` touches nothing but this file's sessions on a shared server.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import { postgresStore } from '../../src/stores/postgres.js';
import type { SessionRecord } from '../../src/stores/types.js';
import { makeRecord } from '../../src/testing/store-contract.js';
import { POSTGRES_URL, serviceAvailable } from '../helpers/services.js';
import { cli, json } from './run-cli.js';

const up = await serviceAvailable('postgres');

/** The test server's URL with the CLI's parameters added. */
function storeUrl(params: Record<string, string>): string {
  const url = new URL(POSTGRES_URL);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.toString();
}

describe('coatcheck on PostgreSQL', { skip: !up && 'PostgreSQL not reachable' }, () => {
  const schema = `cc_cli_${randomBytes(4).toString('hex')}`;
  const url = storeUrl({ schema });
  const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
  const store = postgresStore({ connectionString: POSTGRES_URL, schema, createTable: false });

  before(async () => {
    await admin.query(`CREATE SCHEMA "${schema}"`);
  });
  after(async () => {
    await store.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });

  it('commands other than migrate do not create the table, and say what to do', async () => {
    const result = await cli(['stats', '--store', url]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /^coatcheck stats: store postgres failed during stats: relation ".*coatcheck_sessions" does not exist \(the session table does not exist: run coatcheck migrate\)\n$/);
  });

  it('migrate adopts a table made by hand from the documented DDL, and refuses another library\'s table of that name, leaving it alone', async () => {
    await admin.query(`CREATE TABLE "${schema}".hand_made (id text PRIMARY KEY, user_id text, data jsonb NOT NULL DEFAULT '{}'::jsonb,
      meta jsonb NOT NULL DEFAULT '{}'::jsonb, created_at bigint NOT NULL, last_seen_at bigint NOT NULL, expires_at bigint NOT NULL, ip text, user_agent text)`);
    await admin.query(`CREATE TABLE "${schema}".session (sid varchar PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL)`);
    const adopted = await cli(['migrate', '--json', '--store', storeUrl({ schema, table: 'hand_made' })]);
    assert.equal(adopted.status, 0, adopted.stderr);
    assert.deepEqual(json(adopted), { store: 'postgres', action: 'adopted', table: `${schema}.hand_made`, fromVersion: null, version: 1 });
    const foreign = await cli(['migrate', '--store', storeUrl({ schema, table: 'session' })]);
    assert.equal(foreign.status, 1);
    assert.match(foreign.stderr, /^coatcheck migrate: postgresStore: table session exists but is not a coatcheck session table \(it has no column id, user_id, data, meta, created_at, last_seen_at, expires_at, ip, user_agent; .*; its columns: sid, sess, expire\)/);
    const columns = await admin.query(`SELECT attname FROM pg_attribute WHERE attrelid = '"${schema}".session'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`);
    assert.deepEqual(columns.rows.map((row: { attname: string }) => row.attname), ['sid', 'sess', 'expire'], 'left as it was');
    const indexes = await admin.query(`SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'session'`, [schema]);
    assert.deepEqual(indexes.rows.map((row: { indexname: string }) => row.indexname), ['session_pkey'], 'no index added');
    await admin.query(`DROP TABLE "${schema}".hand_made, "${schema}".session`);
    await admin.query(`DELETE FROM "${schema}".coatcheck_schema WHERE table_name = 'hand_made'`);
  });

  it('migrate creates the table, then has nothing to do', async () => {
    const first = await cli(['migrate', '--json', '--store', url]);
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(json(first), { store: 'postgres', action: 'created', table: `${schema}.coatcheck_sessions`, fromVersion: null, version: 1 });
    const again = await cli(['migrate', '--store', url]);
    assert.equal(again.stdout, `postgres: table ${schema}.coatcheck_sessions is already at schema version 1, nothing to do\n`);
  });

  it('of several migrate runs at once, only the one that created the table says so', async () => {
    const table = `race_${randomBytes(3).toString('hex')}`;
    const raceUrl = storeUrl({ schema, table });
    // The store's migration lock, held while the runs start: each reaches it finding no table.
    const holder = await admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [0x636f6174, 1]);
      const runs = Promise.all(Array.from({ length: 3 }, () => cli(['migrate', '--json', '--store', raceUrl])));
      // Released once all three wait for it (within the store's 5 s statement timeout).
      const waiting = async () =>
        (await holder.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = 1")).rows[0]?.n ?? 0;
      let firstSeen = 0;
      for (let i = 0; i < 300; i++) {
        const n = await waiting();
        if (n > 0 && firstSeen === 0) firstSeen = Date.now();
        if (n >= 3 || (firstSeen > 0 && Date.now() - firstSeen > 3_000)) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await holder.query('COMMIT');
      const results = await runs;
      for (const result of results) assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(results.map((result) => json<{ action: string }>(result).action).sort(), ['created', 'unchanged', 'unchanged']);
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      holder.release();
    }
  });

  it('migrate into a schema that does not exist fails with a hint', async () => {
    const result = await cli(['migrate', '--store', storeUrl({ schema: `${schema}_missing` })]);
    assert.equal(result.status, 1);
    // The store's own message says what to do; the CLI adds no second hint.
    assert.match(result.stderr, /create the schema first \(CREATE SCHEMA .*does not exist\n$/);
    assert.doesNotMatch(result.stderr, /create it first/);
  });

  // coatcheck quotes PostgreSQL names, so they are case-sensitive (unlike SQLite's): a ?table= or
  // ?schema= in another case is another table. The CLI must not send the operator to migrate,
  // which would create it, empty, next to the real one.
  it('?table= or ?schema= in another letter case: says which table exists instead of "run migrate"', async () => {
    await store.migrate();
    for (const args of [['stats'], ['list', '--user', 'x'], ['kill', '--user', 'x'], ['clear-expired']]) {
      const result = await cli([...args, '--store', storeUrl({ schema, table: 'Coatcheck_Sessions' })]);
      assert.equal(result.status, 1, result.stderr);
      assert.equal(result.stdout, '');
      assert.equal(
        result.stderr,
        `coatcheck ${args[0]}: no table ${schema}.Coatcheck_Sessions, but there is ${schema}.coatcheck_sessions: coatcheck quotes PostgreSQL names, ` +
          `so letter case matters; check ?table= and ?schema= (migrate would create ${schema}.Coatcheck_Sessions as a separate, empty table)\n`,
      );
    }
    const upper = await cli(['stats', '--store', storeUrl({ schema: schema.toUpperCase() })]);
    assert.equal(upper.status, 1);
    assert.equal(
      upper.stderr,
      `coatcheck stats: no table ${schema.toUpperCase()}.coatcheck_sessions, but there is ${schema}.coatcheck_sessions: coatcheck quotes PostgreSQL names, so letter case matters; check ?table= and ?schema=\n`,
    );
    // migrate does what it is told (the app would create that table too), and says what it did.
    const created = await cli(['migrate', '--json', '--store', storeUrl({ schema, table: 'Coatcheck_Sessions' })]);
    assert.equal(created.status, 0, created.stderr);
    assert.equal(json<{ action: string }>(created).action, 'created');
    assert.equal(
      created.stderr,
      `coatcheck migrate: note: ${schema}.Coatcheck_Sessions is a new table, separate from ${schema}.coatcheck_sessions: coatcheck quotes PostgreSQL names, so letter case matters (check ?table= and ?schema=)\n`,
    );
    await admin.query(`DROP TABLE "${schema}"."Coatcheck_Sessions"`);
    await admin.query(`DELETE FROM "${schema}".coatcheck_schema WHERE table_name = 'Coatcheck_Sessions'`);
  });

  describe('with data', () => {
    const now = Date.now();
    let carol: SessionRecord[];
    let others: SessionRecord[];
    beforeEach(async () => {
      await store.migrate();
      await store.destroyAll();
      carol = [
        makeRecord({ userId: 'carol', createdAt: now - 5_000, ip: '198.51.100.7', userAgent: 'curl/8' }),
        makeRecord({ userId: 'carol', createdAt: now - 1_000 }),
        makeRecord({ userId: 'carol', expiresAt: now - 1 }),
      ];
      others = [makeRecord({ userId: 'dan' }), makeRecord({ userId: null }), makeRecord({ userId: null, expiresAt: now - 10 })];
      for (const r of [...carol, ...others]) await store.create(r);
    });
    const left = async (records: SessionRecord[]) => (await Promise.all(records.map((r) => store.get(r.id)))).filter(Boolean).length;

    it('stats', async () => {
      const result = await cli(['stats', '--json', '--store', url]);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(json(result), {
        store: 'postgres',
        sessions: 4,
        expired: 2,
        users: 2,
        guests: 1,
        topUsers: [
          { userId: 'carol', sessions: 2 },
          { userId: 'dan', sessions: 1 },
        ],
      });
      const human = await cli(['stats', '--top', '0', '--store', url]);
      assert.equal(human.stdout, `store     ${url}\nsessions  4 live\nexpired   2 awaiting clear-expired\nusers     2\nguests    1\n`);
    });

    it('list --user', async () => {
      const list = json<Array<{ handle: string; ip: string | null; userAgent: string | null }>>(await cli(['list', '--user', 'carol', '--json', '--store', url]));
      assert.deepEqual(
        list.map((d) => [d.handle, d.ip, d.userAgent]),
        [
          [carol[0]?.id, '198.51.100.7', 'curl/8'],
          [carol[1]?.id, '127.0.0.1', 'contract-test'],
        ],
      );
      const human = await cli(['list', '--user', 'carol', '--store', url]);
      assert.match(human.stdout, /^2 live sessions of user carol:\nHANDLE {2,}CREATED/);
    });

    it('kill --user, --guests and --all', async () => {
      assert.deepEqual(json(await cli(['kill', '--user', 'carol', '--json', '--store', url])), { store: 'postgres', scope: 'user', user: 'carol', killed: 3 });
      assert.equal(await left(carol), 0);
      assert.equal(await left(others), 3);
      assert.deepEqual(json(await cli(['kill', '--guests', '--json', '--store', url])), { store: 'postgres', scope: 'guests', killed: 2 });
      assert.equal(await left(others), 1);
      const all = await cli(['kill', '--all', '--yes', '--store', url]);
      assert.equal(all.stdout, 'ended 1 session\n');
      assert.equal(await left(others), 0);
    });

    it('clear-expired', async () => {
      const result = await cli(['clear-expired', '--batch-size', '1', '--json', '--store', url]);
      assert.deepEqual(json(result), { store: 'postgres', deleted: 2, batches: 3, complete: true });
      assert.equal(await left([...carol, ...others]), 4);
    });

    it('?table= selects another table in the schema', async () => {
      const other = storeUrl({ schema, table: 'other_sessions' });
      assert.equal(json<{ action: string }>(await cli(['migrate', '--json', '--store', other])).action, 'created');
      assert.deepEqual(json(await cli(['list', '--user', 'carol', '--json', '--store', other])), []);
    });
  });

  it('a server that does not answer exits 1 with one line', async () => {
    for (const args of [['stats'], ['list', '--user', 'x'], ['kill', '--guests'], ['clear-expired'], ['migrate']]) {
      const result = await cli([...args, '--store', 'postgres://postgres@127.0.0.1:1/test']);
      assert.equal(result.status, 1, `${args[0]}: ${result.stderr}`);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, new RegExp(`^coatcheck ${args[0]}: store postgres failed during \\w+: .*ECONNREFUSED.*\\n$`));
    }
  });
});
