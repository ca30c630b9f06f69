/**
 * For stores that keep whole milliseconds (SQLite's INTEGER columns, PostgreSQL's bigint): times
 * given with a fraction are stored with the past rounded down and expiries up, and the stored
 * expiry is the one that counts.
 */
import assert from 'node:assert/strict';
import type { Store } from '../../src/stores/types.js';
import { makeRecord } from '../../src/testing/store-contract.js';

/** Runs create, update and touch with fractional times; returns the record's id and stored expiry. */
export async function checkWholeMillisecondTimes(store: Store): Promise<{ id: string; expiresAt: number }> {
  const now = Date.now() + 0.3555;
  const record = makeRecord({ createdAt: now, lastSeenAt: now, expiresAt: now + 60_000.25 });
  await store.create(record);
  let loaded = await store.get(record.id);
  assert.equal(loaded?.createdAt, Math.floor(now));
  assert.equal(loaded?.lastSeenAt, Math.floor(now));
  assert.equal(loaded?.expiresAt, Math.ceil(now + 60_000.25));
  const later = now + 1_000.5;
  assert.equal(await store.update(record.id, { data: { set: { a: 1 } }, guard: { absent: ['moved'] }, lastSeenAt: later, expiresAt: later + 0.1 + 120_000 }), true);
  loaded = await store.get(record.id);
  assert.equal(loaded?.lastSeenAt, Math.floor(later));
  assert.equal(loaded?.expiresAt, Math.ceil(later + 0.1 + 120_000));
  assert.deepEqual(loaded?.data, { ...record.data, a: 1 });
  const last = later + 2_000.75;
  assert.equal(await store.touch(record.id, { lastSeenAt: last, expiresAt: last + 30_000.5 }), true);
  loaded = await store.get(record.id);
  assert.equal(loaded?.lastSeenAt, Math.floor(last));
  assert.equal(loaded?.expiresAt, Math.ceil(last + 30_000.5));
  // The stored (rounded) expiry is the one that counts: a save at it finds the session over.
  const expiry = loaded?.expiresAt as number;
  assert.equal(await store.touch(record.id, { lastSeenAt: expiry + 0.5, expiresAt: expiry + 60_000.5 }), false);
  assert.equal(await store.update(record.id, { lastSeenAt: expiry + 0.5, expiresAt: expiry + 60_000.5 }), false);
  assert.equal(await store.touch(record.id, { lastSeenAt: expiry - 0.5, expiresAt: expiry + 60_000.5 }), true);
  return { id: record.id, expiresAt: expiry };
}
