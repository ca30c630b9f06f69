/**
 * The shared Store contract suite. Every store, built in or third party, runs it:
 * <!-- snippet: with app-values -->
 * ```ts
 * import { testStore } from 'coatcheck/testing';
 * testStore('my-store', { create: () => myStore() });
 * ```
 * It uses `node:test` and `node:assert`; times are near `Date.now()` so stores with native TTL work.
 * @module coatcheck/testing
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { CoatcheckError } from '../errors.js';
import { recordBytes, type SessionPatch, type SessionRecord, type Store } from '../stores/types.js';

export interface StoreContractOptions {
  /** Makes the store under test. Called once per suite; the suite empties it before each test. */
  create: () => Store | Promise<Store>;
  /** Extra tests that share the suite's store. */
  extra?: ((getStore: () => Store) => void) | undefined;
}

/** A random id shaped like a real store key (43 base64url chars). */
export function randomId(): string {
  return randomBytes(32).toString('base64url');
}

/** A complete record with sensible defaults, expiring an hour from now. */
export function makeRecord(overrides: Partial<SessionRecord> = {}): SessionRecord {
  const now = Date.now();
  return {
    id: randomId(),
    userId: null,
    data: { count: 1 },
    meta: {},
    createdAt: now,
    lastSeenAt: now,
    expiresAt: now + 3_600_000,
    ip: '127.0.0.1',
    userAgent: 'contract-test',
    ...overrides,
  };
}

