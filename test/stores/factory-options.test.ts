/**
 * Every store factory refuses option names it does not have (a typo would otherwise leave the
 * store on a default the app did not choose), and a missing or non-object options argument, with
 * a ConfigError naming the factory; `createSessions` names the methods a hand-written store lacks.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createSessions } from '../../src/index.js';
import { ConfigError } from '../../src/errors.js';
import { connectStore, type ConnectStoreLike } from '../../src/stores/connect.js';
import { cookieStore } from '../../src/stores/cookie.js';
import { storeFromUrl } from '../../src/stores/from-url.js';
import { memoryStore } from '../../src/stores/memory.js';
import { postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { sqliteStore } from '../../src/stores/sqlite.js';
import { tieredStore } from '../../src/stores/tiered.js';
import type { Store } from '../../src/stores/types.js';
import { REDIS_URL, serviceAvailable } from '../helpers/services.js';

const dir = mkdtempSync(join(tmpdir(), 'coatcheck-factory-options-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SECRETS = ['test-secret-0123456789-abcdefghi'];
// Nothing listens here: the stores below must fail before connecting, or never query.
const PG_URL = 'postgres://postgres@127.0.0.1:1/test';
const REDIS_NOWHERE = 'redis://127.0.0.1:1';

/** An express-session store that keeps nothing: enough for connectStore's setup checks. */
const innerStore: ConnectStoreLike = {
  get: (_sid, callback) => callback(null, null),
  set: (_sid, _session, callback) => callback?.(null),
  destroy: (_sid, callback) => callback?.(null),
};

/** Asserts `run` throws a ConfigError whose message matches every pattern. */
function refused(run: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.code, 'ERR_CONFIG');
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
}

