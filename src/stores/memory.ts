/**
 * In-process store: a Map, for tests, single-process apps and as the fast tier of `tieredStore`.
 * Data is kept serialized, so every `get` hands out a fresh copy and memory per session stays small.
 * Expired records are freed by a background sweep (timer unref'd) even if never read again.
 * @module coatcheck/stores/memory
 */
import { ConfigError, StoreConflictError } from '../errors.js';
import { type Clock, systemClock } from '../core/clock.js';
import { parseJsonObject } from '../core/json.js';
import { FORWARDER_USER } from '../core/reserved-users.js';

import {
  applyKeyChanges,
  checkMaxBytes,
  guardHolds,
  statsFromCounts,
  topUsersLimit,
  type EmptyDestroyResult,
  type ExpiredSweep,
  type SessionPatch,
  type SerializedRecord,
  type SessionRecord,
  type SessionSummary,
  type Store,
  type SweepResult,
} from './types.js';
import { MAX_TIMER_MS } from '../core/timer.js';
import { checkFactoryOptions } from '../core/known-options.js';

export interface MemoryStoreOptions {
  /** How often expired records are swept from memory, in ms (at most 2 147 483 647). Default 60 000; 0 disables the timer. */
  sweepInterval?: number | undefined;
  /**
   * Keep at most this many records: past it, each `create` evicts the least recently used record
   * (last created, read, updated or touched longest ago), whoever it belongs to. Signed-in users'
   * sessions are evicted like guests', so a flood of new guest sessions (every cookieless request
   * that writes to its session makes one) can push signed-in users out, signing them out. Set it
   * well above your live session count, and rate-limit routes that create sessions for anonymous
   * clients. Records given up by a rotation or `cycleId()` (kept a short while so racing requests
   * can follow them, data removed) do not count: at most as many again are kept, oldest evicted
   * first. An eviction costs the same however long a
   * flood has lasted. Default: unbounded.
   */
  maxEntries?: number | undefined;
  /** Time source for sweeping; pass the same clock as `createSessions` in tests. */
  clock?: Clock | undefined;
}

/** The id is the Map key, so entries don't repeat it. */
type Entry = Omit<SerializedRecord, 'id'>;


/** Records examined per event-loop turn by the background sweep. */
const SWEEP_SLICE = 10_000;

/**
 * `deleteExpired` cursors kept for resuming, at most this many and for at most this long. A kept
 * cursor is a live Map iterator, and an iterator pins every hash table the Map has outgrown since
 * it was made, deleted sessions included; the engine's probabilistic cleanup makes one per run
 * and never resumes it. An evicted or lapsed cursor just makes the next call start over.
 */
const MAX_CURSORS = 4;
const CURSOR_TTL_MS = 30_000;

export interface MemoryStore extends Store {
  /** Number of records held (expired ones included until swept). */
  readonly size: number;
}

/**
 * `guardHolds` on serialized meta, without parsing it in the common case: every save is guarded
 * by an `absent` key, and a key whose JSON form appears nowhere in the text cannot be present.
 */
function guardHoldsOn(metaJson: string, guard: NonNullable<SessionPatch['guard']>): boolean {
  if (guard.present === undefined && (guard.absent ?? []).every((key) => !metaJson.includes(JSON.stringify(key)))) return true;
  return guardHolds(parseJsonObject(metaJson) ?? {}, guard);
}

const MEMORY_OPTIONS = Object.keys({ sweepInterval: true, maxEntries: true, clock: true } satisfies Record<keyof MemoryStoreOptions, true>);

