import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { ConfigError } from '../../src/errors.js';
import { MAX_NAME_LENGTH, parseStoreUrl, storeFromUrl } from '../../src/stores/from-url.js';
import { postgresStore } from '../../src/stores/postgres.js';
import { sqliteStore } from '../../src/stores/sqlite.js';
import type { Store } from '../../src/stores/types.js';
import { makeRecord, randomId } from '../../src/testing/store-contract.js';
import { POSTGRES_URL, serviceAvailable } from '../helpers/services.js';

const dir = mkdtempSync(join(tmpdir(), 'coatcheck-from-url-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SECRETS = { secrets: ['test-secret-0123456789-abcdefghi'] };
const postgresUp = await serviceAvailable('postgres');

describe('storeFromUrl', () => {
  it('reads ?table= in a sqlite: URL as the table, never as part of the file name', async () => {
    const path = join(dir, 'tabled.db');
    const store = (await storeFromUrl(`sqlite:${path}?table=app_sessions`)) as Store;
    const record = makeRecord();
    await store.create(record);
    await store.close();
    assert.deepEqual(readdirSync(dir).filter((f) => !f.includes('-wal') && !f.includes('-shm')), ['tabled.db']);
    const direct = sqliteStore({ path, table: 'app_sessions' });
    assert.ok(await direct.get(record.id));
    await direct.close();
  });

  const refused: Array<[string, RegExp]> = [
    ['sqlite:', /needs a path/],
    ['sqlite:./x.db?prefix=a', /only \?table=/],
    ['sqlite:./x.db?table=a;drop', /\?table= must be letters/],
    ['sqlite:./x.db?table=a&table=b', /more than once/],
    ['memory://localhost:1234?maxEntries=10', /memory: URLs take nothing/],
    ['memory:x', /memory: URLs take nothing/],
    ['cookie:whatever', /cookie: URLs take nothing/],
    ['redis:', /needs a host/],
    ['redis:127.0.0.1', /needs a host/],
    ['redis://127.0.0.1:6379/zero', /database number/],
    ['redis://127.0.0.1:6379?keyPrefix=app:', /use \?prefix=/],
    ['redis://127.0.0.1:6379?prefix={app}', /\?prefix= must be non-empty/],
    ['postgres:', /needs a host/],
    ['postgresql:///db', /needs a host/],
    ['postgres://h/db?schema=1x', /\?schema= must be letters/],
    ['mysql://h/db', /unknown store URL/],
  ];
  for (const [url, message] of refused) {
    it(`refuses ${url} with a ConfigError`, async () => {
      await assert.rejects(storeFromUrl(url, SECRETS), (error: unknown) => error instanceof ConfigError && message.test(error.message));
    });
  }

  it('refuses the table and schema names the stores refuse, and only those: the same length limits', async () => {
    // The URL is checked before any store opens (so the CLI can call it a usage error); the
    // limits must stay the stores' own. A store that is built does not connect (createTable: false).
    const cases = [
      { max: MAX_NAME_LENGTH.sqlite.table, url: (n: string) => `sqlite::memory:?table=${n}`, open: (n: string) => sqliteStore({ path: ':memory:', table: n }) },
      {
        max: MAX_NAME_LENGTH.postgres.table,
        url: (n: string) => `postgres://h/db?table=${n}`,
        open: (n: string) => postgresStore({ connectionString: 'postgres://h/db', createTable: false, table: n }),
      },
      {
        max: MAX_NAME_LENGTH.postgres.schema,
        url: (n: string) => `postgres://h/db?schema=${n}`,
        open: (n: string) => postgresStore({ connectionString: 'postgres://h/db', createTable: false, schema: n }),
      },
    ];
    for (const { max, url, open } of cases) {
      const longest = `_${'x'.repeat(max - 1)}`;
      assert.doesNotThrow(() => parseStoreUrl(url(longest)), url(longest));
      await open(longest).close();
      const over = `${longest}x`;
      assert.throws(() => parseStoreUrl(url(over)), new RegExp(`at most ${max} characters`), url(over));
      assert.throws(() => open(over), ConfigError, `the store refuses ${url(over)} too`);
    }
  });

  it('says where the cookie store\'s secrets go when they are missing', async () => {
    await assert.rejects(storeFromUrl('cookie:'), /storeFromUrl\('cookie:', \{ secrets: \[secret\] \}\)/);
  });

  it('takes the plain forms', async () => {
    for (const url of ['memory:', 'cookie:']) {
      const store = await storeFromUrl(url, SECRETS);
      assert.equal(store.name, url.slice(0, -1));
      await store.close();
    }
  });

  it('parses the same way for the CLI: the store\'s parameters split off, driver parameters kept', () => {
    assert.deepEqual(parseStoreUrl('sqlite:./a.db?table=s'), { kind: 'sqlite', display: 'sqlite:./a.db?table=s', location: './a.db', table: 's' });
    assert.deepEqual(parseStoreUrl('sqlite::memory:'), { kind: 'sqlite', display: 'sqlite::memory:', location: ':memory:' });
    const postgres = parseStoreUrl('postgres://app:secret@db:5432/app?table=s&schema=x&sslmode=require');
    assert.equal(postgres.location, 'postgres://app:secret@db:5432/app?sslmode=require');
    assert.equal(postgres.table, 's');
    assert.equal(postgres.schema, 'x');
    assert.doesNotMatch(postgres.display, /secret/);
    assert.equal(parseStoreUrl('postgres:///app?host=/var/run/postgresql').kind, 'postgres');
    assert.deepEqual(parseStoreUrl('redis://127.0.0.1:6379/2?prefix=app:'), {
      kind: 'redis',
      display: 'redis://127.0.0.1:6379/2?prefix=app:',
      location: 'redis://127.0.0.1:6379/2',
      prefix: 'app:',
    });
  });

  it('hides credential query parameters in the printable URL, as it hides the userinfo password', () => {
    // Both drivers authenticate with ?password= (ioredis and pg copy query parameters into their options).
    const redis = parseStoreUrl('redis://127.0.0.1:6379/0?password=hunter2&prefix=app:');
    assert.equal(redis.display, 'redis://127.0.0.1:6379/0?password=***&prefix=app:');
    assert.equal(redis.location, 'redis://127.0.0.1:6379/0?password=hunter2');
    const postgres = parseStoreUrl('postgres://app:s3cret@db.internal:5432/prod?PassWord=hunter2&table=sessions&sslmode=require&sslpassword=keypass&pass%77ord=encoded');
    assert.equal(
      postgres.display,
      'postgres://app:***@db.internal:5432/prod?PassWord=***&table=sessions&sslmode=require&sslpassword=***&pass%77ord=***',
    );
    assert.equal(parseStoreUrl('redis://h:1/0?sentinelPassword=x&db=1').display, 'redis://h:1/0?sentinelPassword=***&db=1');
    // A URL that does not parse is not echoed with its userinfo either.
    assert.throws(
      () => parseStoreUrl('postgres://app:pa?ss@h/db'),
      (error: unknown) => error instanceof ConfigError && error.message.includes('"postgres://***@h/db" is not a valid URL'),
    );
    // Duplicate-parameter errors print the masked URL too.
    assert.throws(
      () => parseStoreUrl('redis://h:1/0?password=hunter2&prefix=a&prefix=b'),
      (error: unknown) => error instanceof ConfigError && /more than once/.test(error.message) && !error.message.includes('hunter2'),
    );
  });

  it('never puts a password in an error: unknown schemes, an unencoded / in the password, junk after memory:', () => {
    const cases: Array<[string, RegExp]> = [
      ['postgress://admin:S3cretPw@db.internal/app', /unknown store URL "postgress:\/\/admin:\*\*\*@db.internal\/app"/],
      ['mysql://root:S3cretPw@h/db', /unknown store URL/],
      // A `/` in the password: the parser takes "default:12" for host and port, the rest for the path.
      ['redis://default:12/34S3cretPw@localhost:6379', /percent-encode any \/, \? or # in the user name or password/],
      // A `#` or `?` does the same: host "app", the rest of the password in the fragment or query.
      ['postgres://app:#S3cretPw@db.internal/app', /percent-encode/],
      ['postgres://app:?S3cretPw@db.internal/app', /percent-encode/],
      ['postgres://app:1234#S3cretPw@db/app', /percent-encode/],
      ['redis://default:#S3cretPw@cache:6379/0', /percent-encode/],
      ['postgress://app:#S3cretPw@db/app', /unknown store URL/],
      ['redis://default:/S3cretPw@127.0.0.1:6379', /percent-encode/],
      ['postgres://user:12/34S3cretPw@localhost/db', /percent-encode/],
      ['memory://u:S3cretPw@x', /memory: URLs take nothing after the scheme/],
    ];
    for (const [url, pattern] of cases) {
      assert.throws(
        () => parseStoreUrl(url),
        (error: unknown) => error instanceof ConfigError && pattern.test(error.message) && !error.message.includes('S3cretPw'),
        url,
      );
    }
  });

  it('takes libpq\'s Unix-socket form with a user and no host (postgres://user@/db?host=/socket)', () => {
    const parsed = parseStoreUrl('postgres://app:pw@/prod?host=/var/run/postgresql&table=s');
    assert.equal(parsed.table, 's');
    assert.equal(parsed.display.includes('pw'), false);
    assert.equal(new URL(parsed.location).searchParams.get('host'), '/var/run/postgresql');
    assert.deepEqual(parseStoreUrl('postgres://app@/prod?host=/run/pg').location, 'postgres://app@/prod?host=/run/pg');
    // Without ?host= there is nothing to connect to.
    assert.throws(() => parseStoreUrl('postgres://app@/prod'), ConfigError);
  });

  it('connects through the Unix socket with the user-and-no-host form', { skip: !postgresUp && 'PostgreSQL not reachable' }, async () => {
    // Debian's PostgreSQL (here and in CI) listens on /var/run/postgresql too.
    const store = (await storeFromUrl('postgres://postgres@/test?host=/var/run/postgresql')) as Store;
    try {
      assert.deepEqual(await store.listByUser(`nobody-${randomId()}`), []);
    } finally {
      await store.close();
    }
  });

  it('opens postgres:// with ?table= and ?schema= as the store\'s options', { skip: !postgresUp && 'PostgreSQL not reachable' }, async () => {
    const table = `cc_from_url_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    try {
      const store = (await storeFromUrl(`${POSTGRES_URL}?table=${table}&schema=public`)) as Store;
      try {
        await store.create(makeRecord({ userId: 'from-url' }));
      } finally {
        await store.close();
      }
      const rows = await admin.query(`SELECT count(*)::int AS n FROM public."${table}" WHERE user_id = 'from-url'`);
      assert.equal(rows.rows[0].n, 1);
    } finally {
      await admin.query(`DROP TABLE IF EXISTS public."${table}"`);
      await admin.query('DELETE FROM coatcheck_schema WHERE table_name = $1', [table]).catch(() => {});
      await admin.end();
    }
  });
});
