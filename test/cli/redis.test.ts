/**
 * Every store command against Redis, under a key prefix of its own (`?prefix=`), so even
 * `kill --all` touches nothing but this file's sessions on a shared server.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { namespaceWarning, probeNamespace } from '../../src/cli/redis-namespace.js';
import { redisStore } from '../../src/stores/redis.js';
import type { SessionRecord } from '../../src/stores/types.js';
import { makeRecord } from '../../src/testing/store-contract.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/private-redis.js';
import { redisServerInstalled } from '../helpers/redis-cluster.js';
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

    // Any prefix and any database number name a valid, empty namespace: without a warning, a
    // --store missing the app's ?prefix= (or with the wrong /DB) reported "0" and exit 0 while the
    // sessions stayed valid.
    const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const readCommands = [
      ['kill', '--user', 'erin'],
      ['kill', '--user', 'erin', '--json'],
      ['list', '--user', 'erin'],
      ['list', '--user', 'erin', '--json'],
      ['stats'],
      ['stats', '--json', '--top', '0'],
      ['kill', '--guests', '--json'],
      ['kill', '--all', '--yes'],
    ];
    const ownDb = Number(new URL(REDIS_URL).pathname.slice(1) || 0);

    it('a wrong ?prefix= still exits 0 with the same stdout, but warns on stderr naming the prefix and database', async () => {
      const wrong = `${prefix}wrong-`;
      const wrongUrl = (() => {
        const u = new URL(REDIS_URL);
        u.searchParams.set('prefix', wrong);
        return u.toString();
      })();
      for (const args of readCommands) {
        const result = await cli([...args, '--store', wrongUrl]);
        assert.equal(result.status, 0, `${args.join(' ')}: ${result.stderr}`);
        if (args.includes('--json')) {
          // Still one valid JSON document, reporting what was found: nothing.
          const found = json<{ killed?: number; sessions?: number } | unknown[]>(result);
          assert.equal(Array.isArray(found) ? found.length : (found.killed ?? found.sessions), 0);
        }
        assert.match(
          result.stderr,
          new RegExp(
            `^coatcheck ${args[0]}: warning: no session keys under prefix "${escaped(wrong)}" in database ${ownDb} \\(it holds \\d+ other keys?\\)[^\\n]*` +
              `\\(if the app sets redisStore\\(\\{ prefix \\}\\) or uses another database, give the same in --store: \\?prefix=PREFIX, /DB\\)\\n$`,
          ),
          args.join(' '),
        );
      }
      assert.equal((await store.listByUser('erin')).length, 2, 'nothing was deleted');
      for (const g of guests) assert.notEqual(await store.get(g.id), null);
    });

    it('a wrong database number warns too, and names the databases that hold keys', async () => {
      const wrongDb = ownDb === 9 ? 10 : 9;
      const wrongUrl = (() => {
        const u = new URL(REDIS_URL);
        u.pathname = `/${wrongDb}`;
        u.searchParams.set('prefix', prefix);
        return u.toString();
      })();
      for (const args of readCommands) {
        const result = await cli([...args, '--store', wrongUrl]);
        assert.equal(result.status, 0, `${args.join(' ')}: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`^coatcheck ${args[0]}: warning: no session keys under prefix "${escaped(prefix)}" in database ${wrongDb}[ ,]`), args.join(' '));
        assert.match(result.stderr, new RegExp(`databases with keys: (.*, )?${ownDb} \\(\\d+ keys?\\)`), args.join(' '));
      }
      assert.equal((await store.listByUser('erin')).length, 2, 'nothing was deleted');
    });

    it('no warning while the namespace holds sessions, even when the command finds none', async () => {
      for (const args of [['kill', '--user', 'nobody'], ['list', '--user', 'nobody'], ['list', '--user', 'nobody', '--json'], ['kill', '--user', 'erin', '--json']]) {
        const result = await cli([...args, '--store', url]);
        assert.equal(result.status, 0, result.stderr);
        assert.equal(result.stderr, '', args.join(' '));
      }
      assert.equal((await cli(['list', '--user', 'nobody', '--store', url])).stdout, 'no live sessions for user nobody\n');
    });

    it('clear-expired has nothing to do: Redis expires sessions itself', async () => {
      const result = await cli(['clear-expired', '--store', url]);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, 'nothing to clear: Redis deletes expired sessions by itself (native TTL)\n');
      assert.deepEqual(json(await cli(['clear-expired', '--json', '--store', url])), { store: 'redis', deleted: 0, batches: 0, complete: true });
      // Without contacting Redis, as docs/cli.md says: a cron job does not fail while Redis is down.
      const down = await cli(['clear-expired', '--store', 'redis://127.0.0.1:1/0?prefix=ccdown:']);
      assert.equal(down.status, 0, down.stderr);
      assert.equal(down.stdout, 'nothing to clear: Redis deletes expired sessions by itself (native TTL)\n');
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

/** The look at an empty namespace, on a private server whose every key the test knows. */
const installed = redisServerInstalled();
if (!installed && process.env.CI === 'true') throw new Error('redis-server is not installed (CI=true: a missing service is a failure)');

