/**
 * Every store command against Redis, under a key prefix of its own (`?prefix=`), so even
 * `kill --all` touches nothing but this file's sessions on a shared server.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, beforeEach, describe, it } from 'node:test';
import { redisStore } from '../../src/stores/redis.js';
import type { SessionRecord } from '../../src/stores/types.js';
import { makeRecord } from '../../src/testing/store-contract.js';
import { deleteRedisPrefix, REDIS_URL, serviceAvailable } from '../helpers/services.js';
import { cli, json } from './run-cli.js';

const up = await serviceAvailable('redis');

describe('coatcheck on Redis', { skip: !up && 'Redis not reachable' }, () => {
  const prefix = `cc-cli-${randomBytes(6).toString('hex')}:`;
  const url = (() => {
    const u = new URL(REDIS_URL);
    u.searchParams.set('prefix', prefix);
    return u.toString();
  })();
  const store = redisStore({ url: REDIS_URL, prefix });
  /** A bystander under another prefix: no command here may touch it. */
  const neighbour = redisStore({ url: REDIS_URL, prefix: `${prefix}neighbour-` });
  const outsider = makeRecord({ userId: 'erin' });

  after(async () => {
    await store.destroyAll();
    await neighbour.destroyAll();
    await Promise.all([store.close(), neighbour.close()]);
    // Belt and braces: nothing may be left under the prefix.
    await deleteRedisPrefix(prefix);
  });

  it('migrate has nothing to do but checks the connection', async () => {
    const result = await cli(['migrate', '--store', url]);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `redis: nothing to migrate, Redis needs no schema (connection checked: ${url})\n`);
    assert.deepEqual(json(await cli(['migrate', '--json', '--store', url])), { store: 'redis', action: 'none', table: null, fromVersion: null, version: null });
  });

  describe('with data', () => {
    let erin: SessionRecord[];
    let guests: SessionRecord[];
    beforeEach(async () => {
      await store.destroyAll();
      await neighbour.destroyAll();
      await neighbour.create({ ...outsider, id: makeRecord().id });
      const now = Date.now();
      erin = [makeRecord({ userId: 'erin', createdAt: now - 2_000, userAgent: 'Safari' }), makeRecord({ userId: 'erin', createdAt: now - 1_000 })];
      guests = [makeRecord(), makeRecord(), makeRecord()];
      for (const r of [...erin, makeRecord({ userId: 'frank' }), ...guests]) await store.create(r);
    });
    const neighbourIntact = async () => assert.equal((await neighbour.listByUser('erin')).length, 1, 'another prefix was touched');

    it('stats (a SCAN of the prefix)', async () => {
      const result = await cli(['stats', '--json', '--store', url]);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(json(result), {
        store: 'redis',
        sessions: 6,
        expired: 0,
        users: 2,
        guests: 3,
        topUsers: [
          { userId: 'erin', sessions: 2 },
          { userId: 'frank', sessions: 1 },
        ],
      });
      const human = await cli(['stats', '--store', url]);
      assert.match(human.stdout, /^expired {3}0 \(Redis deletes them itself\)$/m);
    });

    it('list --user', async () => {
      const list = json<Array<{ handle: string; userAgent: string }>>(await cli(['list', '--user', 'erin', '--json', '--store', url]));
      assert.deepEqual(list.map((d) => [d.handle, d.userAgent]), [
        [erin[0]?.id, 'Safari'],
        [erin[1]?.id, 'contract-test'],
      ]);
    });

    it('kill --user, --guests and --all stay within the prefix', async () => {
      assert.equal((await cli(['kill', '--user', 'erin', '--store', url])).stdout, 'ended 2 sessions of user erin\n');
      assert.deepEqual(await store.listByUser('erin'), []);
      assert.deepEqual(json(await cli(['kill', '--guests', '--json', '--store', url])), { store: 'redis', scope: 'guests', killed: 3 });
      for (const g of guests) assert.equal(await store.get(g.id), null);
      assert.deepEqual(json(await cli(['kill', '--all', '--yes', '--json', '--store', url])), { store: 'redis', scope: 'all', killed: 1 });
      assert.deepEqual(await store.listByUser('frank'), []);
      await neighbourIntact();
    });

    it('clear-expired has nothing to do: Redis expires sessions itself', async () => {
      const result = await cli(['clear-expired', '--store', url]);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, 'nothing to clear: Redis deletes expired sessions by itself (native TTL)\n');
      assert.deepEqual(json(await cli(['clear-expired', '--json', '--store', url])), { store: 'redis', deleted: 0, batches: 1, complete: true });
      await neighbourIntact();
    });
  });

  it('a server that does not answer exits 1 with one line', async () => {
    for (const args of [['stats'], ['list', '--user', 'x'], ['kill', '--user', 'x'], ['kill', '--all', '--yes'], ['migrate']]) {
      const started = Date.now();
      const result = await cli([...args, '--store', 'redis://127.0.0.1:1']);
      assert.equal(result.status, 1, `${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, new RegExp(`^coatcheck ${args[0]}: store redis failed during \\w+: .*\\(Redis did not answer: is it running at that address\\?\\)\\n$`));
      assert.ok(Date.now() - started < 10_000, 'took too long to give up');
    }
  });
});
