import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import { tickBatcher } from '../../src/stores/redis-tick-batch.js';
import { redisStore } from '../../src/stores/redis.js';
import { makeRecord } from '../../src/testing/store-contract.js';
import { deleteRedisPrefix, REDIS_URL, serviceAvailable } from '../helpers/services.js';

const up = await serviceAvailable('redis');

/** Counts the socket-level writes of a connected client (net.Socket's _write and _writev). */
function countWrites(client: Redis): { readonly count: number } {
  const socket = client.stream as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>;
  const counter = { count: 0 };
  for (const method of ['_write', '_writev'] as const) {
    const original = socket[method].bind(socket);
    socket[method] = (...args: unknown[]) => {
      counter.count++;
      return original(...args);
    };
  }
  return counter;
}

if (!up) {
  describe('redis tick batching', { skip: 'Redis not reachable' }, () => {});
} else {
  const prefix = `cc-test-${randomBytes(6).toString('hex')}:batch:`;
  const clients: Redis[] = [];
  const connected = async (): Promise<Redis> => {
    const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    clients.push(client);
    await client.ping();
    return client;
  };
  after(async () => {
    for (const client of clients) client.disconnect();
    await deleteRedisPrefix(prefix);
  });

  describe('redis tick batching', () => {
    it('sends the commands of one tick in one socket write, answers unchanged and in order', async () => {
      const client = await connected();
      const keys = Array.from({ length: 20 }, (_, i) => `${prefix}k${i}`);
      await client.mset(...keys.flatMap((key, i) => [key, String(i)]));

      const unbatched = countWrites(client);
      const plain = await Promise.all(keys.map((key) => client.get(key)));
      assert.deepEqual(plain, keys.map((_, i) => String(i)));
      // The control: one write per command (the kernel takes each at once on loopback).
      assert.ok(unbatched.count >= 10, `expected a write per command, saw ${unbatched.count}`);

      const batch = tickBatcher(client);
      const before = unbatched.count;
      const answers = await Promise.all(
        keys.map((key) => {
          batch();
          return client.get(key);
        }),
      );
      assert.deepEqual(answers, keys.map((_, i) => String(i)));
      assert.equal(unbatched.count - before, 1, 'the tick\'s 20 commands left in one write');

      // The next tick batches on its own again.
      const again = unbatched.count;
      batch();
      assert.equal(await client.get(keys[3] as string), '3');
      assert.equal(unbatched.count - again, 1);
    });

    it('batches the store\'s per-request calls, whoever owns the client', async () => {
      const client = await connected();
      const store = redisStore({ client, prefix: `${prefix}store:` });
      const records = Array.from({ length: 10 }, (_, i) => makeRecord({ data: { i } }));
      await Promise.all(records.map((record) => store.create(record)));
      const writes = countWrites(client);
      const loaded = await Promise.all(records.map((record) => store.get(record.id)));
      assert.deepEqual(loaded.map((record) => record?.data), records.map((_, i) => ({ i })));
      assert.equal(writes.count, 1);
      await store.close();
    });

    it('a connection lost while corked: the command is sent again on the new socket, which is not corked', async () => {
      const client = await connected();
      await client.set(`${prefix}lost`, 'kept');
      const batch = tickBatcher(client);
      const first = client.stream;
      batch();
      const answer = client.get(`${prefix}lost`);
      first.destroy(); // before the uncork: the command never left this socket
      assert.equal(await answer, 'kept');
      assert.notEqual(client.stream, first);
      assert.equal((client.stream as unknown as { writableCorked: number }).writableCorked, 0);
      const writes = countWrites(client);
      const answers = await Promise.all([0, 1, 2].map(() => (batch(), client.get(`${prefix}lost`))));
      assert.deepEqual(answers, ['kept', 'kept', 'kept']);
      assert.equal(writes.count, 1, 'batching goes on on the new socket');
    });

    it('leaves alone a client that is not ready yet (offline queue), a Cluster, and an auto-pipelining client', async () => {
      const lazy = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
      clients.push(lazy);
      const batch = tickBatcher(lazy);
      batch(); // not connected: nothing to cork, nothing thrown
      assert.equal(lazy.status, 'wait');
      assert.equal(await lazy.ping(), 'PONG'); // queued, sent once the first command connects

      const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
      assert.doesNotThrow(() => tickBatcher(cluster)());
      cluster.disconnect();

      // A client with ioredis' own auto-pipelining defers its writes itself: nothing is corked.
      const piped = new Redis(REDIS_URL, { enableAutoPipelining: true, maxRetriesPerRequest: 1 });
      clients.push(piped);
      await piped.ping();
      tickBatcher(piped)();
      assert.equal((piped.stream as unknown as { writableCorked: number }).writableCorked, 0);
    });
  });
}