describe('coatcheck on Redis: the look at a namespace with no sessions', { skip: installed ? false : 'redis-server not installed' }, () => {
  let server: PrivateRedis;
  before(async () => {
    server = await startPrivateRedis();
    const app = redisStore({ url: server.url, prefix: 'opsrev_app:' });
    await app.create(makeRecord({ userId: 'alice' }));
    await app.close();
  });
  after(async () => {
    await server?.stop();
  });
  const hint = '(if the app sets redisStore({ prefix }) or uses another database, give the same in --store: ?prefix=PREFIX, /DB)';

  it('without the app\'s ?prefix=: names the prefixes that hold sessions', async () => {
    const result = await cli(['kill', '--user', 'alice', '--json', '--store', server.url]);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(json(result), { store: 'redis', scope: 'user', user: 'alice', killed: 0 });
    assert.equal(
      result.stderr,
      `coatcheck kill: warning: no session keys under prefix "coatcheck:" in database 0 (it holds 2 other keys); session keys exist under ?prefix=opsrev_app: ${hint}\n`,
    );
  });

  it('in the wrong database: says it is empty and where the keys are', async () => {
    const result = await cli(['kill', '--user', 'alice', '--store', `${server.url}/7?prefix=opsrev_app:`]);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, 'ended 0 sessions of user alice\n');
    assert.equal(result.stderr, `coatcheck kill: warning: no session keys under prefix "opsrev_app:" in database 7, which is empty; databases with keys: 0 (2 keys) ${hint}\n`);
  });

  it('with the right prefix and database: the session goes, and nothing is said', async () => {
    const result = await cli(['kill', '--user', 'alice', '--store', `${server.url}/0?prefix=opsrev_app:`]);
    assert.deepEqual([result.status, result.stdout, result.stderr], [0, 'ended 1 session of user alice\n', '']);
  });

  it('a SCAN cut short by its budget says so, unless the command walked the namespace itself', async () => {
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    try {
      const filler: string[] = [];
      for (let i = 0; i < 2_000; i++) filler.push(`cache:${i}`, 'x');
      await redis.mset(...filler);
      await redisStore({ client: redis, prefix: 'other:' }).create(makeRecord({ userId: 'zoe' }));
    } finally {
      redis.disconnect();
    }
    const cut = await probeNamespace(server.url, 'coatcheck:', { count: 10, maxPages: 1 });
    assert.equal(cut.found, null);
    assert.match(namespaceWarning(cut, false) ?? '', /^no session keys under prefix "coatcheck:" in database 0 among the first ~10 of its \d+ keys \(a bounded SCAN: some may lie further on\)/);
    assert.match(namespaceWarning(cut, true) ?? '', /^no session keys under prefix "coatcheck:" in database 0 \(it holds \d+ other keys\)/);
    const whole = await probeNamespace(server.url, 'coatcheck:');
    assert.equal(whole.found, false);
    assert.deepEqual(whole.otherPrefixes, ['other:']);
    assert.equal((await probeNamespace(server.url, 'other:')).found, true);
    assert.equal(namespaceWarning(await probeNamespace(server.url, 'other:'), true), null);
  });
});
