/**
 * The Redis permissions docs/stores/redis.md lists are enough: the whole store contract runs as
 * a Redis user holding exactly those commands (read from the docs, not copied here), on the
 * documented key pattern, and the store's start-up checks run without a refused command.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { redisStore } from '../../src/stores/redis.js';
import { testStore } from '../../src/testing/store-contract.js';
import { deleteRedisPrefix, REDIS_URL, serviceAvailable } from '../helpers/services.js';

/** The command list after "**Permissions.**" in the Redis store's docs, up to its first "plus". */
export function documentedPermissions(markdown: string): string[] {
  const section = /\*\*Permissions\.\*\*([\s\S]*?)plus/.exec(markdown)?.[1] ?? '';
  return [...section.matchAll(/[+-][a-z|@]+/g)].map((match) => match[0]);
}

const up = await serviceAvailable('redis');

if (!up) {
  describe('redisStore with the documented ACL', { skip: 'Redis not reachable' }, () => {});
} else {
  const suffix = randomBytes(6).toString('hex');
  const user = `cc_acl_${suffix}`;
  const password = randomBytes(12).toString('hex');
  const prefix = `cc-acl-${suffix}:`;
  const url = `redis://${user}:${password}@127.0.0.1:6379`;
  const permissions = documentedPermissions(readFileSync('docs/stores/redis.md', 'utf8'));
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(warning.message);
  const originalWarn = console.warn;

  before(async () => {
    assert.ok(permissions.length >= 15 && permissions.includes('+evalsha'), `parsed: ${permissions.join(' ')}`);
    await admin.call('ACL', 'SETUSER', user, 'reset', 'on', `>${password}`, `~${prefix}*`, ...permissions);
    process.on('warning', onWarning);
    // ioredis says on the console when its ready check (INFO) is refused.
    console.warn = (...args: unknown[]) => warnings.push(args.map(String).join(' '));
  });
  after(async () => {
    console.warn = originalWarn;
    process.off('warning', onWarning);
    await admin.call('ACL', 'DELUSER', user);
    admin.disconnect();
    await deleteRedisPrefix(prefix);
  });

  testStore('redis with only the documented ACL permissions', { create: () => redisStore({ url, prefix }) });

  describe('redisStore with the documented ACL', () => {
    it('starts without a refused command (ready check, eviction-policy check)', async () => {
      const store = redisStore({ url, prefix: `${prefix}start:` });
      await store.get('0'.repeat(43));
      await new Promise((resolve) => setTimeout(resolve, 200)); // the eviction check runs once ready
      await store.close();
      assert.deepEqual(warnings.filter((w) => /INFO|NOPERM|permission/i.test(w)), []);
    });

    it('is refused when a listed command is missing: the list is what the test runs under', async () => {
      const narrowed = `${user}_narrow`;
      await admin.call('ACL', 'SETUSER', narrowed, 'reset', 'on', `>${password}`, `~${prefix}*`, ...permissions.filter((p) => p !== '+pexpire'));
      const store = redisStore({ url: `redis://${narrowed}:${password}@127.0.0.1:6379`, prefix: `${prefix}narrow:` });
      try {
        const { makeRecord } = await import('../../src/testing/store-contract.js');
        await assert.rejects(Promise.resolve(store.create(makeRecord({}))), /permission|NOPERM|can't run/i);
      } finally {
        await store.close();
        await admin.call('ACL', 'DELUSER', narrowed);
      }
    });
  });
}