export function memoryStore(options: MemoryStoreOptions = {}): MemoryStore {
  checkFactoryOptions('memoryStore', options, MEMORY_OPTIONS, {
    usage: 'memoryStore() or memoryStore({ maxEntries: 100_000 })',
    // The `memorystore` package's and lru-cache's names.
    hints: { checkPeriod: 'use sweepInterval (ms)', max: 'use maxEntries' },
  });
  const sweepInterval = options.sweepInterval ?? 60_000;
  const maxEntries = options.maxEntries ?? Infinity;
  const clock = options.clock ?? systemClock;
  // A longer delay would make setInterval fire every millisecond.
  if (typeof sweepInterval !== 'number' || !(sweepInterval >= 0 && sweepInterval <= MAX_TIMER_MS)) {
    throw new ConfigError(`memoryStore: sweepInterval must be 0 (no background sweep) or a number of milliseconds up to ${MAX_TIMER_MS}, got ${String(sweepInterval)}`);
  }
  if (!(maxEntries >= 1)) throw new ConfigError('memoryStore: maxEntries must be >= 1');

  const records = new Map<string, Entry>();
  const byUser = new Map<string, Set<string>>();
  const cursors = new Map<string, { iterator: Iterator<[string, Entry]>; timer: NodeJS.Timeout }>();
  let nextCursor = 0;
  let sweeping = false;
  /**
   * Eviction's position in `records`, kept from one eviction to the next. A fresh `keys()` would
   * walk every slot deleted since the Map's last rehash before reaching the oldest entry (V8 keeps
   * them until then), so each eviction in a flood of creates grew slower. Every key it yields is
   * evicted at once, so every live entry lies ahead of it, and its next key is the least recently
   * used one: new and refreshed entries go to the back, where it still sees them; a refreshed
   * entry's old slot is a deleted one, skipped, so no entry is met twice.
   */
  let evictor: Iterator<string> | undefined;
  /**
   * Deletions from `records` other than evictions (removals, and refreshes' delete + re-insert)
   * since `evictor` last moved. An iterator pins the hash tables the Map outgrew since it last
   * moved, and with them the records removed since: deletions are what make the Map rehash and
   * what those tables keep, so past this many the evictor is dropped and the next eviction starts
   * a fresh one. That bounds what it pins, and keeps the fresh start's rescan rare.
   */
  let deletedSinceEviction = 0;
  const evictorPatience = Math.max(1024, Math.ceil(maxEntries / 16));
  /**
   * Records given up by a rotation or a `cycleId()` (user `FORWARDER_USER`), in the order they were
   * given up. They do not count against `maxEntries` (a client looping `cycleId()` or rotations
   * must not push other users' sessions out) and are never evicted for a session's sake (one is
   * needed during its grace window); past `maxEntries` of their own, the oldest go. Evicted
   * through a kept iterator, as `records` is, with the same patience for deletions made beside it.
   */
  const forwarders = new Set<string>();
  let forwarderEvictor: Iterator<string> | undefined;
  let forwardersDeletedSinceEviction = 0;

  function index(id: string, userId: string | null): void {
    if (userId === null) return;
    let ids = byUser.get(userId);
    if (!ids) byUser.set(userId, (ids = new Set()));
    ids.add(id);
  }
  function unindex(id: string, userId: string | null): void {
    if (userId === null) return;
    const ids = byUser.get(userId);
    if (!ids) return;
    ids.delete(id);
    if (ids.size === 0) byUser.delete(userId);
  }
  function remove(id: string): boolean {
    const entry = records.get(id);
    if (!entry) return false;
    records.delete(id);
    unindex(id, entry.userId);
    deletedBesideEvictor();
    if (entry.userId === FORWARDER_USER) unforward(id);
    return true;
  }
  function markForwarder(id: string): void {
    // Only eviction needs the order: without maxEntries nothing is kept.
    if (maxEntries !== Infinity) forwarders.add(id);
  }
  function unforward(id: string): void {
    if (forwarders.delete(id) && forwarderEvictor && ++forwardersDeletedSinceEviction >= evictorPatience) forwarderEvictor = undefined;
  }
  /** Removes the record given up longest ago, if any (false: there is none). */
  function evictForwarder(): boolean {
    if (forwarders.size === 0) return false;
    let next = forwarderEvictor?.next();
    if (!next || next.done) {
      forwarderEvictor = forwarders.values();
      next = forwarderEvictor.next();
      if (next.done) return false;
    }
    const id = next.value;
    forwarders.delete(id);
    forwardersDeletedSinceEviction = 0;
    const entry = records.get(id);
    if (entry) {
      records.delete(id);
      unindex(id, entry.userId);
      deletedBesideEvictor();
    }
    return true;
  }
  function deletedBesideEvictor(): void {
    if (evictor && ++deletedSinceEviction >= evictorPatience) evictor = undefined;
  }
  /**
   * Removes the least recently used session. Records given up by a rotation or a cycle are not
   * sessions: they neither count against `maxEntries` nor go for a session's sake (a racing
   * request, a logout or a revoke may need one during its grace window, and one evicted early
   * lets a logged-out session live on); they are bounded on their own (`trimForwarders`).
   */
  function evictOldest(): void {
    for (let restarts = 0; restarts < 2; ) {
      const next = evictor?.next();
      if (!next || next.done) {
        // No evictor yet, dropped, or at the end past forwarders only: start over once.
        evictor = records.keys();
        restarts++;
        continue;
      }
      const id = next.value;
      if (forwarders.has(id)) continue;
      const entry = records.get(id) as Entry;
      records.delete(id);
      unindex(id, entry.userId);
      deletedSinceEviction = 0;
      return;
    }
  }
  /** Sessions past `maxEntries` go, least recently used first; forwarders past as many, oldest first. */
  function enforceMaxEntries(): void {
    while (records.size - forwarders.size > maxEntries) {
      const before = records.size;
      evictOldest();
      if (records.size === before) break;
    }
    while (forwarders.size > maxEntries) evictForwarder();
  }
  function toRecord(id: string, e: Entry): SessionRecord {
    return {
      id,
      userId: e.userId,
      data: parseJsonObject(e.data) ?? {},
      meta: parseJsonObject(e.meta) ?? {},
      createdAt: e.createdAt,
      lastSeenAt: e.lastSeenAt,
      expiresAt: e.expiresAt,
      ip: e.ip,
      userAgent: e.userAgent,
    };
  }
  function summary(id: string, e: Entry): SessionSummary {
    return { id, userId: e.userId, createdAt: e.createdAt, lastSeenAt: e.lastSeenAt, expiresAt: e.expiresAt, ip: e.ip, userAgent: e.userAgent };
  }
  function live(id: string): Entry | undefined {
    const entry = records.get(id);
    if (entry && entry.expiresAt <= clock.now()) {
      remove(id);
      return undefined;
    }
    return entry;
  }
  /** Takes a kept cursor's iterator out of `cursors` (undefined when unknown, evicted or lapsed). */
  function takeCursor(key: string): Iterator<[string, Entry]> | undefined {
    const kept = cursors.get(key);
    if (!kept) return undefined;
    cursors.delete(key);
    clearTimeout(kept.timer);
    return kept.iterator;
  }
  function keepCursor(key: string, iterator: Iterator<[string, Entry]>): void {
    // Map order is insertion order: the first key is the oldest cursor.
    while (cursors.size >= MAX_CURSORS) takeCursor(cursors.keys().next().value as string);
    const timer = setTimeout(() => takeCursor(key), CURSOR_TTL_MS);
    timer.unref();
    cursors.set(key, { iterator, timer });
  }
  function dropCursors(): void {
    for (const key of [...cursors.keys()]) takeCursor(key);
  }
  function refresh(id: string, entry: Entry): void {
    // LRU order is Map insertion order: move a used entry to the end.
    if (maxEntries !== Infinity) {
      records.delete(id);
      records.set(id, entry);
      deletedBesideEvictor();
    }
  }

  // Background sweep: frees expired records in slices so a huge map never stalls the loop.
  function sweep(): void {
    if (sweeping) return;
    sweeping = true;
    const iterator = records.entries();
    const step = (): void => {
      const now = clock.now();
      for (let i = 0; i < SWEEP_SLICE; i++) {
        const next = iterator.next();
        if (next.done) {
          sweeping = false;
          return;
        }
        const [id, entry] = next.value;
        if (entry.expiresAt <= now) remove(id);
      }
      setImmediate(step).unref();
    };
    step();
  }
  const timer = sweepInterval > 0 ? setInterval(sweep, sweepInterval) : undefined;
  timer?.unref();

  return {
    name: 'memory',
    get size() {
      return records.size;
    },
    // get, update and touch answer synchronously (the contract allows it): the engine then loads
    // and saves without waiting for a turn of the event loop.
    get(id) {
      // Expired records are still returned: the engine decides expiry and reports it.
      const entry = records.get(id);
      if (!entry) return null;
      // Reading a forwarder (a rotated or cycled record) is no use of a session (see update).
      if (entry.userId !== FORWARDER_USER) refresh(id, entry);
      return toRecord(id, entry);
    },
    async create(record) {
      if (live(record.id)) throw new StoreConflictError('memory');
      records.set(record.id, {
        userId: record.userId,
        data: JSON.stringify(record.data),
        meta: JSON.stringify(record.meta),
        createdAt: record.createdAt,
        lastSeenAt: record.lastSeenAt,
        expiresAt: record.expiresAt,
        ip: record.ip,
        userAgent: record.userAgent,
      });
      index(record.id, record.userId);
      // A forwarder filled in by a tiered store's cache.
      if (record.userId === FORWARDER_USER) markForwarder(record.id);
      enforceMaxEntries();
    },
    update(id, patch: SessionPatch) {
      const entry = live(id);
      // Also expired by the engine's clock (lastSeenAt is its "now"), which may run ahead of ours.
      if (!entry || entry.expiresAt <= patch.lastSeenAt) return false;
      if (patch.guard && !guardHoldsOn(entry.meta, patch.guard)) return false;
      let dataJson = entry.data;
      let metaJson = entry.meta;
      if (patch.data) {
        const data = parseJsonObject(dataJson) ?? {};
        applyKeyChanges(data, patch.data);
        dataJson = JSON.stringify(data);
      }
      if (patch.meta) {
        const meta = parseJsonObject(metaJson) ?? {};
        applyKeyChanges(meta, patch.meta);
        metaJson = JSON.stringify(meta);
      }
      // Throws (writing nothing) when the patch's size bound refuses the record it would leave.
      if (patch.maxBytes !== undefined) checkMaxBytes(patch.maxBytes, [entry.data, entry.meta], [dataJson, metaJson]);
      entry.data = dataJson;
      entry.meta = metaJson;
      if (patch.userId !== undefined && patch.userId !== entry.userId) {
        unindex(id, entry.userId);
        entry.userId = patch.userId;
        index(id, entry.userId);
        if (entry.userId === FORWARDER_USER) {
          markForwarder(id);
          while (forwarders.size > maxEntries) evictForwarder();
        } else unforward(id);
      }
      if (patch.keepLater) {
        entry.lastSeenAt = Math.max(entry.lastSeenAt, patch.lastSeenAt);
        entry.expiresAt = Math.max(entry.expiresAt, patch.expiresAt);
      } else {
        entry.lastSeenAt = patch.lastSeenAt;
        entry.expiresAt = patch.expiresAt;
      }
      // A record given up by a rotation or cycleId is no session in use: claiming it (or trimming
      // it down to what following it needs) does not make it recent (see evictOldest).
      if (entry.userId !== FORWARDER_USER) refresh(id, entry);
      return true;
    },
    touch(id, times) {
      const entry = live(id);
      if (!entry || entry.expiresAt <= times.lastSeenAt) return false;
      entry.lastSeenAt = times.lastSeenAt;
      entry.expiresAt = times.expiresAt;
      refresh(id, entry);
      return true;
    },
    async destroy(id) {
      remove(id);
    },
    destroyIfEmpty(id: string, ignoredMeta: readonly string[]): EmptyDestroyResult {
      const entry = records.get(id);
      if (entry === undefined) return 'absent';
      if (entry.userId !== null || entry.data !== '{}') return 'kept';
      const meta = JSON.parse(entry.meta) as Record<string, unknown>;
      if (Object.keys(meta).some((key) => !ignoredMeta.includes(key))) return 'kept';
      remove(id);
      return 'deleted';
    },
    async destroyByUser(userId, except = []) {
      const keep = new Set(except);
      let ids: string[];
      if (userId === null) {
        ids = [];
        for (const [id, entry] of records) if (entry.userId === null) ids.push(id);
      } else {
        ids = [...(byUser.get(userId) ?? [])];
      }
      let deleted = 0;
      for (const id of ids) if (!keep.has(id) && remove(id)) deleted++;
      return deleted;
    },
    async destroyAll() {
      const deleted = records.size;
      records.clear();
      byUser.clear();
      forwarders.clear();
      evictor = undefined;
      forwarderEvictor = undefined;
      dropCursors();
      return deleted;
    },
    async listByUser(userId) {
      const now = clock.now();
      const out: SessionSummary[] = [];
      for (const id of byUser.get(userId) ?? []) {
        const entry = records.get(id);
        if (entry && entry.expiresAt > now) out.push(summary(id, entry));
      }
      return out.sort((a, b) => a.createdAt - b.createdAt);
    },
    async deleteExpired(sweepRequest: ExpiredSweep): Promise<SweepResult> {
      // A cursor names a kept Map iterator, so resuming never rescans what was already examined.
      let key = sweepRequest.cursor ?? null;
      let iterator = key === null ? undefined : takeCursor(key);
      if (!iterator) {
        iterator = records.entries();
        key = String(nextCursor++);
      }
      let deleted = 0;
      while (deleted < sweepRequest.limit) {
        const next = iterator.next();
        if (next.done) return { deleted, cursor: null };
        const [id, entry] = next.value;
        if (entry.expiresAt <= sweepRequest.before && remove(id)) deleted++;
      }
      keepCursor(key as string, iterator);
      return { deleted, cursor: key };
    },
    async stats(now, options) {
      // One pass over every record: O(records), fine for an admin command.
      const limit = topUsersLimit(options);
      const counts = new Map<string, number>();
      const totals = { sessions: 0, expired: 0, guests: 0 };
      for (const entry of records.values()) {
        if (entry.expiresAt <= now) {
          totals.expired++;
          continue;
        }
        // A rotation forwarder is no session of anyone's: it only points at the new record.
        if (entry.userId === FORWARDER_USER) continue;
        totals.sessions++;
        if (entry.userId === null) totals.guests++;
        else counts.set(entry.userId, (counts.get(entry.userId) ?? 0) + 1);
      }
      return statsFromCounts(counts, totals, limit);
    },
    async close() {
      if (timer) clearInterval(timer);
      dropCursors();
    },
  };
}

