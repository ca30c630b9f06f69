/**
 * Flash messages under parallel requests (found by the model-based test): the queue used to be one
 * meta key rewritten whole, so of two parallel `flash()` calls one was lost, and a request that
 * loaded before another consumed a message wrote it back with its own.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JsonValue } from '../../src/types.js';
import { setup } from '../helpers/harness.js';

describe('flash messages with parallel requests', () => {
  async function parallel(t: ReturnType<typeof setup>) {
    const open = () => t.sessions.open({ cookieHeader: t.jar.header(), https: false, ip: '192.0.2.1', userAgent: 'test-agent' });
    const a = open();
    const b = open();
    await Promise.all([a.load(), b.load()]);
    return { a, b };
  }

  it('two parallel flash() calls: the next page shows both, in the order they were queued', async () => {
    const t = setup();
    await t.visit((s) => s.set('user', 'ada'));
    const { a, b } = await parallel(t);
    a.flash('Saved profile');
    t.clock.advance(0.001);
    b.flash('Saved address');
    await Promise.all([a.commit(200), b.commit(200)]);
    const shown = await t.visit((s) => s.consumeFlashes().map((f) => f.message));
    assert.deepEqual(shown.value, ['Saved profile', 'Saved address']);
    const again = await t.visit((s) => s.consumeFlashes());
    assert.deepEqual(again.value, []);
  });

  it('a request that loaded before another consumed a message does not bring it back', async () => {
    const t = setup();
    await t.visit((s) => {
      s.set('user', 'ada'); // something else keeps the session once the flash is consumed
      s.flash('one');
    });
    const { a, b } = await parallel(t);
    assert.deepEqual(a.consumeFlashes().map((f) => f.message), ['one']);
    await a.commit(200);
    b.flash('two');
    await b.commit(200);
    const shown = await t.visit((s) => s.consumeFlashes().map((f) => f.message));
    assert.deepEqual(shown.value, ['two']);
  });

  it('keeps the newest 100 and still reads a queue stored whole by an earlier version', async () => {
    const t = setup();
    await t.visit((s) => {
      for (let i = 0; i < 120; i++) s.flash(`m${i}`);
    });
    const shown = await t.visit((s) => s.consumeFlashes().map((f) => f.message));
    assert.equal(shown.value.length, 100);
    assert.equal(shown.value[0], 'm20');
    assert.equal(shown.value[99], 'm119');
    // A record written before per-message keys: one `flash` meta entry holding the array.
    const first = await t.visit((s) => s.set('k', 1));
    const id = first.session.handle as string;
    await t.store.update(id, { lastSeenAt: t.clock.now(), expiresAt: t.clock.now() + 3_600_000, meta: { set: { flash: [{ message: 'old', category: 'info' }] } } });
    const legacy = await t.visit((s) => {
      s.flash('new');
      return s.consumeFlashes().map((f) => f.message);
    });
    assert.deepEqual(legacy.value, ['old', 'new']);
  });

  it('keeps queue order across requests in the same millisecond and after the clock steps back', async () => {
    const t = setup();
    await t.visit((s) => s.set('user', 'ada'));
    for (let i = 0; i < 30; i++) await t.visit((s) => s.flash(`m${i}`)); // the clock does not move
    t.clock.advance(-2);
    await t.visit((s) => s.flash('after the step back'));
    const shown = await t.visit((s) => s.consumeFlashes().map((f) => f.message));
    assert.deepEqual(shown.value, [...Array.from({ length: 30 }, (_, i) => `m${i}`), 'after the step back']);
  });

  it('parallel requests cannot merge a session past maxDataSize; one over it already still serves read-only requests', async () => {
    const t = setup({ maxDataSize: 2_000 });
    await t.visit((s) => s.set('user', 'ada'));
    const { a, b } = await parallel(t);
    for (let i = 0; i < 12; i++) {
      a.flash(`a message long enough to count ${i}`);
      b.flash(`b message long enough to count ${i}`);
    }
    // Each within the limit alone; together over it: the store refuses the second (413).
    const results = await Promise.allSettled([a.commit(200), b.commit(200)]);
    assert.equal(results[0].status, 'fulfilled');
    assert.equal(results[1].status, 'rejected');
    assert.equal((results[1] as PromiseRejectedResult).reason.code, 'ERR_TOO_LARGE');
    // Over the limit anyway (stored before the limit was lowered, say): read-only requests and
    // requests that shrink it are still served.
    const handle = a.handle as string;
    const extra: Record<string, JsonValue> = {};
    for (let i = 0; i < 12; i++) extra[`flash.${String(t.clock.now() + 1).padStart(13, '0')}.${String(i).padStart(6, '0')}.extra`] = { message: `c message long enough to count ${i}`, category: 'info' };
    assert.equal(await t.store.update(handle, { meta: { set: extra }, lastSeenAt: t.clock.now(), expiresAt: t.clock.now() + 3_600_000 }), true);
    const read = await t.visit((s) => s.get('user'));
    assert.equal(read.value, 'ada');
    const shown = await t.visit((s) => s.consumeFlashes().length);
    assert.equal(shown.value, 24);
  });
});
