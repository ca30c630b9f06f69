/**
 * Two-tier store: a fast cache (memory, Redis) in front of a durable store (SQLite, PostgreSQL).
 * The durable store is the source of truth; the cache only ever holds snapshots read from it
 * (or written to it), never patches of its own, and every write leaves a short-lived tombstone
 * that stops in-flight fills from putting an older snapshot back. See docs/stores/tiered.md.
 * @module coatcheck/stores/tiered
 */
import { setOwn } from '../core/json.js';
import { checkFactoryOptions } from '../core/known-options.js';
import { CoatcheckError, ConfigError, StoreTimeoutError } from '../errors.js';
import { type Clock, systemClock } from '../core/clock.js';
import type { JsonValue } from '../types.js';
import type { Awaitable, EmptyDestroyResult, ExpiredSweep, MassDestroyStep, SessionPatch, SessionRecord, Store, SweepResult } from './types.js';
import { MAX_TIMER_MS } from '../core/timer.js';

/** Where a tiered `destroyStep` walk is: the durable store's steps, then the cache's. */
function parseStepCursor(cursor: string | null): { phase: 'durable' | 'cache'; inner: string | null } {
  if (cursor === null) return { phase: 'durable', inner: null };
  try {
    const parsed = JSON.parse(cursor) as { phase?: unknown; inner?: unknown };
    const phase = parsed.phase === 'cache' ? 'cache' : 'durable';
    return { phase, inner: typeof parsed.inner === 'string' ? parsed.inner : null };
  } catch {
    return { phase: 'durable', inner: null };
  }
}

/** Which tiered operation a reported cache failure happened in. */
export type TieredCacheOperation =
  | 'get'
  | 'fill'
  | 'create'
  | 'update'
  | 'touch'
  | 'destroy'
  | 'destroyByUser'
  | 'destroyAll'
  | 'destroyStep';

export interface TieredStoreOptions {
  /** The fast tier (memory, Redis). Holds snapshots and tombstones; may lose anything at any time. */
  cache: Store;
  /** The source of truth (SQLite, PostgreSQL). Every write goes here first. */
  durable: Store;
  /**
   * Longest life of a cache entry, in ms, counted from the durable read it was filled from.
   * Bounds how long the cache can disagree with the durable store if an invalidation is lost.
   * Default 300 000 (5 minutes).
   */
  cacheTtl?: number | undefined;
  /**
   * How long the tombstone a write leaves in the cache blocks fills, in ms. Reads of that session
   * go to the durable store meanwhile. A fill is only attempted if its durable read started less
   * than half of this ago. Default 5 000.
   */
  tombstoneTtl?: number | undefined;
  /**
   * How long to wait for the cache, in ms, before treating it as failed (a miss on reads, a
   * reported failure on writes). Keeps a hung cache (a client queueing commands while it
   * reconnects) from turning into an outage. Keep it well under the engine's `storeTimeout`.
   * Default 1 000; at most 2 147 483 647, or `Infinity` to wait forever.
   */
  cacheTimeout?: number | undefined;
  /**
   * Called when the cache fails or times out; the operation still succeeds from the durable store. Must not
   * throw (anything it throws is ignored). Default: one `process.emitWarning` per store instance.
   */
  onCacheError?: ((error: unknown, operation: TieredCacheOperation) => void) | undefined;
  /** `close()` also closes the cache and the durable store. Default true. */
  closeTiers?: boolean | undefined;
  /** Time source for cache lifetimes and tombstones; pass the same clock as `createSessions`. */
  clock?: Clock | undefined;
}

/** Meta key marking a tombstone. Cache-internal meta keys start with one `@`. */
const TOMBSTONE_KEY = '@tombstone';
/** Meta key holding the record's real `expiresAt` (the cache entry's own expiry is capped). */
const EXPIRES_KEY = '@expiresAt';
/**
 * The record's own lastSeenAt: the entry itself carries the fill time, since a cache may derive an
 * entry's lifetime from it (the Redis store sets a time to live of expiresAt − lastSeenAt).
 */
