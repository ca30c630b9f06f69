import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StoreCaller, callStore } from '../../src/core/store-call.js';
import { StoreError, StoreTimeoutError, StoreConflictError } from '../../src/errors.js';
import { memoryStore } from '../../src/stores/memory.js';

const store = memoryStore({ sweepInterval: 0 });
const later = <T>(ms: number, value: T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(value), ms));
const never = (): Promise<never> => new Promise(() => {});

describe('StoreCaller (one shared timer for every call of an engine)', () => {
  it('answers calls that finish in time, in any order', async () => {
    const caller = new StoreCaller(store, 500);
    const results = await Promise.all([caller.call('get', () => later(30, 'slow')), caller.call('get', () => later(1, 'fast')), caller.call('get', async () => 'sync')]);
    assert.deepEqual(results, ['slow', 'fast', 'sync']);
  });

  it('rejects each hung call at its own deadline while later calls still succeed', async () => {
    const seen: Array<{ operation: string; ok: boolean; durationMs: number }> = [];
    const caller = new StoreCaller(store, 80, (operation, durationMs, error) => seen.push({ operation, ok: error === undefined, durationMs }));
    const started = performance.now();
    const hung1 = caller.call('get', never);
    await later(40, null);
    const hung2 = caller.call('update', never);
    const quick = caller.call('touch', () => later(5, true));
    const first = await hung1.then(() => 'resolved', (error: unknown) => ({ error, at: performance.now() - started }));
    assert.ok(typeof first === 'object' && first.error instanceof StoreTimeoutError);
    assert.ok(first.at >= 75 && first.at < 400, `first timeout after ${first.at} ms`);
    assert.equal(await quick, true);
    const second = await hung2.then(() => 'resolved', (error: unknown) => ({ error, at: performance.now() - started }));
    assert.ok(typeof second === 'object' && second.error instanceof StoreTimeoutError);
    assert.ok(second.at >= 115, `second timeout after ${second.at} ms (deadline 120 ms)`);
    assert.match((second.error as Error).message, /update/);
    assert.deepEqual(seen.map((s) => `${s.operation}:${s.ok}`), ['touch:true', 'get:false', 'update:false']);
    assert.equal(seen.length, 3);
  });

  it('ignores an answer that arrives after the deadline', async () => {
    const caller = new StoreCaller(store, 20);
    const outcome = await caller.call('get', () => later(60, 'too late')).catch((error: unknown) => error);
    assert.ok(outcome instanceof StoreTimeoutError);
    await later(60, null); // the late answer lands here and must not throw or resolve anything
    assert.equal(await caller.call('get', async () => 'next'), 'next');
  });

  it('wraps outages in StoreError and keeps contract errors as they are', async () => {
    const caller = new StoreCaller(store, 1000);
    const outage = await caller.call('get', async () => {
      throw new Error('ECONNRESET');
    }).catch((error: unknown) => error);
    assert.ok(outage instanceof StoreError);
    assert.match((outage as Error).message, /memory.*get/);
    const thrownSync = await caller.call('get', () => {
      throw new Error('sync throw');
    }).catch((error: unknown) => error);
    assert.ok(thrownSync instanceof StoreError);
    const conflict = await caller.call('create', async () => {
      throw new StoreConflictError('memory');
    }).catch((error: unknown) => error);
    assert.ok(conflict instanceof StoreConflictError);
  });

  it('handles many overlapping calls, some hung, without leaking pending entries', async () => {
    const caller = new StoreCaller(store, 50);
    const calls = Array.from({ length: 3000 }, (_, i) => caller.call('get', () => (i % 500 === 0 ? never() : later(i % 7, i))));
    const settled = await Promise.allSettled(calls);
    const timedOut = settled.filter((s) => s.status === 'rejected' && s.reason instanceof StoreTimeoutError).length;
    assert.equal(timedOut, 6);
    assert.equal(settled.filter((s) => s.status === 'fulfilled').length, 2994);
  });

  it('settles at once when a store method answers a plain value instead of a promise', async () => {
    const seen: string[] = [];
    const caller = new StoreCaller(store, 5_000, (operation, _ms, error) => seen.push(`${operation}:${error === undefined}`));
    const started = performance.now();
    const value = await caller.call('get', () => 'plain');
    assert.equal(value, 'plain');
    assert.ok(performance.now() - started < 1_000);
    assert.deepEqual(seen, ['get:true']);
  });

  it('callNow answers a synchronous store in the same tick, and waits (with the timeout) for a promise', async () => {
    const seen: string[] = [];
    const caller = new StoreCaller(store, 30, (operation, _ms, error) => seen.push(`${operation}:${error === undefined}`));
    assert.equal(caller.callNow('get', () => 'plain'), 'plain');
    assert.deepEqual(seen, ['get:true']);
    const pending = caller.callNow('update', () => later(1, true));
    assert.ok(pending instanceof Promise);
    assert.equal(await pending, true);
    const hung = caller.callNow('touch', never);
    assert.ok(hung instanceof Promise);
    await assert.rejects(hung, StoreTimeoutError);
    assert.deepEqual(seen, ['get:true', 'update:true', 'touch:false']);
  });

  it('callNow throws a synchronous failure at once: outages as StoreError, contract errors as they are', () => {
    const seen: string[] = [];
    const caller = new StoreCaller(store, 5_000, (operation, _ms, error) => seen.push(`${operation}:${(error as Error | undefined)?.name ?? 'ok'}`));
    assert.throws(
      () =>
        caller.callNow('get', () => {
          throw new Error('disk I/O error');
        }),
      (error: unknown) => error instanceof StoreError && error.status === 503 && /disk I\/O error/.test(String((error as Error).cause)),
    );
    assert.throws(
      () =>
        caller.callNow('create', () => {
          throw new StoreConflictError('memory');
        }),
      StoreConflictError,
    );
    assert.deepEqual(seen, ['get:StoreError', 'create:StoreConflictError']);
  });

  it('call turns a synchronous throw into a rejection', async () => {
    const caller = new StoreCaller(store, 5_000);
    const outcome = caller.call('get', () => {
      throw new Error('boom');
    });
    assert.ok(outcome instanceof Promise);
    await assert.rejects(outcome, StoreError);
  });

  it('callStore runs a single call the same way', async () => {
    assert.equal(await callStore(store, 'stats', 100, async () => 7), 7);
    assert.ok((await callStore(store, 'stats', 10, never).catch((e: unknown) => e)) instanceof StoreTimeoutError);
  });
});
