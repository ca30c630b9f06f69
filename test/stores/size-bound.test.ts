/**
 * SessionPatch.maxBytes where a store measures in its own way (the contract suite checks the
 * shared behaviour on every store): Redis keeps a running size in the hash ('b'), PostgreSQL
 * measures jsonb's text, which prints numbers and separators differently from JSON.stringify.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { postgresStore } from '../../src/stores/postgres.js';
import { redisStore } from '../../src/stores/redis.js';
import { recordBytes, type SessionPatch, type Store } from '../../src/stores/types.js';
import { makeRecord } from '../../src/testing/store-contract.js';
import { deleteRedisPrefix, POSTGRES_URL, REDIS_URL, serviceAvailable } from '../helpers/services.js';

const suffix = randomBytes(4).toString('hex');
const redisUp = await serviceAvailable('redis');
const postgresUp = await serviceAvailable('postgres');
const times = () => ({ lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 });

async function measured(store: Store, id: string): Promise<number> {
  const record = await store.get(id);
  assert.ok(record);
  return recordBytes(record.data, record.meta);
}

describe('redisStore: the running size in the hash', { skip: !redisUp && 'redis not reachable' }, () => {
  const prefix = `cc-sizebound-${suffix}:`;
  const store = redisStore({ url: REDIS_URL, prefix });
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const size = async (id: string): Promise<string | null> => admin.hget(`${prefix}s:{${id}}`, 'b');
  after(async () => {
    await store.close();
    admin.disconnect();
    await deleteRedisPrefix(prefix);
  });

  it('is written at create and kept exact by every save that changes keys, with or without a bound', async () => {
    const record = makeRecord({ data: { 'clé': 'ü'.repeat(7), n: [1, { two: null }] }, meta: { csrf: 'x'.repeat(43) } });
    await store.create(record);
    assert.equal(await size(record.id), String(recordBytes(record.data, record.meta)));
    const steps: Omit<SessionPatch, 'lastSeenAt' | 'expiresAt'>[] = [
      { data: { set: { n: 'short', extra: { deep: ['✓'] } } } },
      { meta: { unset: ['csrf'], set: { 'otk.a': { until: 1 } } } },
      { data: { unset: ['clé', 'missing'] } },
      { data: { set: { extra: 1 } }, meta: { set: { 'otk.a': { until: 12345 } } }, maxBytes: 10_000 },
    ];
    for (const step of steps) {
      assert.equal(await store.update(record.id, { ...step, ...times() }), true);
      assert.equal(await size(record.id), String(await measured(store, record.id)), JSON.stringify(step));
    }
    // A touch leaves it alone.
    assert.equal(await store.touch(record.id, times()), true);
    assert.equal(await size(record.id), String(await measured(store, record.id)));
  });

  it('is counted once for a record written without it (by an earlier version), on its first bounded save', async () => {
    const record = makeRecord({ data: { a: 'x'.repeat(100), b: 2 } });
    await store.create(record);
    await admin.hdel(`${prefix}s:{${record.id}}`, 'b');
    // An unbounded save leaves it absent (nothing to keep up to date)...
    assert.equal(await store.update(record.id, { data: { set: { c: 3 } }, ...times() }), true);
    assert.equal(await size(record.id), null);
    // ...a bounded one counts it from the hash, then keeps it.
    const now = await measured(store, record.id);
    await assert.rejects(async () => store.update(record.id, { data: { set: { d: 'y'.repeat(50) } }, maxBytes: now + 10, ...times() }), { code: 'ERR_TOO_LARGE' });
    assert.equal(await store.update(record.id, { data: { set: { d: 4 } }, maxBytes: now + 10, ...times() }), true);
    assert.equal(await size(record.id), String(await measured(store, record.id)));
  });

  it('a size left too high (a save by an older version during an upgrade) never refuses a save within the bound: the hash is counted again first', async () => {
    const record = makeRecord({ data: { a: 1 } });
    await store.create(record);
    await admin.hset(`${prefix}s:{${record.id}}`, 'b', '999999');
    assert.equal(await store.update(record.id, { data: { set: { b: 'x'.repeat(100) } }, maxBytes: 1_000, ...times() }), true);
    assert.equal(await size(record.id), String(await measured(store, record.id)), 'and it is right again');
  });
});

describe('postgresStore: the size measured from jsonb', { skip: !postgresUp && 'postgres not reachable' }, () => {
  const schema = `cc_sizebound_${suffix}`;
  let store: Store;
  const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
  after(async () => {
    await store?.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });

  it('is exact for strings, nesting and ordinary numbers, and never more than JSON.stringify for numbers jsonb prints longer', async () => {
    await admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    store = postgresStore({ connectionString: POSTGRES_URL, schema, table: 'sessions' });
    // Exact: the record fills the bound to the byte, and one byte more is refused.
    const exact = makeRecord({ data: { text: 'a, b: "c" ü', nested: { list: [1, 2.5, -3, { k: [true, null] }], 'x, y': {} } }, meta: {} });
    await store.create(exact);
    const size = recordBytes(exact.data, exact.meta);
    assert.equal(await store.update(exact.id, { data: { set: { z: 1 } }, maxBytes: size + 2, ...times() }), true);
    await assert.rejects(async () => store.update(exact.id, { data: { set: { z: 10 } }, maxBytes: size + 2, ...times() }), { code: 'ERR_TOO_LARGE' });
    // 1e300 prints 301 digits from jsonb (6 bytes to JSON.stringify), 1e-10 12: counted as less,
    // never as more, so a session holding them is never refused within the bound.
    const numbers = makeRecord({ data: { big: [1e300, -1.5e25], tiny: 1e-10, plain: 10.0000001 }, meta: {} });
    await store.create(numbers);
    const numbersSize = recordBytes(numbers.data, numbers.meta);
    assert.equal(await store.update(numbers.id, { data: { set: { z: 1 } }, maxBytes: numbersSize + 2, ...times() }), true);
  });
});
