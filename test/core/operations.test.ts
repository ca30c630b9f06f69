import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SessionEventName } from '../../src/core/events.js';
import { CookieJar } from '../helpers/cookie-jar.js';
import { setup } from '../helpers/harness.js';
import { CorruptRecordError, createSessions } from '../../src/index.js';
import { memoryStore } from '../../src/stores/memory.js';
import type { Store } from '../../src/stores/types.js';

describe('maxSessionsPerUser', () => {
  it('evicts the oldest sessions at login by default', async () => {
    const { visit, sessions, clock } = setup({ maxSessionsPerUser: 2 });
    const browsers = [new CookieJar(), new CookieJar(), new CookieJar()];
    for (const browser of browsers) {
      await visit((s) => s.login('alice'), { browser });
      clock.advance(1);
    }
    assert.equal((await sessions.listByUser('alice')).length, 2);
    assert.equal((await visit((s) => s.userId, { browser: browsers[0] })).value, null, 'the oldest device was signed out');
    assert.equal((await visit((s) => s.userId, { browser: browsers[2] })).value, 'alice');
  });

  it('refuses a new login at the limit with refuse-new, leaving the current session alone', async () => {
    const { visit } = setup({ maxSessionsPerUser: { limit: 1, strategy: 'refuse-new' } });
    await visit((s) => s.login('bob'), { browser: new CookieJar() });
    const other = new CookieJar();
    await visit((s) => s.set('cart', [1]), { browser: other });
    await assert.rejects(visit((s) => s.login('bob'), { browser: other }), (e: Error & { code?: string; status?: number }) => e.code === 'ERR_TOO_MANY_SESSIONS' && e.status === 409);
    assert.deepEqual((await visit((s) => s.get('cart'), { browser: other })).value, [1]);
  });

  it('does not count the session that is logging in again', async () => {
    const { visit, sessions } = setup({ maxSessionsPerUser: { limit: 1, strategy: 'refuse-new' } });
    await visit((s) => s.login('carol'));
    await visit((s) => s.login('carol'));
    assert.equal((await sessions.listByUser('carol')).length, 1);
  });

  it('rejects bad limits at setup', async () => {
    const { createSessions } = await import('../../src/index.js');
    const { memoryStore } = await import('../../src/stores/memory.js');
    assert.throws(() => createSessions({ store: memoryStore(), maxSessionsPerUser: 0 }), { code: 'ERR_CONFIG' });
    assert.throws(() => createSessions({ store: memoryStore(), cleanupProbability: 2 }), { code: 'ERR_CONFIG' });
  });
});

describe('probabilistic cleanup (clean_check_percent)', () => {
  it('sweeps a batch of expired sessions in the background of a request', async () => {
    const { visit, clock, store } = setup({ cleanupProbability: 1, idleTimeout: 60 });
    for (let i = 0; i < 5; i++) await visit((s) => s.set('i', i), { browser: new CookieJar() });
    clock.advance(61);
    assert.equal(store.calls.deleteExpired ?? 0, 0);
    await visit((s) => s.set('fresh', true), { browser: new CookieJar() });
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(store.calls.deleteExpired, 1);
  });

  it('is off by default', async () => {
    const { visit, store } = setup();
    for (let i = 0; i < 20; i++) await visit((s) => s.set('i', i), { browser: new CookieJar() });
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(store.calls.deleteExpired ?? 0, 0);
  });
});

