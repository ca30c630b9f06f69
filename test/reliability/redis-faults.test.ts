/**
 * Redis outages under load, on a PRIVATE redis-server (random loopback port, append-only file
 * fsynced on every write; the shared server on 6379 is never touched):
 *
 * - `kill -9` while 8 browsers keep writing, then a restart on the same port and files;
 * - `CLIENT PAUSE 3000 ALL` (Redis answers nothing for 3 s) while they keep writing.
 *
 * Every request gets an HTTP answer: 200 or 503, never a 500 or a hang past `storeTimeout`
 * (plus scheduling slack); a 503 carries no session Set-Cookie, so browsers keep their cookies;
 * once Redis is back the same cookies work and every acknowledged write is still there.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createSessions, type Sessions } from '../../src/index.js';
import { redisStore } from '../../src/stores/redis.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/private-redis.js';
import { redisServerInstalled } from '../helpers/redis-cluster.js';
import { assertFailedClosed, assertNothingLost, call, type CounterApp, CounterClient, keepWriting, sleep, startCounterApp, waitForRecovery } from '../helpers/reliability-app.js';

const STORE_TIMEOUT = 1_500;
/** A 503 must arrive within storeTimeout plus this much scheduling slack (a loaded 2-core CI box). */
const SLACK = 1_500;
/** The client gives up after this: anything still open by then is a hang. */
const DEADLINE = 10_000;

const installed = redisServerInstalled();
if (!installed && process.env.CI === 'true') throw new Error('redis-server is not installed (CI=true: a missing service is a failure)');
if (!installed) console.warn('\n!!! SKIPPING REDIS FAULT TESTS: redis-server / redis-cli not installed\n');

describe('reliability: Redis outages through a real HTTP server', { skip: installed ? false : 'redis-server not installed' }, () => {
  let redis: PrivateRedis;
  let sessions: Sessions;
  let app: CounterApp;

  before(async () => {
    redis = await startPrivateRedis({ persist: true });
    sessions = createSessions({
      store: redisStore({ url: redis.url, prefix: 'reliability:', commandTimeout: 1_000, connectTimeout: 1_000 }),
      storeTimeout: STORE_TIMEOUT,
    });
    app = await startCounterApp(sessions);
  });
  after(async () => {
    await app?.close();
    await sessions?.close();
    await redis?.stop();
  });

  it('kill -9 mid-load: 503s without Set-Cookie, fast; same cookies work after a restart; no acknowledged write lost', async (t) => {
    const clients = Array.from({ length: 8 }, (_, i) => new CounterClient(app.url, `killed-${i}`, DEADLINE));
    for (const client of clients) await client.login();
    let release = () => {};
    const writing = keepWriting(clients, new Promise<void>((resolve) => (release = resolve)));
    await sleep(400);
    await redis.kill();
    await sleep(1_500);
    // A new visitor during the outage: no session can be created, and no cookie is handed out.
    const visitor = await call(app.url, 'POST', '/login?user=newcomer', undefined, DEADLINE);
    const visitorInc = await call(app.url, 'POST', '/inc', clients[0]?.cookie, DEADLINE);
    await redis.start();
    const restartedAt = Date.now();
    const recovered = await waitForRecovery(clients, 15_000);
    const recoveryMs = Date.now() - restartedAt;
    await sleep(300);
    release();
    await writing;

    assert.ok(recovered, 'the app recovers once Redis is back');
    const replies = [...clients.flatMap((c) => c.replies), visitor, visitorInc];
    const { failed, slowest } = assertFailedClosed(replies, 'kill -9', STORE_TIMEOUT + SLACK);
    assert.equal(visitor.status, 503);
    assert.deepEqual(visitor.sessionCookies, []);
    assert.equal(visitorInc.status, 503);
    assert.ok(failed >= 8, `the outage was seen (${failed} requests answered 503)`);
    const afterRestart = clients.flatMap((c) => c.replies).filter((r) => r.status === 200 && r.at > restartedAt);
    assert.ok(afterRestart.length > 0, 'writes succeed again after the restart');
    await assertNothingLost(clients, 'kill -9');
    t.diagnostic(`${replies.length} requests, ${failed} answered 503, slowest ${slowest} ms; recovered ${recoveryMs} ms after the restart`);
  });

  it('CLIENT PAUSE 3000 ALL: 503s within storeTimeout while paused, then the same cookies work; no acknowledged write lost', async (t) => {
    const clients = Array.from({ length: 6 }, (_, i) => new CounterClient(app.url, `paused-${i}`, DEADLINE));
    for (const client of clients) await client.login();
    let release = () => {};
    const writing = keepWriting(clients, new Promise<void>((resolve) => (release = resolve)));
    await sleep(300);
    await redis.cli('CLIENT', 'PAUSE', '3000', 'ALL');
    const pausedAt = Date.now();
    await sleep(3_400);
    await redis.cli('CLIENT', 'UNPAUSE').catch(() => '');
    const recovered = await waitForRecovery(clients, 10_000);
    await sleep(300);
    release();
    await writing;

    assert.ok(recovered, 'the app recovers once Redis answers again');
    const replies = clients.flatMap((c) => c.replies);
    const { failed, slowest } = assertFailedClosed(replies, 'CLIENT PAUSE', STORE_TIMEOUT + SLACK);
    // A write sent early in the pause cannot be answered before the pause ends: it must fail, fast.
    const early = replies.filter((r) => r.at >= pausedAt + 100 && r.at <= pausedAt + 1_500);
    assert.ok(early.length > 0, 'requests were sent during the pause');
    assert.deepEqual(early.filter((r) => r.status !== 503).map((r) => `${r.status} after ${r.ms} ms`), [], 'requests sent early in the pause fail');
    assert.ok(failed >= clients.length, `the pause was seen (${failed} requests answered 503)`);
    await assertNothingLost(clients, 'CLIENT PAUSE');
    t.diagnostic(`${replies.length} requests, ${failed} answered 503, slowest ${slowest} ms`);
  });
});