describe('store factories refuse unknown option names', () => {
  // The review's cases: each used to return a working store with the option ignored.
  const typos: Array<[string, () => unknown, RegExp]> = [
    ['sqliteStore({ path, tabel })', () => sqliteStore({ path: ':memory:', tabel: 'x' } as never), /^coatcheck: sqliteStore: unknown option tabel: did you mean table\? \(options here: path, database, table, /],
    ['postgresStore({ connectionString, tabel })', () => postgresStore({ connectionString: PG_URL, tabel: 'x' } as never), /^coatcheck: postgresStore: unknown option tabel: did you mean table\?/],
    ['redisStore({ url, prefx })', () => redisStore({ url: REDIS_NOWHERE, prefx: 'x' } as never), /^coatcheck: redisStore: unknown option prefx: did you mean prefix\?/],
    ['tieredStore({ …, cacheTTL })', () => tieredStore({ cache: memoryStore(), durable: memoryStore(), cacheTTL: 5 } as never), /^coatcheck: tieredStore: unknown option cacheTTL: did you mean cacheTtl\?/],
    ['memoryStore({ maxEntry })', () => memoryStore({ maxEntry: 5 } as never), /^coatcheck: memoryStore: unknown option maxEntry: did you mean maxEntries\?/],
    ['connectStore(store, { queueTimout })', () => connectStore(innerStore, { queueTimout: 5 } as never), /^coatcheck: connectStore: unknown option queueTimout: did you mean queueTimeout\?/],
    ['cookieStore({ secrets, revokeOnLogut })', () => cookieStore({ secrets: SECRETS, revokeOnLogut: false } as never), /^coatcheck: cookieStore: unknown option revokeOnLogut: did you mean revokeOnLogout\?/],
  ];
  for (const [name, run, pattern] of typos) {
    it(`${name}: ConfigError naming the factory, the option and the closest name`, () => refused(run, pattern));
  }

  it('sqliteStore({ filename }) says to use path, and opens nothing (it used to open ./data/sessions.db)', () => {
    const cwd = process.cwd();
    const defaultFile = join(cwd, 'data', 'sessions.db');
    const existed = existsSync(defaultFile);
    refused(() => sqliteStore({ filename: join(dir, 'x.db') } as never), /^coatcheck: sqliteStore: unknown option filename: use path \(the database file\)/);
    assert.equal(existsSync(join(dir, 'x.db')), false);
    assert.equal(existsSync(defaultFile), existed);
  });

  it('cookieStore({ secrets, maxAge }) says where session lifetimes are set', () => {
    refused(() => cookieStore({ secrets: SECRETS, maxAge: 5 } as never), /^coatcheck: cookieStore: unknown option maxAge: session lifetimes are createSessions options \(idleTimeout, absoluteTimeout/);
  });

  it('names other session libraries’ options with what to use instead', () => {
    refused(() => postgresStore({ connectionString: PG_URL, tableName: 'x' } as never), /postgresStore: unknown option tableName: use table/);
    refused(() => postgresStore({ conString: PG_URL } as never), /postgresStore: unknown option conString: use connectionString/);
    refused(() => redisStore({ url: REDIS_NOWHERE, keyPrefix: 'x:' } as never), /redisStore: unknown option keyPrefix: use prefix/);
    refused(() => redisStore({ url: REDIS_NOWHERE, ttl: 60 } as never), /redisStore: unknown option ttl: session lifetimes are createSessions options/);
    refused(() => cookieStore({ password: SECRETS[0] } as never), /cookieStore: unknown option password: use secrets/);
    refused(() => connectStore(innerStore, { prefix: 'sess:' } as never), /connectStore: unknown option prefix: give prefix to the wrapped store's own constructor/);
  });

  it('storeFromUrl refuses unknown option names too', async () => {
    await assert.rejects(storeFromUrl('memory:', { secret: SECRETS[0] } as never), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /^coatcheck: storeFromUrl: unknown option secret: use secrets/);
      return true;
    });
    await assert.rejects(storeFromUrl('memory:', 'x' as never), /storeFromUrl: options must be an object, got a string/);
  });

  it('storeFromUrl refuses a missing URL instead of opening a local SQLite file (an unset variable in a deployment)', async () => {
    const unset: string | undefined = process.env.COATCHECK_TEST_NO_SUCH_VARIABLE;
    await assert.rejects(storeFromUrl(unset as string), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /storeFromUrl\(url\): the URL is missing .*sqlite:\.\/data\/sessions\.db/);
      return true;
    });
  });

  it('an option present with the value undefined is accepted where the factory takes it (exactOptionalPropertyTypes, values from the environment)', async () => {
    const env: Record<string, string | undefined> = {};
    const stores: Store[] = [
      sqliteStore({ path: ':memory:', table: env.TABLE }),
      postgresStore({ connectionString: PG_URL, table: env.TABLE, schema: env.SCHEMA }),
      memoryStore({ maxEntries: undefined, sweepInterval: undefined }),
      tieredStore({ cache: memoryStore(), durable: memoryStore(), cacheTtl: undefined }),
      connectStore(innerStore, { name: undefined, nativeTtl: undefined }),
    ];
    for (const store of stores) await store.close();
    cookieStore({ secrets: SECRETS, revocations: undefined, revokeOnLogout: undefined });
  });

  it('does not look into the driver objects handed over (client, pool, database)', async () => {
    const client = new Redis(REDIS_NOWHERE, { lazyConnect: true, keepAlive: 1_000, maxRetriesPerRequest: 1 });
    const pool = new pg.Pool({ connectionString: PG_URL, idleTimeoutMillis: 1_000, application_name: 'factory-options-test' });
    const database = new Database(':memory:', { timeout: 1_000 });
    const stores = [redisStore({ client }), postgresStore({ pool }), sqliteStore({ database })];
    for (const store of stores) await store.close();
    client.disconnect();
    await pool.end();
    database.close();
  });
});

