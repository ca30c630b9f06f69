/**
 * PostgreSQL outages under load. The shared server is never restarted (other tests use it):
 * the store talks to it through a loopback TCP proxy of our own (test/helpers/tcp-proxy.ts)
 * that can stall traffic, reset every connection and refuse new ones. While browsers keep
 * writing through a real HTTP server:
 *
 * - stall: PostgreSQL stops answering (connections stay open) for 3 s;
 * - reset + refuse: every connection is reset and new ones are refused for 2 s (a crash);
 * - drop: every connection is closed mid-flight once.
 *
 * Every request gets 200 or 503, never a 500 or a hang past `storeTimeout`; a 503 carries no
 * session Set-Cookie; afterwards the same cookies work and no acknowledged write is lost.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createSessions, type Sessions } from '../../src/index.js';
import { postgresStore } from '../../src/stores/postgres.js';
import { assertFailedClosed, assertNothingLost, call, type CounterApp, CounterClient, keepWriting, type Reply, sleep, startCounterApp, waitForRecovery } from '../helpers/reliability-app.js';
import { POSTGRES_URL, serviceAvailable } from '../helpers/services.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const STORE_TIMEOUT = 1_500;
const QUERY_TIMEOUT = 1_000;
const SLACK = 1_500;
const DEADLINE = 10_000;

const up = await serviceAvailable('postgres');

describe('reliability: PostgreSQL outages through a real HTTP server (via a faulty TCP proxy)', { skip: up ? false : 'PostgreSQL not reachable' }, () => {
  const table = `cc_reliability_${randomBytes(4).toString('hex')}`;
  let proxy: TcpProxy;
  let sessions: Sessions;
  let app: CounterApp;

  before(async () => {
    const target = new URL(POSTGRES_URL);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const viaProxy = new URL(POSTGRES_URL);
    viaProxy.port = String(proxy.port);
    const store = postgresStore({
      connectionString: viaProxy.toString(),
      table,
      queryTimeout: QUERY_TIMEOUT,
      connectTimeout: QUERY_TIMEOUT,
      maxConnections: 4,
    });
    await store.migrate();
    sessions = createSessions({ store, storeTimeout: STORE_TIMEOUT });
    app = await startCounterApp(sessions);
  });
  after(async () => {
    proxy?.setMode('pass');
    await app?.close();
    await sessions?.close();
    await proxy?.close();
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    await admin.query(`DROP TABLE IF EXISTS "${table}"`);
    await admin.query('DELETE FROM coatcheck_schema WHERE table_name = $1', [table]).catch(() => {});
    await admin.end();
  });

  async function underLoad(name: string, fault: () => Promise<void>): Promise<{ clients: CounterClient[]; replies: Reply[]; recovered: boolean; faultEnded: number }> {
    const clients = Array.from({ length: 6 }, (_, i) => new CounterClient(app.url, `${name}-${i}`, DEADLINE));
    for (const client of clients) await client.login();
    let release = () => {};
    const writing = keepWriting(clients, new Promise<void>((resolve) => (release = resolve)));
    await sleep(300);
    await fault();
    const faultEnded = Date.now();
    const recovered = await waitForRecovery(clients, 15_000);
    await sleep(300);
    release();
    await writing;
    return { clients, replies: clients.flatMap((c) => c.replies), recovered, faultEnded };
  }

  it('stall (the server stops answering for 3 s): 503 within storeTimeout, then recovery, nothing lost', async (t) => {
    let visitor: Reply | undefined;
    const run = await underLoad('stall', async () => {
      proxy.setMode('stall');
      await sleep(1_000);
      visitor = await call(app.url, 'POST', '/login?user=newcomer', undefined, DEADLINE);
      await sleep(2_000);
      proxy.setMode('pass');
    });
    assert.ok(run.recovered, 'the app recovers once PostgreSQL answers again');
    const { failed, slowest } = assertFailedClosed([...run.replies, visitor as Reply], 'stall', STORE_TIMEOUT + SLACK);
    assert.equal(visitor?.status, 503, 'no session can be created while the database is stalled');
    assert.deepEqual(visitor?.sessionCookies, []);
    assert.ok(failed >= run.clients.length, `the stall was seen (${failed} requests answered 503)`);
    assert.ok(run.replies.some((r) => r.status === 200 && r.at > run.faultEnded), 'writes succeed again');
    await assertNothingLost(run.clients, 'stall');
    t.diagnostic(`${run.replies.length} requests, ${failed} answered 503, slowest ${slowest} ms`);
  });

  it('reset every connection and refuse new ones for 2 s (a crash): fast 503s, then recovery, nothing lost', async (t) => {
    const run = await underLoad('reset', async () => {
      proxy.setMode('refuse');
      proxy.reset();
      await sleep(2_000);
      proxy.setMode('pass');
    });
    assert.ok(run.recovered, 'the app recovers once PostgreSQL accepts connections again');
    const { failed, slowest } = assertFailedClosed(run.replies, 'reset', STORE_TIMEOUT + SLACK);
    assert.ok(failed >= run.clients.length, `the outage was seen (${failed} requests answered 503)`);
    // Refused connections fail at once: no waiting for the timeout.
    const during = run.replies.filter((r) => r.status === 503);
    const median = [...during.map((r) => r.ms)].sort((a, b) => a - b)[during.length >> 1] ?? 0;
    assert.ok(median < QUERY_TIMEOUT, `a refused connection fails fast (median 503 took ${median} ms)`);
    await assertNothingLost(run.clients, 'reset');
    t.diagnostic(`${run.replies.length} requests, ${failed} answered 503 (median ${median} ms), slowest ${slowest} ms`);
  });

  it('drop every connection mid-query while stalled: 503s, then recovery, nothing lost', async (t) => {
    const run = await underLoad('drop', async () => {
      proxy.setMode('stall');
      await sleep(300);
      proxy.drop();
      proxy.setMode('pass');
    });
    assert.ok(run.recovered, 'the app recovers');
    const { failed, slowest } = assertFailedClosed(run.replies, 'drop', STORE_TIMEOUT + SLACK);
    assert.ok(failed >= 1, `the dropped connections were seen (${failed} requests answered 503)`);
    await assertNothingLost(run.clients, 'drop');
    t.diagnostic(`${run.replies.length} requests, ${failed} answered 503, slowest ${slowest} ms`);
  });
});