describe('events and metrics', () => {
  it('emits typed lifecycle events that never carry a token', async () => {
    const { visit, sessions, jar, clock } = setup({ idleTimeout: 600, rotation: { afterSeconds: 100 } });
    const seen: string[] = [];
    const payloads: unknown[] = [];
    for (const name of ['created', 'loaded', 'saved', 'rotated', 'destroyed', 'expired', 'invalidCookie'] as SessionEventName[]) {
      sessions.events.on(name, (e) => {
        seen.push(name);
        payloads.push(e);
      });
    }
    await visit((s) => s.set('a', 1));
    const tokens = [jar.get('sid')!];
    await visit((s) => s.set('a', 2));
    clock.advance(101);
    await visit((s) => s.get('a'));
    tokens.push(jar.get('sid')!);
    await visit((s) => s.flush());
    assert.deepEqual(seen, ['created', 'loaded', 'saved', 'loaded', 'created', 'rotated', 'loaded', 'destroyed']);
    const dump = JSON.stringify(payloads);
    for (const token of tokens) assert.ok(!dump.includes(token), 'no raw token in any event');
  });

  it('counts events and store-call latency, exposed as a snapshot and as Prometheus text', async () => {
    const { visit, sessions } = setup();
    const calls: string[] = [];
    sessions.metrics.onStoreCall((call) => calls.push(`${call.operation}:${call.ok}`));
    await visit((s) => s.set('a', 1));
    await visit((s) => s.get('a'));
    const snap = sessions.metrics.snapshot();
    assert.equal(snap.events.created, 1);
    assert.equal(snap.events.loaded, 1);
    assert.equal(snap.storeCalls.create?.count, 1);
    assert.equal(snap.storeCalls.get?.count, 1);
    assert.equal(snap.storeCalls.get?.buckets.at(-1)?.count, 1, 'cumulative +Inf bucket holds every call');
    assert.deepEqual(calls, ['create:true', 'get:true']);
    const text = sessions.metrics.toPrometheus();
    assert.match(text, /^coatcheck_events_total\{event="created"\} 1$/m);
    assert.match(text, /^coatcheck_store_call_duration_seconds_count\{operation="get"\} 1$/m);
    assert.match(text, /^coatcheck_store_call_duration_seconds_bucket\{operation="get",le="\+Inf"\} 1$/m);
  });

  it('names the user when revoking one session, ignores unknown handles, and reports bulk kills', async () => {
    const { visit, sessions } = setup();
    const events: unknown[] = [];
    sessions.events.on('destroyed', (e) => events.push({ destroyed: e.userId, reason: e.reason }));
    sessions.events.on('killed', (e) => events.push({ killed: e.scope, userId: e.userId, deleted: e.deleted }));
    for (const user of ['alice', 'alice', 'bob', 'bob', 'bob']) await visit((s) => s.login(user), { browser: new CookieJar() });
    const handles = [...(await sessions.listByUser('alice')), ...(await sessions.listByUser('bob'))].map((d) => d.id);
    await visit((s) => s.set('guest', true), { browser: new CookieJar() });
    await sessions.revoke(handles[0]!);
    await sessions.revoke('no-such-handle');
    await sessions.revoke(handles[0]!); // already gone
    assert.equal(await sessions.revokeUser('bob', { except: [handles[2]!] }), 2);
    assert.equal(await sessions.killSessionsByUser('alice'), 1);
    assert.equal(await sessions.killSessionsByUser('__guest__'), 1);
    // An argument that happens to be undefined (an unset variable) is refused, not read as "everyone".
    const unset: string | undefined = process.env.COATCHECK_TEST_NO_SUCH_VARIABLE;
    await assert.rejects((sessions.killSessionsByUser as (user?: string) => Promise<number>)(unset), {
      code: 'ERR_CONFIG',
      message: /killSessionsByUser\(undefined\).*no argument/,
    });
    assert.equal((await sessions.listByUser('bob')).length, 1, 'nothing was ended');
    assert.equal(await sessions.killSessionsByUser(), 1);
    assert.deepEqual(events, [
      { destroyed: 'alice', reason: 'revoked' },
      { killed: 'user', userId: 'bob', deleted: 2 },
      { killed: 'user', userId: 'alice', deleted: 1 },
      { killed: 'guests', userId: null, deleted: 1 },
      { killed: 'everyone', userId: null, deleted: 1 },
    ]);
    assert.equal(sessions.metrics.snapshot().events.killed, 4);
  });

  it('counts failed store calls and emits storeError', async () => {
    const { visit, sessions, store } = setup();
    const errors: string[] = [];
    sessions.events.on('storeError', (e) => errors.push(e.operation));
    await visit((s) => s.set('a', 1));
    store.fault = 'reject';
    await assert.rejects(visit((s) => s.get('a')));
    store.fault = 'none';
    assert.deepEqual(errors, ['get']);
    assert.equal(sessions.metrics.snapshot().storeCalls.get?.errors, 1);
  });

  it('warns on stderr, at most once a minute, when a store fails and nobody listens to storeError', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => {
      if ((warning as Error & { code?: string }).code === 'COATCHECK_STORE_ERROR') warnings.push(warning);
    };
    process.on('warning', onWarning);
    try {
      const { visit, sessions, store } = setup();
      await visit((s) => s.set('a', 1));
      store.fault = 'reject';
      await assert.rejects(visit((s) => s.get('a')));
      await assert.rejects(visit((s) => s.get('a')));
      store.fault = 'none';
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      assert.equal(warnings.length, 1, 'one warning for two failures');
      assert.match(warnings[0]!.message, /session store .* failed during get .*answered 503.*storeError/);
      assert.equal(sessions.metrics.snapshot().storeCalls.get?.errors, 2);
      const heard = setup();
      heard.sessions.events.on('storeError', () => {});
      await heard.visit((s) => s.set('a', 1));
      heard.store.fault = 'reject';
      await assert.rejects(heard.visit((s) => s.get('a')));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(warnings.length, 1, 'a listener hears it instead');
      // A corrupt record is no outage: read as "no session", served, and not warned about.
      const corrupt = setup();
      const inner = corrupt.store.get.bind(corrupt.store);
      corrupt.store.get = async (id) => {
        await inner(id);
        throw new CorruptRecordError('memory', 'bad bytes');
      };
      await corrupt.visit((s) => s.set('a', 1));
      const read = await corrupt.visit((s) => s.isNew);
      assert.equal(read.value, true);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(warnings.length, 1, 'no warning for a corrupt record');
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('killing every (guest) session on a store with destroyStep', () => {
  it('loops one bounded store call per step until the store says done', async () => {
    const inner = memoryStore({ sweepInterval: 0 });
    const steps: Array<{ guestsOnly: boolean; limit: number; cursor: string | null }> = [];
    // A store that ends (guest) sessions three at a time, resuming by cursor.
    const store: Store = {
      ...inner,
      name: 'stepping',
      async destroyStep(step) {
        steps.push(step);
        const ids = Number(step.cursor ?? 0);
        let deleted = 0;
        for (let i = ids; i < ids + 3 && i < 10; i++) deleted++;
        const next = ids + 3;
        return { deleted, cursor: next < 10 ? String(next) : null };
      },
      destroyAll: () => Promise.reject(new Error('must not be called')),
      destroyByUser: (user, except) => (user === null ? Promise.reject(new Error('must not be called')) : inner.destroyByUser(user, except)),
    };
    const sessions = createSessions({ store });
    assert.equal(await sessions.killSessionsByUser('__guest__'), 10);
    assert.deepEqual(steps.map((s) => s.cursor), [null, '3', '6', '9']);
    assert.ok(steps.every((s) => s.guestsOnly && s.limit > 0));
    steps.length = 0;
    assert.equal(await sessions.killSessionsByUser(), 10);
    assert.ok(steps.every((s) => !s.guestsOnly));
    assert.equal(await sessions.killSessionsByUser('someone'), 0);
    assert.equal(sessions.metrics.snapshot().storeCalls.destroyStep?.count, 8);
  });
});