const LAST_SEEN_KEY = '@lastSeenAt';
/** Attempts to place a tombstone before giving up and deleting the cache entry instead. */
const MAX_TOMBSTONE_ATTEMPTS = 5;
/**
 * How long after a durable step of a mass destroy the next step may take to arrive before the
 * walk counts as abandoned (the engine asks again at once, unless it gave up on a timeout).
 */
const ABANDONED_WALK_MS = 1_000;
/** Cache writes issued at once by `destroyByUser`. */
const FAN_OUT = 16;
/** Thrown inside a bulk cache phase that `close()` gave up on: no further cache call. */
class PhaseAbandoned extends Error {}

function defineOwn(target: Record<string, JsonValue>, key: string, value: JsonValue): void {
  setOwn(target, key, value);
}

/** Engine meta keys that start with `@` are stored with one more `@`, so they never clash. */
function encodeMeta(meta: Record<string, JsonValue>, expiresAt: number, lastSeenAt: number): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const key of Object.keys(meta)) defineOwn(out, key.startsWith('@') ? `@${key}` : key, meta[key] as JsonValue);
  defineOwn(out, EXPIRES_KEY, expiresAt);
  defineOwn(out, LAST_SEEN_KEY, lastSeenAt);
  return out;
}

function decodeMeta(meta: Record<string, JsonValue>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const key of Object.keys(meta)) {
    if (key.startsWith('@@')) defineOwn(out, key.slice(1), meta[key] as JsonValue);
    else if (!key.startsWith('@')) defineOwn(out, key, meta[key] as JsonValue);
    // Anything else is cache-internal and never leaves this module.
  }
  return out;
}

function isConflict(error: unknown): boolean {
  return error instanceof CoatcheckError && error.code === 'ERR_STORE_CONFLICT';
}

/** True for a cache entry that is a tombstone (never to be served). */
export function isTombstone(record: SessionRecord): boolean {
  return record.meta[TOMBSTONE_KEY] === true;
}

