/**
 * A request that empties its (stale) view while a parallel request saves a key (found by the
 * model-based test): the emptied commit used to re-read the record and then delete it in a second
 * store call, deleting a key saved in between although its request was told it saved. With a
 * store that has `destroyIfEmpty`, the judgement and the delete are one call: the key survives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { EmptyDestroyResult, Store } from '../../src/stores/types.js';

describe('emptying a session while a parallel request saves', () => {
  it('a key saved just before the emptied commit judges the record survives, and so does the cookie', async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    let hold: { reached: () => void; gate: Promise<void> } | null = null;
    // Holds the emptied request right before its final store step, whichever the engine uses.
    const gated = async <R>(step: () => R): Promise<R> => {
      if (hold) {
        const h = hold;
        hold = null;
        h.reached();
        await h.gate;
      }
      return step();
    };
    const store: Store = Object.assign(Object.create(inner) as Store, {
      name: 'gated-memory',
      destroy: (id: string) => gated(() => inner.destroy(id)),
      destroyIfEmpty: (id: string, ignored: readonly string[]) => gated(() => (inner.destroyIfEmpty as (i: string, m: readonly string[]) => EmptyDestroyResult)(id, ignored)),
    });
    const sessions = createSessions({ store });
    const open = (cookie?: string) => sessions.open({ cookieHeader: cookie, https: false, ip: '192.0.2.1', userAgent: 'ua' });
    const first = open();
    await first.load();
    first.set('cart', ['apple']);
    const cookie = ((await first.commit(200))?.setCookie[0] ?? '').split(';')[0];

    const a = open(cookie);
    const b = open(cookie);
    await Promise.all([a.load(), b.load()]);
    a.delete('cart'); // a's view is now empty
    let release!: () => void;
    const reached = new Promise<void>((resolve) => {
      hold = { reached: resolve, gate: new Promise<void>((r) => (release = r)) };
    });
    const aCommit = a.commit(200);
    await Promise.race([reached, new Promise((_, reject) => setTimeout(() => reject(new Error('the emptied commit never reached its final store step')), 2_000))]);
    b.set('language', 'de');
    await b.commit(200);
    release();
    const aResult = await aCommit;
    assert.deepEqual(aResult?.setCookie.filter((c) => /Max-Age=0/.test(c)), [], 'the cookie stays: the session is not empty');
    const check = open(cookie);
    await check.load();
    assert.deepEqual(check.toJSON(), { language: 'de' });
  });
});