export function testStore(name: string, options: StoreContractOptions): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    before(async () => {
      store = await options.create();
    });
    beforeEach(async () => {
      await store.destroyAll();
    });
    after(async () => {
      await store?.close();
    });

    it('has a name', () => {
      assert.equal(typeof store.name, 'string');
      assert.ok(store.name.length > 0);
    });

    it('returns null for an unknown id', async () => {
      assert.equal(await store.get(randomId()), null);
    });

    it('round-trips every field of a record', async () => {
      const record = makeRecord({
        userId: 'user-1',
        data: {
          text: 'héllo ✓ 🧥',
          number: 12.5,
          flag: false,
          nothing: null,
          list: [1, 'two', { three: [3] }],
          nested: { a: { b: { c: 'deep' } } },
          empty: {},
          'key with spaces': 'ok',
        },
        meta: { csrf: 'abc', flashes: [{ message: 'hi', category: 'info' }] },
        ip: '203.0.113.9',
        userAgent: 'Mozilla/5.0 (X11) "quoted"',
      });
      await store.create(record);
      assert.deepEqual(await store.get(record.id), record);
    });

    it('keeps prototype-looking keys as plain data', async () => {
      const data = JSON.parse('{"__proto__":{"isAdmin":true},"constructor":"c","toString":"t","hasOwnProperty":1}');
      const record = makeRecord({ data });
      await store.create(record);
      const loaded = await store.get(record.id);
      assert.ok(loaded);
      assert.deepEqual(Object.keys(loaded.data).sort(), ['__proto__', 'constructor', 'hasOwnProperty', 'toString']);
      assert.equal(Object.getPrototypeOf(loaded.data), Object.prototype);
      assert.equal((loaded.data as { isAdmin?: unknown }).isAdmin, undefined);
      assert.equal(({} as { isAdmin?: unknown }).isAdmin, undefined);
    });

    it('hands out copies: mutating a loaded record changes nothing stored', async () => {
      const record = makeRecord({ data: { list: [1] } });
      await store.create(record);
      const first = await store.get(record.id);
      assert.ok(first);
      (first.data.list as number[]).push(2);
      first.data.added = true;
      assert.deepEqual((await store.get(record.id))?.data, { list: [1] });
    });

    it('refuses to create a record whose id exists', async () => {
      const record = makeRecord();
      await store.create(record);
      await assert.rejects(store.create(makeRecord({ id: record.id, data: { other: true } })), (error: unknown) => {
        assert.ok(error instanceof CoatcheckError);
        assert.equal(error.code, 'ERR_STORE_CONFLICT');
        return true;
      });
      assert.deepEqual((await store.get(record.id))?.data, record.data);
    });

    it('applies per-key changes, meta changes, user and times', async () => {
      const record = makeRecord({ data: { a: 1, b: 2, c: 3 }, meta: { m: 1 } });
      await store.create(record);
      const later = record.lastSeenAt + 5_000;
      const ok = await store.update(record.id, {
        data: { set: { b: 20, d: { x: [1] } }, unset: ['c'] },
        meta: { set: { n: 'two' }, unset: ['m'] },
        userId: 'u-9',
        lastSeenAt: later,
        expiresAt: later + 3_600_000,
      });
      assert.equal(ok, true);
      const loaded = await store.get(record.id);
      assert.deepEqual(loaded?.data, { a: 1, b: 20, d: { x: [1] } });
      assert.deepEqual(loaded?.meta, { n: 'two' });
      assert.equal(loaded?.userId, 'u-9');
      assert.equal(loaded?.lastSeenAt, later);
      assert.equal(loaded?.expiresAt, later + 3_600_000);
      assert.equal(loaded?.createdAt, record.createdAt);
    });

    it('keepLater: a save never moves lastSeenAt or expiresAt back; without it both are written as given', async () => {
      const record = makeRecord({ data: { a: 1 } });
      await store.create(record);
      const seen = record.lastSeenAt + 10_000;
      const far = seen + 30 * 86_400_000;
      // "Remember me" chosen by one request...
      assert.equal(await store.update(record.id, { meta: { set: { expiry: 2_592_000 } }, lastSeenAt: seen, expiresAt: far }), true);
      // ...and a save of a request that loaded before it: earlier "now", the default deadline.
      assert.equal(await store.update(record.id, { data: { set: { b: 2 } }, lastSeenAt: seen - 5_000, expiresAt: seen - 5_000 + 3_600_000, keepLater: true }), true);
      let loaded = await store.get(record.id);
      assert.deepEqual(loaded?.data, { a: 1, b: 2 });
      assert.equal(loaded?.lastSeenAt, seen);
      assert.equal(loaded?.expiresAt, far);
      // Later times are taken.
      assert.equal(await store.update(record.id, { lastSeenAt: seen + 1_000, expiresAt: far + 1_000, keepLater: true }), true);
      loaded = await store.get(record.id);
      assert.equal(loaded?.lastSeenAt, seen + 1_000);
      assert.equal(loaded?.expiresAt, far + 1_000);
      // Without it, as given: a shorter expiry choice shortens the deadline.
      assert.equal(await store.update(record.id, { meta: { set: { expiry: 60 } }, lastSeenAt: seen + 2_000, expiresAt: seen + 62_000 }), true);
      loaded = await store.get(record.id);
      assert.equal(loaded?.lastSeenAt, seen + 2_000);
      assert.equal(loaded?.expiresAt, seen + 62_000);
    });

    it('leaves the user alone when a patch does not name one', async () => {
      const record = makeRecord({ userId: 'keep-me' });
      await store.create(record);
      await store.update(record.id, { data: { set: { x: 1 } }, lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 });
      assert.equal((await store.get(record.id))?.userId, 'keep-me');
    });

    it('never resurrects: update and touch of a missing record write nothing', async () => {
      const id = randomId();
      const now = Date.now();
      assert.equal(await store.update(id, { data: { set: { a: 1 } }, lastSeenAt: now, expiresAt: now + 60_000 }), false);
      assert.equal(await store.touch(id, { lastSeenAt: now, expiresAt: now + 60_000 }), false);
      assert.equal(await store.get(id), null);
    });

    it('never revives: update and touch of an expired record write nothing', async () => {
      // A session that expired while a request held it (awaiting the sweep in SQL stores).
      const now = Date.now();
      const past = { createdAt: now - 2_000, lastSeenAt: now - 2_000, expiresAt: now - 1_000 };
      const updated = makeRecord({ ...past, data: { v: 1 } });
      const touched = makeRecord({ ...past, data: { v: 1 } });
      await store.create(updated);
      await store.create(touched);
      assert.equal(await store.update(updated.id, { data: { set: { v: 2 } }, lastSeenAt: now, expiresAt: now + 60_000 }), false);
      assert.equal(await store.touch(touched.id, { lastSeenAt: now, expiresAt: now + 60_000 }), false);
      for (const record of [updated, touched]) {
        // Gone (native TTL) or still there as it was, never extended.
        const loaded = await store.get(record.id);
        if (loaded === null) continue;
        assert.equal(loaded.expiresAt, record.expiresAt);
        assert.deepEqual(loaded.data, { v: 1 });
      }
    });

    it('never revives: a record expired by the save\'s lastSeenAt (the engine\'s "now") is not written', async () => {
      // Live by wall clock (so TTL stores keep it), but at or past its expiry by the engine's
      // clock, which may run ahead of the store's: the store must judge by lastSeenAt too.
      const now = Date.now();
      const times = { createdAt: now, lastSeenAt: now, expiresAt: now + 30_000 };
      const records = Array.from({ length: 4 }, () => makeRecord({ ...times, userId: 'expired-by-save', data: { v: 1 } }));
      for (const record of records) await store.create(record);
      const [updatedAt, updatedPast, touchedAt, touchedPast] = records as [SessionRecord, SessionRecord, SessionRecord, SessionRecord];
      const at = times.expiresAt; // "at or before": the boundary counts as expired
      const past = times.expiresAt + 30_000;
      const patch = (lastSeenAt: number) => ({
        data: { set: { v: 2 } },
        guard: { absent: ['moved'] }, // as the engine saves
        lastSeenAt,
        expiresAt: lastSeenAt + 3_600_000,
      });
      assert.equal(await store.update(updatedAt.id, patch(at)), false, 'update at expiresAt');
      assert.equal(await store.update(updatedPast.id, patch(past)), false, 'update past expiresAt');
      assert.equal(await store.touch(touchedAt.id, { lastSeenAt: at, expiresAt: at + 3_600_000 }), false, 'touch at expiresAt');
      assert.equal(await store.touch(touchedPast.id, { lastSeenAt: past, expiresAt: past + 3_600_000 }), false, 'touch past expiresAt');
      for (const record of records) {
        // Gone or still there as it was, never extended.
        const loaded = await store.get(record.id);
        if (loaded === null) continue;
        assert.equal(loaded.expiresAt, record.expiresAt);
        assert.equal(loaded.lastSeenAt, record.lastSeenAt);
        assert.deepEqual(loaded.data, { v: 1 });
      }
    });

    it('applies a guarded update only when its meta conditions hold', async () => {
      const record = makeRecord({ data: { a: 1 }, meta: { token: 'x' } });
      await store.create(record);
      const times = { lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 };
      assert.equal(await store.update(record.id, { data: { set: { a: 2 } }, guard: { present: ['missing'] }, ...times }), false);
      assert.equal(await store.update(record.id, { data: { set: { a: 3 } }, guard: { absent: ['token'] }, ...times }), false);
      assert.deepEqual((await store.get(record.id))?.data, { a: 1 }, 'a failed guard writes nothing');
      assert.equal(await store.update(record.id, { data: { set: { a: 4 } }, guard: { present: ['token'], absent: ['moved'] }, ...times }), true);
      assert.deepEqual((await store.get(record.id))?.data, { a: 4 });
    });

    it('lets exactly one of 20 concurrent guarded consumes win', async () => {
      const record = makeRecord({ meta: { 'otk.abc': { until: Date.now() + 60_000 } } });
      await store.create(record);
      const results = await Promise.all(
        Array.from({ length: 20 }, () =>
          store.update(record.id, {
            meta: { unset: ['otk.abc'] },
            guard: { present: ['otk.abc'] },
            lastSeenAt: Date.now(),
            expiresAt: Date.now() + 60_000,
          }),
        ),
      );
      assert.equal(results.filter(Boolean).length, 1);
      assert.deepEqual((await store.get(record.id))?.meta, {});
    });

    it('lets exactly one of 10 concurrent claims of an absent key win', async () => {
      const record = makeRecord();
      await store.create(record);
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          store.update(record.id, {
            meta: { set: { moved: `winner-${i}` } },
            guard: { absent: ['moved'] },
            lastSeenAt: Date.now(),
            expiresAt: Date.now() + 60_000,
          }),
        ),
      );
      assert.equal(results.filter(Boolean).length, 1);
      const winner = results.indexOf(true);
      assert.equal((await store.get(record.id))?.meta.moved, `winner-${winner}`);
    });

    it('touch changes only the times', async () => {
      const record = makeRecord({ data: { keep: 'me' } });
      await store.create(record);
      const later = record.lastSeenAt + 60_000;
      assert.equal(await store.touch(record.id, { lastSeenAt: later, expiresAt: later + 3_600_000 }), true);
      const loaded = await store.get(record.id);
      assert.deepEqual(loaded?.data, { keep: 'me' });
      assert.equal(loaded?.lastSeenAt, later);
      assert.equal(loaded?.expiresAt, later + 3_600_000);
    });

    it('accepts fractional times (ms) in create, update and touch: expiry never earlier, other times within 1 ms', async () => {
      // An app clock such as performance.timeOrigin + performance.now(), or setExpiry(3600 / 7),
      // gives fractions. A store may round (integer columns) but must not refuse them.
      const near = (actual: number | undefined, expected: number, what: string): void => {
        assert.equal(typeof actual, 'number', what);
        assert.ok(Math.abs((actual as number) - expected) < 1, `${what}: ${actual} is not within 1 ms of ${expected}`);
      };
      const expiry = (actual: number | undefined, expected: number, what: string): void => {
        assert.equal(typeof actual, 'number', what);
        const value = actual as number;
        assert.ok(value >= expected && value - expected < 1, `${what}: ${value} is not within 1 ms at or after ${expected}`);
      };
      const now = () => Date.now() + 0.625;
      const created = now();
      const record = makeRecord({ userId: 'fraction', createdAt: created - 1_000.375, lastSeenAt: created, expiresAt: created + 3_600_000 / 7 });
      await store.create(record);
      let loaded = await store.get(record.id);
      near(loaded?.createdAt, record.createdAt, 'createdAt after create');
      near(loaded?.lastSeenAt, record.lastSeenAt, 'lastSeenAt after create');
      expiry(loaded?.expiresAt, record.expiresAt, 'expiresAt after create');
      const listed = (await store.listByUser('fraction'))[0];
      near(listed?.createdAt, record.createdAt, 'createdAt listed');
      expiry(listed?.expiresAt, record.expiresAt, 'expiresAt listed');

      const saved = now();
      const patch = { data: { set: { n: 2 } }, lastSeenAt: saved, expiresAt: saved + 3_600_000 / 7 };
      assert.equal(await store.update(record.id, patch), true);
      loaded = await store.get(record.id);
      assert.equal(loaded?.data.n, 2);
      near(loaded?.createdAt, record.createdAt, 'createdAt after update');
      near(loaded?.lastSeenAt, patch.lastSeenAt, 'lastSeenAt after update');
      expiry(loaded?.expiresAt, patch.expiresAt, 'expiresAt after update');

      // A patch that changes the user takes another path in some stores.
      const moved = { userId: 'fraction-2', lastSeenAt: now(), expiresAt: now() + 1_000 / 3 + 60_000 };
      assert.equal(await store.update(record.id, moved), true);
      loaded = await store.get(record.id);
      near(loaded?.lastSeenAt, moved.lastSeenAt, 'lastSeenAt after a user change');
      expiry(loaded?.expiresAt, moved.expiresAt, 'expiresAt after a user change');

      const touched = { lastSeenAt: now(), expiresAt: now() + 3_600_000 / 7 };
      assert.equal(await store.touch(record.id, touched), true);
      loaded = await store.get(record.id);
      assert.deepEqual(loaded?.data, { count: 1, n: 2 });
      near(loaded?.lastSeenAt, touched.lastSeenAt, 'lastSeenAt after touch');
      expiry(loaded?.expiresAt, touched.expiresAt, 'expiresAt after touch');

      // A sweep with a fractional cutoff runs, and keeps the live record.
      const sweep = await store.deleteExpired({ before: now() + 0.5, limit: 10 });
      assert.equal(typeof sweep.deleted, 'number');
      assert.ok(await store.get(record.id));
      if (store.stats) assert.equal((await store.stats(now())).sessions, 1);
    });

    it('destroys one record; destroying an unknown id is fine', async () => {
      const a = makeRecord();
      const b = makeRecord();
      await store.create(a);
      await store.create(b);
      await store.destroy(a.id);
      await store.destroy(randomId());
      assert.equal(await store.get(a.id), null);
      assert.ok(await store.get(b.id));
    });

    it('keeps all of 50 concurrent writes to different keys of one session', async () => {
      const record = makeRecord({ data: {} });
      await store.create(record);
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          store.update(record.id, { data: { set: { [`k${i}`]: i } }, lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 }),
        ),
      );
      const loaded = await store.get(record.id);
      assert.equal(Object.keys(loaded?.data ?? {}).length, 50);
      for (let i = 0; i < 50; i++) assert.equal(loaded?.data[`k${i}`], i);
    });

    /** Rejects with ERR_TOO_LARGE (a synchronous store throws it: the same to the engine). */
    const tooLarge = (run: () => unknown): Promise<void> =>
      assert.rejects(
        async () => run(),
        (error: unknown) => {
          assert.ok(error instanceof CoatcheckError, `expected a CoatcheckError, got ${String(error)}`);
          assert.equal(error.code, 'ERR_TOO_LARGE');
          assert.equal(error.status, 413);
          return true;
        },
      );

    it('maxBytes: measures keys and JSON values in UTF-8 bytes, data and meta together; refuses past it, writing nothing', async () => {
      // Multi-byte text, nesting, escapes: the measure is the UTF-8 bytes of each key plus those of
      // JSON.stringify(value), whatever the store keeps on disk (jsonb, a hash, JSON text).
      const data = { 'clé ✓': 'ü'.repeat(10), list: [1, 'two', { three: [3, null, true] }], 'quote"d': 'a "b" \\ c' };
      const meta = { m: 'x'.repeat(11), n: { nested: { x: 'y, z: w' } } };
      const record = makeRecord({ data, meta });
      await store.create(record);
      const measured = recordBytes(data, meta);
      assert.equal(measured, 8 + 22 + 4 + 33 + 7 + 14 + 1 + 13 + 1 + 26, 'the measure of the record (see recordBytes)');
      const times = () => ({ lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 });
      // Adding { n: 'é' } adds 1 + 4 bytes: exactly at the bound passes...
      assert.equal(await store.update(record.id, { data: { set: { n: 'é' } }, maxBytes: measured + 5, ...times() }), true);
      // ...6 more (4 in data, 2 in meta) with room for 5 do not, and write nothing (not the times either).
      const before = await store.get(record.id);
      await tooLarge(() => store.update(record.id, { data: { set: { o: 'p' } }, meta: { set: { q: 1 } }, maxBytes: measured + 10, ...times(), expiresAt: Date.now() + 120_000 }));
      assert.deepEqual(await store.get(record.id), before, 'a refused update writes nothing');
      // Replacing a value counts the difference: 9 bytes more does not fit, 6 fewer does.
      await tooLarge(() => store.update(record.id, { meta: { set: { m: 'x'.repeat(20) } }, maxBytes: measured + 5, ...times() }));
      assert.equal(await store.update(record.id, { meta: { set: { m: 'x'.repeat(5) } }, maxBytes: measured + 5, ...times() }), true);
      assert.deepEqual((await store.get(record.id))?.meta, { m: 'x'.repeat(5), n: meta.n });
    });

    it('maxBytes: a save that keeps or shrinks a record already over the bound passes; a missing or guarded-off record is false, not too large', async () => {
      const record = makeRecord({ data: { big: 'x'.repeat(500), small: 1 } });
      await store.create(record);
      const times = () => ({ lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 });
      // Over the bound of 100 already: same size, smaller, and a removal all pass.
      assert.equal(await store.update(record.id, { data: { set: { small: 2 } }, maxBytes: 100, ...times() }), true);
      assert.equal(await store.update(record.id, { data: { set: { big: 'y'.repeat(400) } }, maxBytes: 100, ...times() }), true);
      assert.equal(await store.update(record.id, { data: { unset: ['small'] }, maxBytes: 100, ...times() }), true);
      assert.equal(await store.update(record.id, { maxBytes: 100, ...times() }), true, 'a touch');
      // Growing it does not, even by one byte.
      await tooLarge(() => store.update(record.id, { data: { set: { big: 'y'.repeat(401) } }, maxBytes: 100, ...times() }));
      assert.deepEqual((await store.get(record.id))?.data, { big: 'y'.repeat(400) });
      // Nothing to refuse: an unknown id and a failed guard answer false as always.
      assert.equal(await store.update(randomId(), { data: { set: { a: 'x'.repeat(500) } }, maxBytes: 10, ...times() }), false);
      assert.equal(await store.update(record.id, { data: { set: { a: 'x'.repeat(500) } }, guard: { present: ['absent-key'] }, maxBytes: 10, ...times() }), false);
    });

    it('maxBytes: of 30 concurrent saves that each fit alone, only as many as fit together apply', async () => {
      const record = makeRecord({ data: {} });
      await store.create(record);
      // Each key adds 3 + 102 bytes; 1 000 bytes hold 9 of them.
      const results = await Promise.allSettled(
        Array.from({ length: 30 }, (_, i) =>
          Promise.resolve().then(() =>
            store.update(record.id, { data: { set: { [`k${String(i).padStart(2, '0')}`]: 'v'.repeat(100) } }, maxBytes: 1_000, lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 }),
          ),
        ),
      );
      const applied = results.filter((result) => result.status === 'fulfilled' && result.value === true).length;
      const refused = results.filter((result) => result.status === 'rejected' && (result.reason as { code?: unknown }).code === 'ERR_TOO_LARGE').length;
      assert.equal(applied, 9, 'as many as fit');
      assert.equal(refused, 21, 'the others are refused as too large, not failed otherwise');
      const loaded = await store.get(record.id);
      assert.ok(loaded);
      assert.equal(Object.keys(loaded.data).length, 9);
      assert.ok(recordBytes(loaded.data, loaded.meta) <= 1_000);
    });

    it('maxBytes: keeps the size right through removals, replacements and per-key changes of data and meta', async () => {
      const record = makeRecord({ data: { a: 'x'.repeat(50), b: [1, 2, 3] }, meta: { c: 'ü'.repeat(5) } });
      await store.create(record);
      const times = () => ({ lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 });
      // A store that keeps a running size must keep it exact whatever the saves did, with or
      // without a bound: each step below is checked against the record's own measure.
      const steps: Pick<SessionPatch, 'data' | 'meta'>[] = [
        { data: { unset: ['a'] } },
        { data: { set: { b: 'short', d: { e: 'f' } } }, meta: { unset: ['c'] } },
        { meta: { set: { g: ['h', 'ï'] } } },
        { data: { set: { a: 'x'.repeat(70) }, unset: ['d'] } },
        { data: { unset: ['missing'] }, meta: { set: { g: 1 } } },
      ];
      for (const [i, step] of steps.entries()) {
        assert.equal(await store.update(record.id, { ...step, ...(i % 2 === 0 && { maxBytes: 10_000 }), ...times() }), true);
        const loaded = await store.get(record.id);
        assert.ok(loaded);
        const size = recordBytes(loaded.data, loaded.meta);
        // Exactly at its own size, it still passes (not larger than before); one byte less and
        // growing by one byte, it does not.
        assert.equal(await store.update(record.id, { data: { set: { z: 1 } }, maxBytes: size + 2, ...times() }), true, `step ${i}: at the bound`);
        await tooLarge(() => store.update(record.id, { data: { set: { z: 10 } }, maxBytes: size + 2, ...times() }));
        assert.equal(await store.update(record.id, { data: { unset: ['z'] }, ...times() }), true);
      }
    });

    it('lists a user\'s sessions without data, oldest first', async () => {
      const now = Date.now();
      const second = makeRecord({ userId: 'alice', createdAt: now - 1_000, ip: '10.0.0.2', userAgent: 'phone' });
      const first = makeRecord({ userId: 'alice', createdAt: now - 5_000, ip: '10.0.0.1', userAgent: 'laptop' });
      await store.create(second);
      await store.create(first);
      await store.create(makeRecord({ userId: 'bob' }));
      await store.create(makeRecord({ userId: null }));
      const list = await store.listByUser('alice');
      assert.deepEqual(
        list.map((s) => [s.id, s.userAgent, s.ip]),
        [
          [first.id, 'laptop', '10.0.0.1'],
          [second.id, 'phone', '10.0.0.2'],
        ],
      );
      for (const item of list) {
        assert.equal('data' in item, false);
        assert.equal(item.userId, 'alice');
        assert.equal(typeof item.lastSeenAt, 'number');
        assert.equal(typeof item.expiresAt, 'number');
      }
      assert.deepEqual(await store.listByUser('nobody'), []);
    });

    it('moves a session between users when a patch changes the user', async () => {
      const record = makeRecord({ userId: null });
      await store.create(record);
      await store.update(record.id, { userId: 'carol', lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 });
      assert.deepEqual((await store.listByUser('carol')).map((s) => s.id), [record.id]);
      await store.update(record.id, { userId: 'dave', lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 });
      assert.deepEqual(await store.listByUser('carol'), []);
      assert.deepEqual((await store.listByUser('dave')).map((s) => s.id), [record.id]);
    });

    it('destroys all sessions of one user, except the ones named', async () => {
      const a1 = makeRecord({ userId: 'alice' });
      const a2 = makeRecord({ userId: 'alice' });
      const a3 = makeRecord({ userId: 'alice' });
      const b = makeRecord({ userId: 'bob' });
      const guest = makeRecord({ userId: null });
      for (const r of [a1, a2, a3, b, guest]) await store.create(r);
      assert.equal(await store.destroyByUser('alice', [a2.id]), 2);
      assert.equal(await store.get(a1.id), null);
      assert.equal(await store.get(a3.id), null);
      assert.ok(await store.get(a2.id));
      assert.ok(await store.get(b.id));
      assert.ok(await store.get(guest.id));
      assert.deepEqual((await store.listByUser('alice')).map((s) => s.id), [a2.id]);
    });

    it('destroys all guest sessions with a null user', async () => {
      const g1 = makeRecord({ userId: null });
      const g2 = makeRecord({ userId: null });
      const u = makeRecord({ userId: 'erin' });
      for (const r of [g1, g2, u]) await store.create(r);
      assert.equal(await store.destroyByUser(null), 2);
      assert.equal(await store.get(g1.id), null);
      assert.equal(await store.get(g2.id), null);
      assert.ok(await store.get(u.id));
    });

    it('destroys everything', async () => {
      const records = [makeRecord({ userId: 'x' }), makeRecord(), makeRecord()];
      for (const r of records) await store.create(r);
      assert.equal(await store.destroyAll(), 3);
      for (const r of records) assert.equal(await store.get(r.id), null);
      assert.deepEqual(await store.listByUser('x'), []);
    });

    it('destroyIfEmpty (optional): deletes only a record with no data, no user and no meta but the ignored keys', async (t) => {
      if (!store.destroyIfEmpty) {
        t.diagnostic(`${name} has no destroyIfEmpty: the engine re-reads an emptied session, then deletes it`);
        assert.equal(store.destroyIfEmpty, undefined);
        return;
      }
      const destroyIfEmpty = store.destroyIfEmpty.bind(store);
      const ignored = ['requests', 'rotatedAt'];
      const empty = makeRecord({ userId: null, data: {}, meta: { requests: 3, rotatedAt: 1 } });
      const withData = makeRecord({ userId: null, data: { a: 1 }, meta: {} });
      const withUser = makeRecord({ userId: 'someone', data: {}, meta: {} });
      const withMeta = makeRecord({ userId: null, data: {}, meta: { csrf: 'x', requests: 1 } });
      for (const record of [empty, withData, withUser, withMeta]) await store.create(record);
      assert.equal(await destroyIfEmpty(empty.id, ignored), 'deleted');
      assert.equal(await store.get(empty.id), null);
      for (const record of [withData, withUser, withMeta]) {
        assert.equal(await destroyIfEmpty(record.id, ignored), 'kept', JSON.stringify(record));
        assert.notEqual(await store.get(record.id), null);
      }
      assert.equal(await destroyIfEmpty(randomId(), ignored), 'absent');
      // Emptied by a patch (the engine's removals), then judged: deleted.
      assert.equal(await store.update(withData.id, { data: { unset: ['a'] }, lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 }), true);
      assert.equal(await destroyIfEmpty(withData.id, ignored), 'deleted');
    });

    it('destroyStep (optional): ends guest sessions, then all sessions, in bounded steps', async (t) => {
      if (!store.destroyStep) {
        t.diagnostic(`${name} has no destroyStep: the engine uses destroyAll / destroyByUser(null)`);
        assert.equal(store.destroyStep, undefined);
        return;
      }
      const guests = Array.from({ length: 40 }, () => makeRecord({ userId: null }));
      const users = Array.from({ length: 25 }, (_, i) => makeRecord({ userId: `step-${i % 5}` }));
      for (const r of [...guests, ...users]) await store.create(r);
      const walk = async (guestsOnly: boolean): Promise<{ deleted: number; steps: number }> => {
        let cursor: string | null = null;
        let deleted = 0;
        let steps = 0;
        do {
          const result: { deleted: number; cursor: string | null } = await store.destroyStep!({ guestsOnly, limit: 10, cursor });
          deleted += result.deleted;
          cursor = result.cursor;
          steps++;
          assert.ok(steps < 1000, 'the walk must end');
        } while (cursor !== null);
        return { deleted, steps };
      };
      const guestRun = await walk(true);
      assert.equal(guestRun.deleted, 40);
      for (const r of guests) assert.equal(await store.get(r.id), null);
      for (const r of users) assert.ok(await store.get(r.id));
      const allRun = await walk(false);
      assert.equal(allRun.deleted, 25);
      t.diagnostic(`steps with limit 10: ${guestRun.steps} (guests), ${allRun.steps} (all)`);
      for (const r of users) assert.equal(await store.get(r.id), null);
      assert.deepEqual(await store.listByUser('step-0'), []);
    });

    it('destroyStep (optional): a session created during the walk ends, or stays listed and killable by user', async (t) => {
      if (!store.destroyStep) return; // covered by the test above
      // Logins while "log out everyone" runs: the walk may miss a new session, but must not
      // leave it out of its user's listing, or "log out everywhere" would miss it later.
      for (let i = 0; i < 200; i++) await store.create(makeRecord({ userId: `walk-old-${i % 40}` }));
      const late: SessionRecord[] = [];
      let cursor: string | null = null;
      let steps = 0;
      do {
        const result: { cursor: string | null } = await store.destroyStep({ guestsOnly: false, limit: 10, cursor });
        cursor = result.cursor;
        for (let k = 0; k < 3; k++) {
          const record = makeRecord({ userId: `walk-late-${steps}-${k}` });
          await store.create(record);
          late.push(record);
        }
        steps++;
        assert.ok(steps < 10_000, 'the walk must end');
      } while (cursor !== null);
      let survivors = 0;
      for (const record of late) {
        if ((await store.get(record.id)) === null) continue;
        survivors++;
        const userId = record.userId as string;
        // The user goes on using it, then signs out everywhere.
        const now = Date.now();
        assert.equal(await store.update(record.id, { data: { set: { n: 1 } }, lastSeenAt: now, expiresAt: now + 60_000 }), true);
        assert.deepEqual((await store.listByUser(userId)).map((s) => s.id), [record.id], `${userId} is listed`);
        assert.equal(await store.destroyByUser(userId), 1, `${userId} is killed by user`);
        assert.equal(await store.get(record.id), null);
      }
      t.diagnostic(`${survivors} of ${late.length} sessions created during the walk survived it`);
    });

    it('deletes expired records in bounded batches, resumable by cursor', async () => {
      const now = Date.now();
      // Expired a moment ago by the sweep's clock but not yet by wall time, so TTL stores keep them.
      const cutoff = now + 120_000;
      const expired = Array.from({ length: 25 }, (_, i) =>
        makeRecord({ userId: i % 5 === 0 ? 'sweep-user' : null, expiresAt: now + 60_000 + i }),
      );
      const live = Array.from({ length: 5 }, () => makeRecord({ expiresAt: now + 3_600_000 }));
      for (const r of [...expired, ...live]) await store.create(r);
      let cursor: string | null | undefined;
      let total = 0;
      let calls = 0;
      do {
        const result = await store.deleteExpired({ before: cutoff, limit: 10, cursor });
        assert.ok(result.deleted <= 10, `batch deleted ${result.deleted} > limit`);
        total += result.deleted;
        cursor = result.cursor;
        calls++;
        assert.ok(calls < 50, 'sweep did not finish');
      } while (cursor);
      for (const r of live) assert.ok(await store.get(r.id), 'a live record was swept');
      const left = (await Promise.all(expired.map((r) => store.get(r.id)))).filter(Boolean).length;
      // Stores with native TTL may report 0 here and rely on their own expiry instead.
      assert.ok(total === 25 || total === 0, `deleted ${total}`);
      if (total === 25) {
        assert.equal(left, 0);
        assert.ok(calls >= 3, 'batches were not bounded');
        assert.deepEqual(await store.listByUser('sweep-user'), []);
      }
    });

    it('stats (optional): counts live and expired records, users, guests and top users', async () => {
      if (!store.stats) {
        // Optional method: absent means absent, never a non-function placeholder. The CLI's
        // "not supported" answer for such stores is tested in test/cli.
        assert.equal(store.stats, undefined);
        return;
      }
      const now = Date.now();
      // Judged a minute ahead of wall time so TTL stores still hold the "expired" records.
      const at = now + 120_000;
      assert.deepEqual(await store.stats(at), { sessions: 0, expired: 0, users: 0, guests: 0, topUsers: [] });
      const live = (userId: string | null) => makeRecord({ userId });
      const expired = (userId: string | null) => makeRecord({ userId, expiresAt: now + 60_000 });
      const records = [
        live('stats-a'), live('stats-a'), live('stats-a'),
        live('stats-b'), live('stats-b'),
        live('stats-c'),
        live(null), live(null),
        // Rotation forwarders (user '__moved__') are no one's sessions: neither sessions, users,
        // guests nor top users. An expired one still awaits the sweep like any record.
        live('__moved__'), live('__moved__'), live('__moved__'), live('__moved__'),
        // Expired records count only as expired: stats-d has no live session, so it is no user.
        expired('stats-a'), expired('stats-d'), expired(null), expired('__moved__'),
      ];
      for (const r of records) await store.create(r);
      const stats = await store.stats(at);
      assert.equal(stats.sessions, 8);
      assert.ok(stats.expired === 4 || stats.expired === 0, `expired ${stats.expired}`);
      assert.equal(stats.users, 3);
      assert.equal(stats.guests, 2);
      assert.deepEqual(stats.topUsers, [
        { userId: 'stats-a', sessions: 3 },
        { userId: 'stats-b', sessions: 2 },
        { userId: 'stats-c', sessions: 1 },
      ]);
      assert.deepEqual((await store.stats(at, { topUsers: 1 })).topUsers, [{ userId: 'stats-a', sessions: 3 }]);
      assert.deepEqual((await store.stats(at, { topUsers: 0 })).topUsers, []);
    });

    it('stats (optional): ties rank by user id; a session moved to no user counts as a guest, one claimed as a forwarder not at all', async () => {
      if (!store.stats) return; // covered by the test above
      const moved = makeRecord({ userId: 'tie-z' });
      // Claimed by a rotation: the engine's guarded update gives the old record the user '__moved__'.
      const claimed = makeRecord({ userId: 'tie-y' });
      for (const r of [makeRecord({ userId: 'tie-b' }), makeRecord({ userId: 'tie-a' }), moved, claimed]) await store.create(r);
      await store.update(moved.id, { userId: null, lastSeenAt: Date.now(), expiresAt: Date.now() + 60_000 });
      const claim = await store.update(claimed.id, {
        userId: '__moved__',
        meta: { set: { moved: 'sealed-next-token' } },
        guard: { absent: ['moved'] },
        lastSeenAt: Date.now(),
        expiresAt: Date.now() + 60_000,
      });
      assert.equal(claim, true);
      const stats = await store.stats(Date.now());
      assert.equal(stats.sessions, 3);
      assert.deepEqual(stats.topUsers, [
        { userId: 'tie-a', sessions: 1 },
        { userId: 'tie-b', sessions: 1 },
      ]);
      assert.equal(stats.users, 2);
      assert.equal(stats.guests, 1);
    });

    options.extra?.(() => store);
  });
}
