/**
 * Bounds on what clients make every record keep, and on one-time tokens:
 * - a 12 KB User-Agent (or, behind a trusted proxy, a 12 KB X-Forwarded-For entry) is stored cut
 *   to a bounded length, and binding compares the same cut value, so the client keeps its session;
 * - beyond 50 outstanding one-time tokens the ones expiring soonest are dropped, whatever order
 *   the store returns keys in (PostgreSQL's jsonb sorts them: it used to drop a random token,
 *   possibly one issued a request earlier).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { createSessions } from '../../src/index.js';
import { postgresStore } from '../../src/stores/postgres.js';
import { setup } from '../helpers/harness.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { POSTGRES_URL, serviceAvailable } from '../helpers/services.js';

describe('client-written strings kept in records', () => {
  it('a 12 KB User-Agent and IP are stored cut to 512 / 64 characters, and binding still matches', async () => {
    const { visit, store } = setup({ binding: { ip: true, userAgent: true } });
    const userAgent = 'Mozilla/5.0 '.padEnd(12_000, 'x');
    const ip = '1'.repeat(12_000);
    const first = await visit((s) => s.login('ada'), { userAgent, ip });
    const record = await store.get(first.session.handle as string);
    assert.equal(record?.userAgent?.length, 512);
    assert.equal(record?.userAgent, userAgent.slice(0, 512));
    assert.equal(record?.ip, ip.slice(0, 64));
    const again = await visit((s) => s.userId, { userAgent, ip });
    assert.equal(again.value, 'ada');
    // A different agent sharing the first 512 characters is cut to the same value: bound alike.
    const other = await visit((s) => s.userId, { userAgent: `${userAgent.slice(0, 600)}-other`, ip });
    assert.equal(other.value, 'ada');
    const changed = await visit((s) => s.userId, { userAgent: 'curl/8', ip });
    assert.equal(changed.value, null);
  });
});

const postgresUp = await serviceAvailable('postgres');

describe('one-time tokens beyond the bound, on PostgreSQL', { skip: postgresUp ? false : 'PostgreSQL not reachable' }, () => {
  const table = `otk_order_${randomBytes(4).toString('hex')}`;
  after(async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    await client.query(`DROP TABLE IF EXISTS "${table}"`);
    await client.end();
  });

  it('60 tokens issued one per request: the 10 issued first are dropped, the newest all spendable', async () => {
    const store = postgresStore({ connectionString: POSTGRES_URL, table });
    await store.migrate();
    const sessions = createSessions({ store });
    const jar = new CookieJar();
    const request = async <R>(fn: (s: Awaited<ReturnType<ReturnType<typeof sessions.open>['load']>>) => Promise<R> | R) => {
      const session = sessions.open({ cookieHeader: jar.header(), https: false, ip: '192.0.2.1', userAgent: 'ua' });
      const loaded = await session.load();
      const value = await fn(loaded);
      jar.apply((await session.commit(200))?.setCookie ?? []);
      return value;
    };
    try {
      await request((s) => s.login('ada'));
      const tokens: string[] = [];
      for (let i = 0; i < 60; i++) tokens.push(await request((s) => s.getSecurityKey({ lifetime: 3600 + i })));
      const spent: boolean[] = [];
      for (const token of tokens) spent.push((await request((s) => s.validateSecurityKey(token))) !== false);
      assert.deepEqual(
        spent.map((ok, i) => (ok ? null : i)).filter((i) => i !== null),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
    } finally {
      await sessions.close();
    }
  });
});
