/**
 * `cycleId()` in a request whose own view ends empty, while a parallel request saved a key: the
 * key moves to the new id, as in any cycle (found by the model-based test; the whole session used
 * to be deleted, the parallel key with it). Without a parallel save, the session is deleted.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { EmptyDestroyResult, Store } from '../../src/stores/types.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { setup } from '../helpers/harness.js';

describe('cycleId() on a view this request emptied', () => {
  const open = (t: ReturnType<typeof setup>) => t.sessions.open({ cookieHeader: t.jar.header(), https: false, ip: '192.0.2.1', userAgent: 'test-agent' });

  it('keeps what a parallel request saved meanwhile, under the new id', async () => {
    const t = setup();
    await t.visit((s) => s.set('a', 1));
    const a = open(t);
    const b = open(t);
    await Promise.all([a.load(), b.load()]);
    b.set('b', 2);
    await b.commit(200);
    const oldHandle = a.handle;
    await a.cycleId();
    a.delete('a');
    const result = await a.commit(200);
    t.jar.apply(result?.setCookie ?? []);
    const after = await t.visit((s) => ({ data: s.toJSON(), handle: s.handle }));
    assert.deepEqual(after.value.data, { b: 2 });
    assert.notEqual(after.value.handle, oldHandle);
    // The old record stays until it expires as a mark no cookie can follow, naming the new one.
    const old = await t.store.get(oldHandle as string);
    assert.deepEqual([old?.userId, old?.meta.moved, old?.meta.movedTo], ['__moved__', 'cycled', after.value.handle]);
  });

  it('deletes the session when nothing else was stored, in one step, as an emptied session', async () => {
    const t = setup();
    await t.visit((s) => s.set('a', 1));
    const a = open(t);
    await a.load();
    const oldHandle = a.handle;
    const destroyed: string[] = [];
    t.sessions.events.on('destroyed', ({ handle, reason }) => destroyed.push(`${handle === oldHandle ? 'old' : 'other'}:${reason}`));
    await a.cycleId();
    a.delete('a');
    const result = await a.commit(200);
    assert.match(result?.setCookie[0] ?? '', /Max-Age=0/);
    assert.equal(await t.store.get(oldHandle as string), null);
    assert.deepEqual(destroyed, ['old:emptied']);
  });

  it('keeps a parallel save that lands just before the old record is judged (one step: destroyIfEmpty)', async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    let beforeJudging: (() => Promise<void>) | null = null;
    const store: Store = Object.assign(Object.create(inner) as Store, {
      name: 'hooked-memory',
      destroyIfEmpty: async (id: string, ignored: readonly string[]) => {
        const hook = beforeJudging;
        beforeJudging = null;
        if (hook) await hook();
        return (inner.destroyIfEmpty as (i: string, m: readonly string[]) => EmptyDestroyResult)(id, ignored);
      },
    });
    const sessions = createSessions({ store });
    const jar = new CookieJar();
    const request = (cookieHeader = jar.header()) => sessions.open({ cookieHeader, https: false, ip: '192.0.2.1', userAgent: 'ua' });
    const first = request();
    await first.load();
    first.set('a', 1);
    jar.apply((await first.commit(200))?.setCookie ?? []);
    const a = request();
    const b = request();
    await Promise.all([a.load(), b.load()]);
    a.delete('a');
    await a.cycleId();
    b.set('b', 2);
    beforeJudging = async () => {
      await b.commit(200);
    };
    jar.apply((await a.commit(200))?.setCookie ?? []);
    const after = request();
    await after.load();
    assert.deepEqual(after.toJSON(), { b: 2 });
  });
});