async function forEachLimit<T>(items: readonly T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await run(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const TIERED_OPTIONS = Object.keys({
  cache: true, durable: true, cacheTtl: true, tombstoneTtl: true, cacheTimeout: true, onCacheError: true, closeTiers: true, clock: true,
} satisfies Record<keyof TieredStoreOptions, true>);

export function tieredStore(options: TieredStoreOptions): Store {
  checkFactoryOptions('tieredStore', options, TIERED_OPTIONS, {
    required: true,
    usage: 'tieredStore({ cache: memoryStore(), durable: postgresStore({ connectionString }) })',
    hints: { ttl: 'use cacheTtl (ms) for cache entries; session lifetimes are createSessions options (idleTimeout, absoluteTimeout, in seconds)' },
  });
  const { cache, durable } = options;
  const cacheTtl = options.cacheTtl ?? 300_000;
  const tombstoneTtl = options.tombstoneTtl ?? 5_000;
  const cacheTimeout = options.cacheTimeout ?? 1_000;
  const closeTiers = options.closeTiers ?? true;
  const clock = options.clock ?? systemClock;
  if (!cache || !durable) throw new ConfigError('tieredStore: both `cache` and `durable` stores are required');
  if (cache === durable) throw new ConfigError('tieredStore: `cache` and `durable` must be different stores');
  if (!(cacheTtl > 0 && Number.isFinite(cacheTtl))) throw new ConfigError('tieredStore: cacheTtl must be a positive number of milliseconds');
  if (!(tombstoneTtl > 0 && Number.isFinite(tombstoneTtl))) {
    throw new ConfigError('tieredStore: tombstoneTtl must be a positive number of milliseconds');
  }
  // Infinity means no timer; a finite delay past setTimeout's limit would fire after 1 ms.
  if (typeof cacheTimeout !== 'number' || !(cacheTimeout === Infinity || (cacheTimeout > 0 && cacheTimeout <= MAX_TIMER_MS))) {
    throw new ConfigError(
      `tieredStore: cacheTimeout must be a number of milliseconds greater than 0 and at most ${MAX_TIMER_MS}, or Infinity to wait forever; got ${String(cacheTimeout)}`,
    );
  }
  /** A fill whose durable read started longer ago than this is dropped: a tombstone may have lapsed. */
  const fillDeadline = tombstoneTtl / 2;
  const name = `tiered(${cache.name}+${durable.name})`;

  let warned = false;
  const onCacheError =
    options.onCacheError ??
    ((error: unknown, operation: TieredCacheOperation): void => {
      if (warned) return;
      warned = true;
      const detail = error instanceof Error ? error.message : String(error);
      process.emitWarning(
        `coatcheck: ${name}: the cache failed during ${operation} (${detail}); serving from the durable store. ` +
          'Further cache failures are not reported: pass onCacheError to see them.',
        { code: 'COATCHECK_TIERED_CACHE' },
      );
    });
  function report(error: unknown, operation: TieredCacheOperation): void {
    try {
      onCacheError(error, operation);
    } catch {
      // A broken reporter must not fail a request that the durable store served.
    }
  }

  /** Runs a cache step, rejecting with a timeout error if the cache does not answer in time. */
  function bounded<T>(operation: TieredCacheOperation, run: () => Awaitable<T>): Promise<T> {
    let pending: Promise<T>;
    try {
      pending = Promise.resolve(run());
    } catch (error) {
      pending = Promise.reject(error);
    }
    if (cacheTimeout === Infinity) return pending;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new StoreTimeoutError(cache.name, operation, cacheTimeout)), cacheTimeout);
      pending.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  /** Bumped by bulk deletes: a fill whose read started in an older epoch is dropped (this process only). */
  let epoch = 0;
  /** The durable store may have deleted any record expiring at or before this: the cache must not vouch for them. */
  let sweptBefore = -Infinity;

  /** Puts a snapshot in the cache if nothing (no entry, no tombstone) is there. Never rejects. */
  async function fill(record: SessionRecord, readStart: number, readEpoch: number, operation: TieredCacheOperation): Promise<void> {
    const now = clock.now();
    if (readEpoch !== epoch || now - readStart >= fillDeadline) return;
    const entryExpiresAt = Math.min(record.expiresAt, readStart + cacheTtl);
    if (entryExpiresAt <= now) return;
    const entry: SessionRecord = {
      id: record.id,
      userId: record.userId,
      data: structuredClone(record.data),
      meta: encodeMeta(record.meta, record.expiresAt, record.lastSeenAt),
      createdAt: record.createdAt,
      lastSeenAt: now,
      expiresAt: entryExpiresAt,
      ip: record.ip,
      userAgent: record.userAgent,
    };
    try {
      await bounded(operation, () => cache.create(entry));
    } catch (error) {
      // A conflict means an entry or a tombstone is there: either way, not ours to overwrite.
      if (!isConflict(error)) report(error, operation);
    }
  }

  /**
   * Makes the cache entry of `id` a tombstone, whatever is there: an atomic `update` turns an
   * entry (or an older tombstone) into one; if there is nothing, `create` places one. If `create`
   * finds something after all (a fill landed between the two, or an entry past its expiry by our
   * clock, which `update` refuses, that a cache with a lagging clock still holds), that is
   * deleted and the next round places the tombstone.
   */
  async function placeTombstone(id: string, abandoned?: () => boolean): Promise<void> {
    /** Before each cache call of a bulk phase: `close()` may have given up on it meanwhile. */
    const go = (): void => {
      if (abandoned?.()) throw new PhaseAbandoned();
    };
    for (let attempt = 0; attempt < MAX_TOMBSTONE_ATTEMPTS; attempt++) {
      go();
      const now = clock.now();
      const expiresAt = now + tombstoneTtl;
      const replaced = await cache.update(id, {
        meta: { set: { [TOMBSTONE_KEY]: true } },
        // Filed as guests: no user index to maintain (a shared one would be a hot key in Redis).
        userId: null,
        lastSeenAt: now,
        expiresAt,
      });
      if (replaced) return;
      go();
      try {
        await cache.create({
          id,
          userId: null,
          data: {},
          meta: { [TOMBSTONE_KEY]: true },
          createdAt: now,
          lastSeenAt: now,
          expiresAt,
          ip: null,
          userAgent: null,
        });
        return;
      } catch (error) {
        if (!isConflict(error)) throw error;
        go();
        await cache.destroy(id);
      }
    }
    go();
    // Lost every round to concurrent fills: at least drop whatever is there now.
    await cache.destroy(id);
    throw new Error(`could not place a tombstone after ${MAX_TOMBSTONE_ATTEMPTS} attempts; the entry was deleted instead`);
  }

  /**
   * Until this time (by `clock`), reads skip the cache: an invalidation failed, so an entry it
   * should have ended may still be there, and it lives at most `cacheTtl` from now. Infinity
   * while a bulk call's tombstones are still being written after it resolved (see bulkInvalidate).
   */
  let distrustUntil = -Infinity;
  /** The distrust left by failed invalidations alone. */
  let failedUntil = -Infinity;
  /** Bulk cache phases still writing tombstones after their call resolved (this process distrusts the cache meanwhile). */
  const background = new Set<Promise<void>>();
  /**
   * Every bulk cache phase not finished yet, from the moment it starts (also while its call still
   * waits for it), with how many of its ids are not done: close() waits for them, within a bound.
   */
  const phases = new Map<Promise<void>, { ids: number; done: number }>();
  /** Set by close() once it stopped waiting for the phases: they make no further cache call. */
  let abandoning = false;
  function refreshDistrust(): void {
    distrustUntil = background.size > 0 ? Infinity : failedUntil;
  }
  function distrust(): void {
    failedUntil = Math.max(failedUntil, clock.now() + cacheTtl);
    refreshDistrust();
  }

  async function invalidate(id: string, operation: TieredCacheOperation): Promise<void> {
    try {
      await bounded(operation, () => placeTombstone(id));
    } catch (error) {
      report(error, operation);
      // A cache that answers but refuses writes (Redis at maxmemory with noeviction) still
      // deletes: drop the entry instead. Not after a timeout, which would only double the wait.
      if (!(error instanceof StoreTimeoutError)) {
        try {
          await bounded(operation, () => cache.destroy(id));
          return;
        } catch (second) {
          report(second, operation);
        }
      }
      distrust();
    }
  }

  /**
   * The cache phase of a bulk call: tombstones `ids` (FAN_OUT at a time, each within
   * `cacheTimeout`; a tombstone the cache refuses is replaced by a delete, as in `invalidate`) and
   * runs `also` (a bulk cache call, within `cacheTimeout`). The call waits for it one
   * `cacheTimeout` at most, not one per group of ids: with the cache stalled, a user with hundreds
   * of sessions would otherwise wait ids / FAN_OUT × cacheTimeout (past the engine's
   * storeTimeout, although the durable delete worked). A cache that is merely slow is not given
   * up on: the tombstones not written by then are written in the background, and until they are,
   * this process does not read the cache (other processes may still serve those sessions until
   * their tombstone lands). Only a cache that fails (an id it can neither tombstone nor delete, a
   * failed `also`, or a call past `cacheTimeout`) stops it: the ids not started yet are skipped,
   * the cache is distrusted once (this process reads the durable store for `cacheTtl`).
   * `onCacheError` is told once per call, of its first cache error. Never rejects.
   */
  async function bulkInvalidate(operation: TieredCacheOperation, ids: readonly string[], also?: () => Awaitable<unknown>): Promise<void> {
    if (abandoning) {
      // Started after close() gave up on the cache (a call still running at close): nothing to write to.
      if (ids.length > 0 || also) report(abandonedError(ids.length), operation);
      return;
    }
    const progress = { ids: ids.length, done: 0 };
    const abandoned = (): boolean => abandoning;
    let reported = false;
    /** The cache failed: no further cache call. */
    let failing = false;
    const fail = (error: unknown, lost: boolean): void => {
      // After close() gave up: it reported the phase once; the closed cache's answers are noise.
      if (abandoning) return;
      if (!reported) {
        reported = true;
        report(error, operation);
      }
      if (lost && !failing) {
        failing = true;
        distrust();
      }
    };
    const work = Promise.all([
      forEachLimit(ids, FAN_OUT, async (id) => {
        try {
          if (failing || abandoning) return;
          try {
            await bounded(operation, () => placeTombstone(id, abandoned));
            return;
          } catch (error) {
            // A call past cacheTimeout: the cache is stalled, a delete would only wait as long.
            fail(error, error instanceof StoreTimeoutError);
          }
          if (failing || abandoning) return;
          // A cache that answers but refuses writes (Redis at maxmemory with noeviction) still deletes.
          try {
            await bounded(operation, () => cache.destroy(id));
          } catch (second) {
            fail(second, true);
          }
        } finally {
          progress.done++;
        }
      }),
      also &&
        (async () => {
          if (abandoning) return;
          try {
            await bounded(operation, also);
          } catch (error) {
            fail(error, true);
          }
        })(),
    ]).then(() => {});
    // Outstanding from now on, so a close() meanwhile waits for it (and bounds the wait).
    const tracked: Promise<void> = work.finally(() => {
      phases.delete(tracked);
    });
    phases.set(tracked, progress);
    if (cacheTimeout === Infinity) return work;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), cacheTimeout);
    });
    const waited = await Promise.race([work.then(() => false), late]);
    clearTimeout(timer);
    if (!waited) return;
    // Slow, not failed (so far): the rest goes on without the caller.
    const rest: Promise<void> = work.finally(() => {
      background.delete(rest);
      refreshDistrust();
    });
    background.add(rest);
    refreshDistrust();
  }

  function abandonedError(ids: number): Error {
    return new Error(
      `${name}: close() stopped waiting for destroyByUser tombstones after ${cacheTimeout} ms; ${ids} abandoned ` +
        '(another process may serve those killed sessions from its cache until cacheTtl)',
    );
  }

  /**
   * For close(): waits for every bulk cache phase (including ones that start meanwhile) at most
   * one `cacheTimeout` in all, then stops the ones left (no further cache call from them; calls
   * in flight are left to settle, their outcome ignored) and reports them once.
   */
  async function settlePhases(): Promise<void> {
    if (phases.size === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late =
      cacheTimeout === Infinity
        ? new Promise<never>(() => {})
        : new Promise<'late'>((resolve) => {
            timer = setTimeout(() => resolve('late'), cacheTimeout);
          });
    try {
      while (phases.size > 0) {
        const all = Promise.all(phases.keys()).then(() => 'done' as const);
        if ((await Promise.race([all, late])) === 'late') break;
      }
    } finally {
      clearTimeout(timer);
    }
    if (phases.size === 0) return;
    abandoning = true;
    let left = 0;
    for (const { ids, done } of phases.values()) left += ids - done;
    report(abandonedError(left), 'destroyByUser');
  }

  async function cacheStep(operation: TieredCacheOperation, run: () => Promise<unknown>): Promise<void> {
    try {
      await bounded(operation, run);
    } catch (error) {
      report(error, operation);
      distrust();
    }
  }

  /** The cached record if it may be served as is, else null (miss, tombstone, expired, foreign). */
  function servable(entry: SessionRecord): SessionRecord | null {
    if (isTombstone(entry)) return null;
    const realExpiresAt = entry.meta[EXPIRES_KEY];
    if (typeof realExpiresAt !== 'number' || !Number.isFinite(realExpiresAt)) return null;
    // Checked here too: a cache may return entries past their expiry (the contract allows it).
    if (entry.expiresAt <= clock.now() || realExpiresAt <= sweptBefore) return null;
    const realLastSeenAt = entry.meta[LAST_SEEN_KEY];
    return {
      ...entry,
      meta: decodeMeta(entry.meta),
      expiresAt: realExpiresAt,
      lastSeenAt: typeof realLastSeenAt === 'number' && Number.isFinite(realLastSeenAt) ? realLastSeenAt : entry.lastSeenAt,
    };
  }

  /** Clears every (guest) entry from the cache in one bounded call; a failure is reported. */
  function clearCache(guestsOnly: boolean): Promise<void> {
    return guestsOnly
      ? cacheStep('destroyByUser', () => cache.destroyByUser(null))
      : cacheStep('destroyAll', () => cache.destroyAll());
  }

  /** Armed after each durable step of a mass destroy; a next step cancels it. */
  let abandonedWalk: ReturnType<typeof setTimeout> | null = null;
  /** Set by close(): a step still running then arms no timer for a cache that is gone. */
  let closed = false;
  function watchForAbandonedWalk(guestsOnly: boolean): void {
    cancelAbandonedWalk();
    if (closed) return;
    abandonedWalk = setTimeout(() => {
      abandonedWalk = null;
      epoch++;
      void clearCache(guestsOnly);
    }, ABANDONED_WALK_MS);
    abandonedWalk.unref();
  }
  function cancelAbandonedWalk(): void {
    if (abandonedWalk === null) return;
    clearTimeout(abandonedWalk);
    abandonedWalk = null;
  }

  const durableStats = durable.stats?.bind(durable);

  return {
    name,
    // Listing and sweeping go to the durable store: what it cannot do, neither can this one.
    ...(durable.unsupported && { unsupported: durable.unsupported }),

    async get(id) {
      let cached: SessionRecord | null = null;
      // After a lost invalidation, not even a fill: the stale entry it may meet blocks it anyway.
      let cacheFailed = clock.now() < distrustUntil;
      if (!cacheFailed) {
        try {
          cached = await bounded('get', () => cache.get(id));
        } catch (error) {
          // Unreachable cache or an undecodable entry: a miss, never "no session".
          cacheFailed = true;
          report(error, 'get');
        }
      }
      if (cached) {
        const hit = servable(cached);
        if (hit) return hit;
      }
      const readStart = clock.now();
      const readEpoch = epoch;
      const record = await durable.get(id);
      // No fill right after a cache failure (don't pay for a second one), nor over a standing
      // tombstone (it would conflict). Over an expired entry the cache may still return, try:
      // `create` treats expired records as absent.
      const blocked = cacheFailed || (cached !== null && isTombstone(cached) && cached.expiresAt > readStart);
      if (record && !blocked) await fill(record, readStart, readEpoch, 'fill');
      return record;
    },

    async create(record) {
      const writeStart = clock.now();
      const writeEpoch = epoch;
      await durable.create(record);
      await fill(record, writeStart, writeEpoch, 'create');
    },

    // Writes invalidate rather than patch: the cache never applies writes in its own order. They
    // invalidate whatever the durable store answered: after false, so the cache cannot keep
    // serving a destroyed session; after a failure too, since a write that timed out (or lost its
    // connection) may still have been applied, and the cached copy would then be stale.
    async update(id, patch: SessionPatch) {
      try {
        return await durable.update(id, patch);
      } finally {
        await invalidate(id, 'update');
      }
    },

    async touch(id, times) {
      try {
        return await durable.touch(id, times);
      } finally {
        await invalidate(id, 'touch');
      }
    },

    async destroy(id) {
      try {
        await durable.destroy(id);
      } finally {
        await invalidate(id, 'destroy');
      }
    },

    // Only when the durable store can judge and delete in one step (else the engine re-reads).
    ...(typeof durable.destroyIfEmpty === 'function' && {
      async destroyIfEmpty(id: string, ignoredMeta: readonly string[]): Promise<EmptyDestroyResult> {
        let outcome: EmptyDestroyResult;
        try {
          outcome = await (durable.destroyIfEmpty as NonNullable<Store['destroyIfEmpty']>)(id, ignoredMeta);
        } catch (error) {
          // As for destroy: a delete that failed late may have been applied.
          await invalidate(id, 'destroy');
          throw error;
        }
        if (outcome !== 'kept') await invalidate(id, 'destroy');
        return outcome;
      },
    }),

    async destroyByUser(userId, except = []) {
      const keep = new Set(except);
      // Listed first, so each destroyed session gets its own tombstone (guests cannot be listed).
      const ids =
        userId === null ? [] : (await durable.listByUser(userId)).map((s) => s.id).filter((id) => !keep.has(id));
      // The cache is cleared even when the durable delete fails: it may have deleted some (a
      // batch committed before a timeout), and those must not stay servable.
      try {
        return await durable.destroyByUser(userId, except);
      } finally {
        epoch++;
        await bulkInvalidate('destroyByUser', ids, () => cache.destroyByUser(userId, except));
      }
    },

    async destroyAll() {
      try {
        return await durable.destroyAll();
      } finally {
        epoch++;
        await cacheStep('destroyAll', () => cache.destroyAll());
      }
    },

    /**
     * Ending every (guest) session in bounded steps: the durable store first (in its own steps
     * if it has them, else in one call), then the cache — in its steps if it has them, each step
     * a bounded cache call, so a big Redis cache is cleared completely instead of timing out in
     * one `destroyAll` and leaving sessions servable from the cache.
     */
    async destroyStep(step: MassDestroyStep): Promise<SweepResult> {
      const at = parseStepCursor(step.cursor);
      // The caller came back for the next step: no abandoned walk to clean up after.
      cancelAbandonedWalk();
      if (at.phase === 'durable') {
        let deleted: number;
        let inner: string | null = null;
        try {
          if (durable.destroyStep) {
            const result = await durable.destroyStep({ ...step, cursor: at.inner });
            deleted = result.deleted;
            inner = result.cursor;
          } else {
            deleted = step.guestsOnly ? await durable.destroyByUser(null) : await durable.destroyAll();
          }
        } catch (error) {
          // It may have deleted some (committed, then lost the connection): as with destroyAll,
          // those must not stay servable from the cache.
          epoch++;
          await clearCache(step.guestsOnly);
          throw error;
        }
        // The caller may have stopped waiting meanwhile (its storeTimeout) and will never ask
        // for the cache phase: unless it asks for a next step soon, clear the cache anyway.
        watchForAbandonedWalk(step.guestsOnly);
        if (inner !== null) return { deleted, cursor: JSON.stringify({ phase: 'durable', inner }) };
        epoch++;
        return { deleted, cursor: JSON.stringify({ phase: 'cache', inner: null }) };
      }
      const operation = step.guestsOnly ? 'destroyByUser' : 'destroyAll';
      if (!cache.destroyStep) {
        await cacheStep(operation, () => (step.guestsOnly ? cache.destroyByUser(null) : cache.destroyAll()));
        return { deleted: 0, cursor: null };
      }
      try {
        const result = await bounded('destroyStep', () => (cache.destroyStep as NonNullable<Store['destroyStep']>)({ ...step, cursor: at.inner }));
        return { deleted: 0, cursor: result.cursor === null ? null : JSON.stringify({ phase: 'cache', inner: result.cursor }) };
      } catch (error) {
        // Reported like every cache failure; the rest of the cache is left to expire (cacheTtl)
        // and, in this process, is not read until then.
        report(error, 'destroyStep');
        distrust();
        return { deleted: 0, cursor: null };
      }
    },

    async listByUser(userId) {
      return durable.listByUser(userId);
    },

    async deleteExpired(sweep: ExpiredSweep): Promise<SweepResult> {
      const result = await durable.deleteExpired(sweep);
      // Cache entries expire on their own (never later than their record); this covers a sweep
      // told to delete records that are not expired yet by this clock.
      if (sweep.before > sweptBefore) sweptBefore = sweep.before;
      return result;
    },

    // The durable store holds every record (the cache only copies of some): its counts are the
    // answer. Present only when the durable store has stats, so callers can tell "unsupported".
    ...(durableStats && { stats: durableStats }),

    async close() {
      closed = true;
      cancelAbandonedWalk();
      // Tombstones of bulk calls still being written (in the background, or by a call that is
      // still waiting for them): at most one cacheTimeout more, then they are abandoned.
      await settlePhases();
      if (!closeTiers) return;
      const results = await Promise.allSettled([cache.close(), durable.close()]);
      const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      if (failures.length === 1) throw failures[0];
      if (failures.length > 1) throw new AggregateError(failures, `${name}: both tiers failed to close`);
    },
  };
}