describe('store factories called without options, or with something else', () => {
  it('redisStore() is a ConfigError, not a TypeError reading prefix', () => {
    refused(() => (redisStore as (options?: unknown) => Store)(), /^coatcheck: redisStore: options are required: redisStore\(\{ url: /);
  });

  it('every factory that needs options says so; memoryStore() and connectStore(store) need none', async () => {
    refused(() => (postgresStore as (options?: unknown) => Store)(), /^coatcheck: postgresStore: options are required/);
    refused(() => (cookieStore as (options?: unknown) => unknown)(), /^coatcheck: cookieStore: options are required: cookieStore\(\{ secrets: /);
    refused(() => (tieredStore as (options?: unknown) => Store)(), /^coatcheck: tieredStore: options are required/);
    const memory = memoryStore();
    const connect = connectStore(innerStore);
    await memory.close();
    await connect.close();
  });

  it('a non-object is refused, naming what was given (never the value: a URL string may hold a password)', () => {
    const cases: Array<[string, () => unknown, RegExp]> = [
      ['redisStore(url)', () => redisStore('redis://user:hunter2@127.0.0.1:6379' as never), /^coatcheck: redisStore: options must be an object, got a string: redisStore\(\{ url: /],
      ['postgresStore(url)', () => postgresStore('postgres://user:hunter2@localhost/db' as never), /^coatcheck: postgresStore: options must be an object, got a string/],
      ['sqliteStore(path)', () => sqliteStore(join(dir, 'y.db') as never), /^coatcheck: sqliteStore: options must be an object, got a string: sqliteStore\(\{ path: /],
      ['sqliteStore(null)', () => sqliteStore(null as never), /sqliteStore: options must be an object, got null/],
      ['memoryStore(1000)', () => memoryStore(1_000 as never), /memoryStore: options must be an object, got a number/],
      ['cookieStore(secrets)', () => cookieStore(SECRETS as never), /cookieStore: options must be an object, got an array/],
      ['tieredStore(null)', () => tieredStore(null as never), /tieredStore: options must be an object, got null/],
      ['connectStore(store, true)', () => connectStore(innerStore, true as never), /connectStore: options must be an object, got a boolean/],
    ];
    for (const [name, run, pattern] of cases) {
      assert.throws(run, (error: unknown) => {
        assert.ok(error instanceof ConfigError, name);
        assert.match(error.message, pattern, name);
        assert.doesNotMatch(error.message, /hunter2/, name);
        return true;
      });
    }
  });
});

describe('redisStore url', () => {
  it('refuses a scheme other than redis: or rediss: (ioredis would read http as a host name), showing only the scheme', () => {
    refused(() => redisStore({ url: 'http://127.0.0.1:6379' }), /^coatcheck: redisStore: url must start with redis:\/\/ or rediss:\/\/ \(TLS\), or be a Unix socket path, got scheme http:/);
    refused(() => redisStore({ url: 'https://user:hunter2@cache.example:6379' }), /got scheme https:/);
    assert.throws(() => redisStore({ url: 'https://user:hunter2@cache.example:6379' }), (error: Error) => !error.message.includes('hunter2'));
    for (const url of ['127.0.0.1:6379', 'localhost:6379', 'localhost']) refused(() => redisStore({ url }), /got no scheme; e\.g\. redis:\/\/127\.0\.0\.1:6379\/0$/);
    refused(() => redisStore({ url: '' }), /url must be a non-empty string/);
  });

  it('takes redis://, rediss:// (any letter case) and a Unix socket path', async () => {
    for (const url of [REDIS_NOWHERE, 'REDIS://127.0.0.1:1', 'rediss://127.0.0.1:1', '/tmp/coatcheck-no-such-redis.sock']) {
      const store = redisStore({ url });
      await store.close();
    }
  });
});

describe('createSessions with a hand-written store', () => {
  const noop = () => {
    throw new Error('not called');
  };

  it('names the methods an incomplete store lacks', () => {
    refused(
      () => createSessions({ store: { name: 'mine', get: noop, create: noop } as never }),
      /^coatcheck: `store` does not implement the Store contract: it has no update\(\), touch\(\), destroy\(\), destroyByUser\(\), destroyAll\(\), listByUser\(\), deleteExpired\(\) and close\(\)/,
    );
    const nearly = { ...memoryStore({ sweepInterval: 0 }) } as Partial<Store>;
    delete nearly.update;
    refused(() => createSessions({ store: nearly as Store }), /it has no update\(\) \(see the Store interface/);
  });

  it('names the methods an incomplete cookie (client) store lacks', () => {
    refused(() => createSessions({ store: { kind: 'client', name: 'mine', seal: noop } as never }), /`store` does not implement the ClientStore contract: it has no unseal\(\) and close\(\)/);
  });

  it('says to call a factory passed instead of its store, and that a store is required', () => {
    refused(() => createSessions({ store: memoryStore as never }), /`store` must be a store object, got the function memoryStore: call it \(store: memoryStore\(…\)\)/);
    refused(() => createSessions({} as never), /`store` is required/);
  });
});

// A typo no longer reaches a server; a known option left undefined still does.
const redisUp = await serviceAvailable('redis');
describe('redisStore on a server', () => {
  it('redisStore({ url, prefix: undefined }) opens on the default prefix', { skip: !redisUp && 'Redis not reachable' }, async () => {
    const store = redisStore({ url: REDIS_URL, prefix: undefined });
    try {
      assert.equal(await store.get('factory-options-missing'), null);
    } finally {
      await store.close();
    }
  });
});
