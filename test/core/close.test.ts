/**
 * `sessions.close()`: store calls already in flight finish before the store goes away (a
 * PostgreSQL pool ended under them used to fail every one), and calls made afterwards fail with
 * a StoreError (503) on every store, the memory store included (it used to keep serving).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createSessions, StoreError } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import { StoreCaller } from '../../src/core/store-call.js';
import { postgresStore } from '../../src/stores/postgres.js';
import type { Store } from '../../src/stores/types.js';
import { POSTGRES_URL, serviceAvailable } from '../helpers/services.js';

const request = (cookieHeader?: string) => ({ cookieHeader, https: false, ip: '192.0.2.1', userAgent: 'test-agent' });

describe('sessions.close()', () => {
  it('later store calls fail with a StoreError (503) on the memory store too', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }) });
    const first = sessions.open(request());
    await first.load();
    first.set('n', 1);
    const result = await first.commit(200);
    const cookie = (result?.setCookie[0] ?? '').split(';')[0];
    await sessions.close();
    const later = sessions.open(request(cookie));
    await assert.rejects(
      () => later.load(),
      (error: unknown) => error instanceof StoreError && error.code === 'ERR_STORE' && error.status === 503 && /close/.test(error.message),
    );
    await assert.rejects(() => sessions.killSessionsByUser('someone'), StoreError);
    // Idempotent.
    await sessions.close();
  });

  it('refuses calls made while it waits for those in flight, and starts no background sweep', async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const calls: string[] = [];
    const store = Object.assign(Object.create(inner) as Store, {
      name: 'slow-memory',
      async create(record: Parameters<Store['create']>[0]) {
        calls.push('create');
        await held;
        return inner.create(record);
      },
      async deleteExpired(sweep: Parameters<Store['deleteExpired']>[0]) {
        calls.push('deleteExpired');
        return inner.deleteExpired(sweep);
      },
    });
    const errors: unknown[] = [];
    const sessions = createSessions({ store, cleanupProbability: 1 });
    sessions.events.on('storeError', ({ error }) => errors.push(error));
    const first = sessions.open(request());
    await first.load();
    first.set('n', 1);
    const committing = first.commit(200); // in flight: held
    const closed = sessions.close();
    const later = sessions.open(request());
    await later.load();
    later.set('n', 2);
    await assert.rejects(() => later.commit(200), (error: unknown) => error instanceof StoreError && /closed/.test(error.message));
    release();
    await committing; // the call in flight finished
    await closed;
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(calls, ['create'], 'no sweep was started once close() began');
    assert.equal(errors.filter((e) => !/closed/.test(String(e))).length, 0);
  });

  it('drops a background sweep scheduled just before close(): no storeError (an outage warning) after closing', async () => {
    const sessions = createSessions({ store: memoryStore({ sweepInterval: 0 }), cleanupProbability: 1 });
    const errors: unknown[] = [];
    sessions.events.on('storeError', ({ error }) => errors.push(error));
    const session = sessions.open(request());
    await session.load();
    session.set('a', 1);
    await session.commit(200); // schedules a sweep for the next turn of the event loop
    await sessions.close();
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(errors, []);
  });

  it('releases its deadline timer once closed and idle, so a closed engine can be collected at once', async () => {
    const caller = new StoreCaller(memoryStore({ sweepInterval: 0 }), 5_000);
    await caller.call('get', () => new Promise((resolve) => setTimeout(resolve, 5)));
    assert.equal(caller.armed, true, 'the deadline timer stays armed after the call, as designed (lazily re-armed)');
    caller.close();
    assert.equal(caller.armed, false);
  });

  it('bounds a slow store close() by storeTimeout; a second close() waits for that same close', async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    let closes = 0;
    let finish!: () => void;
    const store = Object.assign(Object.create(inner) as Store, {
      name: 'slow-close',
      close: () => {
        closes++;
        return new Promise<void>((resolve) => (finish = resolve));
      },
    });
    const sessions = createSessions({ store, storeTimeout: 150 });
    const started = Date.now();
    await assert.rejects(() => sessions.close(), (error: unknown) => error instanceof StoreError && error.code === 'ERR_STORE_TIMEOUT');
    assert.ok(Date.now() - started < 2_000);
    let settled = false;
    const again = sessions.close().then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(settled, false, 'the store has not closed yet: a second close() does not pretend it has');
    finish();
    await again;
    assert.equal(closes, 1, 'the store was asked to close once');
    await inner.close();
  });
});

const postgresUp = await serviceAvailable('postgres');

describe('sessions.close() on PostgreSQL', { skip: postgresUp ? false : 'PostgreSQL not reachable' }, () => {
  const table = `close_test_${randomBytes(4).toString('hex')}`;
  let admin: pg.Client;

  before(async () => {
    admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
  });
  after(async () => {
    await admin.query(`DROP TABLE IF EXISTS "${table}"`);
    await admin.end();
  });

  it('lets commits already sent finish before ending the pool: all 20 saved', async () => {
    const store: Store = postgresStore({ connectionString: POSTGRES_URL, table, maxConnections: 4 });
    await (store as Store & { migrate(): Promise<void> }).migrate();
    const sessions = createSessions({ store });
    const opened = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const session = sessions.open(request());
        await session.load();
        session.set('i', i);
        return session;
      }),
    );
    // Twenty commits in flight (four connections: most wait for one), then close at once.
    const commits = opened.map((session) => session.commit(200));
    const closed = sessions.close();
    const results = await Promise.allSettled(commits);
    await closed;
    assert.deepEqual(
      results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
      [],
      'no commit sent before close() failed',
    );
    const { rows } = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM "${table}"`);
    assert.equal(Number(rows[0]?.n), 20);
  });
});
