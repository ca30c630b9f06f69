/**
 * The Redis store against a PRIVATE redis-server (server-wide commands: CLIENT PAUSE, ACL):
 * - its own command timeout (src/stores/redis-deadlines.ts), which replaces ioredis' per-command
 *   timers on the connection the store opens: a command Redis does not answer in time fails with
 *   ioredis' own message; answered commands are never failed afterwards; the store works again
 *   once Redis answers;
 * - an error inside the update script other than WRONGTYPE (an ACL refusing a command) is an
 *   outage, not "no session".
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { failCommandsAfter } from '../../src/stores/redis-deadlines.js';
import { redisStore } from '../../src/stores/redis.js';
import type { Store } from '../../src/stores/types.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/private-redis.js';
import { redisServerInstalled } from '../helpers/redis-cluster.js';

const installed = redisServerInstalled();
if (!installed && process.env.CI === 'true') throw new Error('redis-server is not installed (CI=true: a missing service is a failure)');
if (!installed) console.warn('\n!!! SKIPPING REDIS DEADLINE TESTS: redis-server / redis-cli not installed\n');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('redis store: command timeout with one timer per connection', { skip: installed ? false : 'redis-server not installed' }, () => {
  let redis: PrivateRedis;

  before(async () => {
    redis = await startPrivateRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it('a command Redis does not answer fails after commandTimeout, and the store works again after', async () => {
    const store: Store = redisStore({ url: redis.url, prefix: 'deadline-pause:', commandTimeout: 300 });
    try {
      assert.equal(await store.get('b'.repeat(43)), null); // connected
      await redis.cli('CLIENT', 'PAUSE', '2500', 'ALL');
      const started = Date.now();
      await assert.rejects(async () => store.get('c'.repeat(43)), /Command timed out/);
      const waited = Date.now() - started;
      assert.ok(waited >= 250 && waited < 1_500, `failed after ${waited} ms (commandTimeout 300, pause 2500)`);
      await sleep(2_700); // the pause is over
      assert.equal(await store.get('d'.repeat(43)), null);
    } finally {
      await store.close();
    }
  });

  it('answered commands are never failed later, and a slow one among them still is', async () => {
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, enableAutoPipelining: false });
    // Generous: a loaded CI machine must answer 500 small commands well within it.
    const { stop } = failCommandsAfter(client, 1_000);
    try {
      // 500 answered commands: none may be rejected once its deadline passes.
      const answered = await Promise.all(Array.from({ length: 500 }, (_, i) => client.set(`deadline:k${i % 10}`, String(i))));
      assert.equal(answered.filter((r) => r !== 'OK').length, 0);
      await sleep(1_200);
      assert.equal(await client.get('deadline:k3'), '493');
      // A command Redis holds past the deadline (a blocking pop with nothing to pop, answered
      // only after 2 s) fails at the deadline.
      const started = Date.now();
      const blocked = client.blpop('deadline:empty-list', 2).then(
        () => 'answered',
        (error: Error) => error.message,
      );
      assert.equal(await blocked, 'Command timed out');
      const waited = Date.now() - started;
      assert.ok(waited >= 950 && waited < 1_900, `failed after ${waited} ms (timeout 1000, Redis answers at 2000)`);
    } finally {
      stop();
      await client.del(...Array.from({ length: 10 }, (_, i) => `deadline:k${i}`));
      client.disconnect();
    }
  });

  it('a command answered with an error does not keep the commands after it watched until its deadline', async () => {
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, enableAutoPipelining: false });
    const watch = failCommandsAfter(client, 5_000);
    try {
      await client.ping();
      // An error reply (ioredis marks only successes as resolved), then answered commands.
      await assert.rejects(client.call('NO-SUCH-COMMAND'), /unknown command/i);
      await Promise.all(Array.from({ length: 200 }, () => client.ping()));
      await sleep(100); // no longer merely in flight: a later answer shows it was answered
      await client.ping();
      assert.equal(watch.pending(), 0);
    } finally {
      watch.stop();
      client.disconnect();
    }
  });

  it('drops a connection that stays open but answers nothing, so its queued commands are not kept for hours', async () => {
    const { startTcpProxy } = await import('../helpers/tcp-proxy.js');
    const port = Number(new URL(redis.url).port);
    const proxy = await startTcpProxy({ host: '127.0.0.1', port });
    const client = new Redis(`redis://127.0.0.1:${proxy.port}`, { maxRetriesPerRequest: 1, enableAutoPipelining: false, autoResendUnfulfilledCommands: false });
    const watch = failCommandsAfter(client, 200);
    let closed = 0;
    client.on('close', () => closed++);
    try {
      await client.ping();
      proxy.setMode('stall');
      const outcomes = await Promise.all(Array.from({ length: 50 }, () => client.ping().then(() => 'answered', (e: Error) => e.message)));
      assert.ok(outcomes.every((o) => o === 'Command timed out'), outcomes.join(', '));
      await sleep(50);
      // Closed (what it held is released: the store fails it at once on 'reconnecting'), not
      // left 'ready' on a socket that answers nothing until TCP gives up.
      assert.equal(closed, 1, 'the silent connection was dropped');
      assert.notEqual(client.status, 'ready');
      proxy.setMode('pass');
      await sleep(300);
      assert.equal(await client.ping(), 'PONG', 'and made again');
    } finally {
      watch.stop();
      client.disconnect();
      await proxy.close();
    }
  });

  it('does not take error replies followed by answers, with newer commands in flight, for a silent connection', async () => {
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, enableAutoPipelining: false });
    let closed = 0;
    client.on('close', () => closed++);
    await client.ping();
    const watch = failCommandsAfter(client, 600);
    try {
      const started = Date.now();
      // t=0: error replies (never marked resolved by ioredis), then answered commands.
      await Promise.all(Array.from({ length: 20 }, () => client.call('NO-SUCH-COMMAND').catch(() => 'error')));
      await Promise.all(Array.from({ length: 20 }, () => client.ping()));
      // t≈400-650: the server pauses; commands sent meanwhile are in flight when the error
      // replies' deadlines pass (t=600), and answered well before their own (t≈1100).
      await sleep(Math.max(0, 380 - (Date.now() - started)));
      await redis.cli('CLIENT', 'PAUSE', '250', 'ALL');
      const inFlight = Promise.all(Array.from({ length: 10 }, () => client.ping()));
      assert.deepEqual(new Set(await inFlight), new Set(['PONG']));
      await sleep(100);
      assert.equal(closed, 0, 'the connection was kept');
    } finally {
      watch.stop();
      client.disconnect();
    }
  });

  it('a command lost with an earlier connection does not get the new, idle one dropped at its deadline', async () => {
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, enableAutoPipelining: false, autoResendUnfulfilledCommands: false });
    let closed = 0;
    client.on('close', () => closed++);
    await client.client('SETNAME', 'deadline-lost');
    const watch = failCommandsAfter(client, 500);
    try {
      const lost = client.blpop('deadline:never', 5).then(
        () => 'answered',
        (error: Error) => error.message,
      );
      await sleep(50);
      await redis.cli('CLIENT', 'KILL', 'TYPE', 'normal'); // the connection goes, the BLPOP with it
      await sleep(200);
      assert.equal(client.status, 'ready', 'made again');
      const outcome = await Promise.race([lost, sleep(2_000).then(() => 'still pending after 2 s')]);
      assert.equal(outcome, 'Command timed out', 'the lost command fails at its deadline');
      await sleep(200);
      assert.equal(closed, 1, 'and the new connection, idle, is kept');
      assert.equal(await client.ping(), 'PONG');
    } finally {
      watch.stop();
      client.disconnect();
    }
  });

  it('stop() leaves later commands alone', async () => {
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1, enableAutoPipelining: false });
    const { stop } = failCommandsAfter(client, 200);
    stop();
    try {
      // BLPOP with a 1 s server-side timeout answers null after 1 s: not failed at 200 ms.
      assert.equal(await client.blpop('deadline:empty-list', 1), null);
    } finally {
      client.disconnect();
    }
  });
});

describe('redis store: errors inside the update script', { skip: installed ? false : 'redis-server not installed' }, () => {
  let redis: PrivateRedis;
  before(async () => {
    redis = await startPrivateRedis();
    // A user the server refuses HMGET (the script's first command): an ACL mistake, not "no session".
    await redis.cli('ACL', 'SETUSER', 'nohmget', 'on', 'nopass', '~*', '+@all', '-hmget');
  });
  after(async () => {
    await redis?.stop();
  });

  it('an update refused by the ACL fails (an outage), it does not answer "session gone"', async () => {
    const admin = redisStore({ url: redis.url, prefix: 'acl:' });
    const limited = redisStore({ url: redis.url.replace('redis://', 'redis://nohmget:x@'), prefix: 'acl:' });
    try {
      const now = Date.now();
      const id = 'e'.repeat(43);
      await admin.create({ id, userId: null, data: { a: 1 }, meta: {}, createdAt: now, lastSeenAt: now, expiresAt: now + 60_000, ip: null, userAgent: null });
      await assert.rejects(async () => limited.update(id, { lastSeenAt: now + 1, expiresAt: now + 60_001, data: { set: { b: 2 } } }), /can't run this command/);
      assert.deepEqual((await admin.get(id))?.data, { a: 1 });
    } finally {
      await admin.close();
      await limited.close();
    }
  });
});

describe('redis store: a server that may evict keys', { skip: installed ? false : 'redis-server not installed' }, () => {
  it('warns once (COATCHECK_REDIS_EVICTION) under allkeys-lru, and not under noeviction', async () => {
    const lru = await startPrivateRedis({ args: ['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru'] });
    const safe = await startPrivateRedis();
    const warnings: { code?: string; message: string }[] = [];
    const listen = (warning: Error & { code?: string }) => warnings.push({ code: warning.code, message: warning.message });
    process.on('warning', listen);
    try {
      const evicting = redisStore({ url: lru.url, prefix: 'evict:' });
      const fine = redisStore({ url: safe.url, prefix: 'fine:' });
      await evicting.get('f'.repeat(43));
      await fine.get('f'.repeat(43));
      await sleep(300); // the INFO answer and the warning's own tick
      await evicting.close();
      await fine.close();
      const ours = warnings.filter((w) => w.code === 'COATCHECK_REDIS_EVICTION');
      assert.equal(ours.length, 1, JSON.stringify(warnings));
      assert.match(ours[0]?.message ?? '', /allkeys-lru.*prefix evict:|prefix evict:.*allkeys-lru/s);
    } finally {
      process.off('warning', listen);
      await lru.stop();
      await safe.stop();
    }
  });
});

describe('redis store: an app clock that differs from Redis\'s', { skip: installed ? false : 'redis-server not installed' }, () => {
  it('a session signed in by an app two hours behind Redis lives for its idle timeout, not zero', async () => {
    const redis = await startPrivateRedis();
    const { createSessions } = await import('../../src/index.js');
    const { ManualClock } = await import('../helpers/clock.js');
    const clock = new ManualClock(Date.now() - 2 * 3600_000);
    const store = redisStore({ url: redis.url, prefix: 'skew:' });
    const sessions = createSessions({ store, clock, idleTimeout: 3600 });
    const admin = new Redis(redis.url);
    try {
      const first = sessions.open({ cookieHeader: undefined, https: false, ip: '192.0.2.1', userAgent: 'ua' });
      await first.load();
      await first.login('ada');
      const cookie = ((await first.commit(200))?.setCookie[0] ?? '').split(';')[0];
      const pttl = await admin.pttl(`skew:s:{${first.handle as string}}`);
      assert.ok(pttl > 3_500_000 && pttl <= 3_600_000, `PTTL ${pttl} ms`);
      const indexTtl = await admin.pttl('skew:u:{ada}');
      assert.ok(indexTtl > 3_500_000, `index PTTL ${indexTtl} ms`);
      clock.advance(60);
      const next = sessions.open({ cookieHeader: cookie, https: false, ip: '192.0.2.1', userAgent: 'ua' });
      await next.load();
      assert.equal(next.userId, 'ada');
      await next.commit(200);
      assert.equal(await admin.zcard('skew:u:{ada}'), 1, 'the user index still lists the session');
    } finally {
      admin.disconnect();
      await sessions.close();
      await redis.stop();
    }
  });
});

describe('redis store: a command whose connection is lost before Redis answers', { skip: installed ? false : 'redis-server not installed' }, () => {
  it('fails at once (a 503), not after commandTimeout, when the server comes back at once', async () => {
    const server = await startPrivateRedis({ args: ['--enable-debug-command', 'yes'] });
    const store = redisStore({ url: server.url, prefix: 'lost:', commandTimeout: 3_000 });
    const blocker = new Redis(server.url);
    try {
      assert.equal(await store.get('g'.repeat(43)), null);
      // Redis busy for 300 ms: the store's next command is sent and waits for its answer.
      blocker.call('DEBUG', 'SLEEP', '0.3').catch(() => undefined);
      await sleep(30);
      const started = performance.now();
      const pending = Promise.resolve(store.get('h'.repeat(43))).then(
        () => 'answered',
        (error: Error) => error.message,
      );
      await sleep(60);
      await server.kill();
      await server.start();
      const outcome = await pending;
      const waited = performance.now() - started;
      assert.match(outcome, /lost before it answered/);
      assert.ok(waited < 2_000, `failed after ${Math.round(waited)} ms (commandTimeout 3000)`);
      assert.equal(await store.get('i'.repeat(43)), null, 'and the store works again');
    } finally {
      blocker.disconnect();
      await store.close();
      await server.stop();
    }
  });
});

describe('redis store: a primary demoted behind the same address', { skip: installed ? false : 'redis-server not installed' }, () => {
  it('fails writes while READONLY without stacking socket listeners, and writes again once it is primary', async () => {
    const primary = await startPrivateRedis();
    const demoted = await startPrivateRedis();
    const warnings: string[] = [];
    const listen = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', listen);
    const store = redisStore({ url: demoted.url, prefix: 'ro:' });
    try {
      const now = Date.now();
      const id = 'j'.repeat(43);
      await store.create({ id, userId: null, data: { a: 1 }, meta: {}, createdAt: now, lastSeenAt: now, expiresAt: now + 60_000, ip: null, userAgent: null });
      await demoted.cli('REPLICAOF', '127.0.0.1', String(primary.port)); // now a read-only replica (and emptied)
      await sleep(300);
      const outcomes = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          Promise.resolve(store.update(id, { data: { set: { b: i } }, lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 })).then(
            (ok) => (ok ? 'saved' : 'no session'),
            (error: Error) => (/READONLY/.test(error.message) ? 'refused' : error.message),
          ),
        ),
      );
      assert.ok(outcomes.every((o) => o === 'refused' || o === 'no session'), JSON.stringify(outcomes));
      assert.ok(outcomes.includes('refused'), JSON.stringify(outcomes));
      await demoted.cli('REPLICAOF', 'NO', 'ONE');
      await sleep(1_100); // past the once-a-second reconnect limit
      await store.create({ id: 'k'.repeat(43), userId: null, data: { c: 1 }, meta: {}, createdAt: Date.now(), lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000, ip: null, userAgent: null });
      assert.deepEqual((await store.get('k'.repeat(43)))?.data, { c: 1 });
      assert.deepEqual(warnings.filter((w) => /MaxListeners/.test(w)), []);
    } finally {
      process.off('warning', listen);
      await store.close();
      await primary.stop();
      await demoted.stop();
    }
  });
});

describe('redis store: a session hash whose index field is not a number', { skip: installed ? false : 'redis-server not installed' }, () => {
  it('a save extends the index instead of failing the script (found by the fuzz test)', async () => {
    const server = await startPrivateRedis();
    const { createSessions } = await import('../../src/index.js');
    const { hashToken } = await import('../../src/core/token.js');
    const sessions = createSessions({ store: redisStore({ url: server.url, prefix: 'nan:' }) });
    const admin = new Redis(server.url);
    try {
      const first = sessions.open({ cookieHeader: undefined, https: false, ip: '192.0.2.1', userAgent: 'ua' });
      await first.load();
      await first.login('alice');
      const token = ((await first.commit(200))?.setCookie[0] ?? '').split(';')[0]?.slice('sid='.length) as string;
      // Foreign data: an empty index field, and a deadline 3 s away (so the next request touches).
      await admin.hset(`nan:s:{${hashToken(token)}}`, 'x', '', 'e', String(Date.now() + 3_000));
      const next = sessions.open({ cookieHeader: `sid=${token}`, https: false, ip: '192.0.2.1', userAgent: 'ua' });
      await next.load();
      assert.equal(next.userId, 'alice');
      await next.commit(200); // used to fail: the script compared the empty field with a number
      assert.equal(await admin.zscore('nan:u:{alice}', hashToken(token)) !== null, true);
    } finally {
      admin.disconnect();
      await sessions.close();
      await server.stop();
    }
  });
});
