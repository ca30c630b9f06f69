/**
 * Runs coatcheck on any express-session ("connect") store: connect-redis, connect-mongo,
 * connect-pg-simple, express-session's own MemoryStore... Useful to migrate without moving data
 * stores first, or to reach a backend coatcheck has no native store for.
 *
 * What it costs compared with a native store:
 * - The connect API only has whole-object `set`, so every `update`/`touch` is a read-modify-write.
 *   Calls on one id are queued within this process, so concurrent requests handled by one
 *   process never lose each other's keys, guarded updates (one-time CSRF tokens, id rotation
 *   claims) are exclusive, and the size bound (`maxBytes`) holds. Across processes the
 *   read-modify-write can still interleave: the last writer wins the whole record, a guard can
 *   pass twice and parallel saves can add up past the bound — express-session's own lost-update
 *   problem. Use a native store (Redis, Postgres, SQLite) when several processes
 *   serve one session concurrently.
 * - `create` checks with `get` before `set`: another process could write the same id in between.
 *   Ids are 256-bit random values, so that needs a collision that will not happen.
 * - `listByUser`, `destroyByUser`, `destroyAll` and `deleteExpired` read every session through
 *   the store's `all()` (or `ids()`): fine for thousands of sessions, slow for millions.
 *
 * Each record is stored as a session object with a `cookie` carrying `expires`,
 * `originalMaxAge` and (as a getter, like express-session's) `maxAge`, so stores that derive their TTL from the cookie (connect-redis does) expire
 * it with the session. coatcheck's fields live under one `coatcheck` key; sessions written by
 * express-session itself read as corrupt (the engine then treats them as absent).
 * @module coatcheck/stores/connect
 * @example
 * ```ts
 * import { createClient } from 'redis';
 * import { RedisStore } from 'connect-redis';
 * import { createSessions } from 'coatcheck';
 * import { connectStore } from 'coatcheck/stores/connect';
 *
 * const client = await createClient({ url: 'redis://127.0.0.1:6379' }).connect();
 * const sessions = createSessions({
 *   store: connectStore(new RedisStore({ client, prefix: 'sess:' }), { nativeTtl: true }),
 * });
 * ```
 */
import { type Clock, systemClock } from '../core/clock.js';
import { parseJsonObject } from '../core/json.js';
import { checkFactoryOptions } from '../core/known-options.js';
import { ConfigError, CorruptRecordError, StoreConflictError } from '../errors.js';
import type { JsonValue } from '../types.js';
import {
  applyKeyChanges,
  checkMaxBytes,
  type ExpiredSweep,
  guardHolds,
  type SessionPatch,
  type SerializedRecord,
  type SessionRecord,
  type SessionSummary,
  type Store,
  type SweepResult,
  type UnsupportedOperation,
} from './types.js';
import { MAX_TIMER_MS } from '../core/timer.js';


/** Node-style callback, as express-session stores call it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Callback = (error?: any, value?: any) => void;

/**
 * The express-session store API (callback style). Only `get`, `set` and `destroy` are required;
 * `all` or `ids` enable listing, per-user revocation, `destroyAll` and sweeping.
 */
export interface ConnectStoreLike {
  get(sid: string, callback: Callback): unknown;
  set(sid: string, session: object, callback: Callback): unknown;
  destroy(sid: string, callback: Callback): unknown;
  /** Every session: an array (connect-redis puts the sid in `id`) or an object keyed by sid. */
  all?(callback: Callback): unknown;
  /** Every session id (connect-redis). */
  ids?(callback: Callback): unknown;
}

/** The session object handed to the wrapped store's `set`. */
export interface ConnectSession {
  cookie: ConnectCookie;
  coatcheck: StoredRecord;
}

/**
 * What express-session's `Cookie` looks like to a store: the serialized fields as own properties,
 * and `maxAge` (the ms left) as a getter on the prototype, so it is read live and, as there, not
 * serialized. Stores that take their TTL from `maxAge` (memorystore, connect-sqlite3) need it:
 * without it they fall back to their default (often one day).
 */
export class ConnectCookie {
  readonly expires: Date;
  readonly originalMaxAge: number;
  readonly httpOnly = true;
  readonly path = '/';
  readonly #clock: Clock;

  constructor(expiresAt: number, clock: Clock) {
    this.#clock = clock;
    this.expires = new Date(expiresAt);
    this.originalMaxAge = Math.max(0, expiresAt - clock.now());
  }

  /** Milliseconds until the session expires, as of now. */
  get maxAge(): number {
    return this.expires.getTime() - this.#clock.now();
  }
}

/** coatcheck's record inside the session object; data and meta are JSON text, so every read is a copy. */
type StoredRecord = SerializedRecord & { v: 1 };

export interface ConnectStoreOptions {
  /** Name used in errors and events. Default `connect`. */
  name?: string | undefined;
  /**
   * The wrapped store expires sessions itself from `cookie.expires` (connect-redis, connect-mongo
   * with TTL indexes...). `deleteExpired` then resolves at once instead of reading every session.
   * Default false.
   */
  nativeTtl?: boolean | undefined;
  /**
   * Milliseconds a call waits behind an earlier call on the same id that never settles (a store
   * that lost its callback) before going ahead anyway. Default 10 000; at most 2 147 483 647.
   */
  queueTimeout?: number | undefined;
  /** Time source for "is this record still live"; pass the engine's clock in tests. */
  clock?: Clock | undefined;
}

const CONNECT_OPTIONS = Object.keys({ name: true, nativeTtl: true, queueTimeout: true, clock: true } satisfies Record<keyof ConnectStoreOptions, true>);

export interface ConnectStore extends Store {
  /** The wrapped express-session store. */
  readonly inner: ConnectStoreLike;
}

/**
 * Wraps an express-session-compatible store as a coatcheck {@link Store}.
 * @example
 * <!-- snippet: with stores -->
 * ```ts
 * import session from 'express-session';
 * const store = connectStore(new session.MemoryStore());
 * ```
 */
export function connectStore(inner: ConnectStoreLike, options: ConnectStoreOptions = {}): ConnectStore {
  for (const method of ['get', 'set', 'destroy'] as const) {
    if (!inner || typeof inner[method] !== 'function') throw new ConfigError(`connectStore: the store has no ${method}(sid, callback) method; pass an express-session store instance`);
  }
  // Only connectStore's own options: the wrapped store's go to its own constructor.
  checkFactoryOptions('connectStore', options, CONNECT_OPTIONS, {
    usage: 'connectStore(store) or connectStore(store, { nativeTtl: true }), the wrapped store configured by its own constructor',
    hints: Object.fromEntries(
      ['prefix', 'client', 'tableName', 'db'].map((name) => [name, `give ${name} to the wrapped store's own constructor: connectStore passes nothing on`]),
    ),
  });
  const name = options.name ?? 'connect';
  const clock = options.clock ?? systemClock;
  const queueTimeout = options.queueTimeout ?? 10_000;
  // A longer delay would make setTimeout fire after 1 ms, and the queue would stop serializing.
  if (typeof queueTimeout !== 'number' || !(queueTimeout > 0 && queueTimeout <= MAX_TIMER_MS)) {
    throw new ConfigError(`connectStore: queueTimeout must be a number of milliseconds greater than 0 and at most ${MAX_TIMER_MS}, got ${String(queueTimeout)}`);
  }
  const queues = new Map<string, Promise<void>>();

  /** Runs `task` after every earlier queued call on `id` has settled (or timed out). */
  function queued<R>(id: string, task: () => Promise<R>): Promise<R> {
    const previous = queues.get(id);
    const run = previous ? waitAtMost(previous, queueTimeout).then(task) : task();
    const tail = run.then(noop, noop);
    queues.set(id, tail);
    void tail.then(() => {
      if (queues.get(id) === tail) queues.delete(id);
    });
    return run;
  }

  const read = async (id: string): Promise<StoredRecord | null> => {
    // express-session reads an ENOENT error as "no such session" (session-file-store reports a
    // missing file that way), so an unknown id is absent here too, not a store failure.
    const raw: unknown = await call((cb) => inner.get(id, cb)).catch((error: unknown) => {
      if ((error as { code?: unknown } | null)?.code === 'ENOENT') return null;
      throw error;
    });
    if (raw === null || raw === undefined) return null;
    const stored = decode(raw);
    if (!stored || stored.id !== id) throw new CorruptRecordError(name, `session ${id.slice(0, 8)}… is not a coatcheck record`);
    return stored;
  };
  const write = (stored: StoredRecord): Promise<unknown> => call((cb) => inner.set(stored.id, toSession(stored, clock), cb));
  const remove = (id: string): Promise<unknown> => call((cb) => inner.destroy(id, cb));

  /** Every session the store lists: coatcheck records, plus the sids of foreign ones. */
  async function listAll(operation: string): Promise<{ records: StoredRecord[]; foreign: string[] }> {
    if (typeof inner.all !== 'function') {
      throw new ConfigError(`connectStore: ${operation} needs the wrapped store's all() method, which it does not have`);
    }
    const result: unknown = await call((cb) => inner.all?.(cb));
    const records: StoredRecord[] = [];
    const foreign: string[] = [];
    const take = (sid: string | undefined, value: unknown) => {
      const stored = decode(value);
      if (stored) records.push(stored);
      else if (sid !== undefined) foreign.push(sid);
    };
    if (Array.isArray(result)) {
      for (const value of result) take(typeof (value as { id?: unknown })?.id === 'string' ? (value as { id: string }).id : undefined, value);
    } else if (result && typeof result === 'object') {
      for (const sid of Object.keys(result)) take(sid, (result as Record<string, unknown>)[sid]);
    }
    return { records, foreign };
  }

  async function destroyMany(ids: Iterable<string>): Promise<number> {
    let deleted = 0;
    for (const id of ids) {
      await queued(id, () => remove(id));
      deleted++;
    }
    return deleted;
  }

  // Without all() no user's sessions can be found, nor (without ids()) every session; expired
  // ones only if the wrapped store expires them itself.
  const unsupported: UnsupportedOperation[] = [];
  if (typeof inner.all !== 'function') {
    unsupported.push('listByUser', 'destroyByUser');
    if (typeof inner.ids !== 'function') unsupported.push('destroyAll');
    if (!options.nativeTtl) unsupported.push('deleteExpired');
  }

  return {
    name,
    inner,
    unsupported,
    async get(id) {
      const stored = await read(id);
      return stored ? toRecord(name, stored) : null;
    },
    create(record) {
      return queued(record.id, async () => {
        let existing: StoredRecord | null;
        try {
          existing = await read(record.id);
        } catch (error) {
          // Something undecodable holds the id: still taken.
          if (error instanceof CorruptRecordError) throw new StoreConflictError(name);
          throw error;
        }
        if (existing && existing.expiresAt > clock.now()) throw new StoreConflictError(name);
        await write(fromRecord(record));
      });
    },
    update(id, patch: SessionPatch) {
      return queued(id, async () => {
        const stored = await read(id);
        // Expired by our clock or by the engine's (lastSeenAt is its "now"): never revived.
        if (!stored || stored.expiresAt <= clock.now() || stored.expiresAt <= patch.lastSeenAt) return false;
        const meta = parseField(name, stored, 'meta');
        if (patch.guard && !guardHolds(meta, patch.guard)) return false;
        const before = [stored.data, stored.meta] as const;
        if (patch.data) {
          const data = parseField(name, stored, 'data');
          applyKeyChanges(data, patch.data);
          stored.data = JSON.stringify(data);
        }
        if (patch.meta) {
          applyKeyChanges(meta, patch.meta);
          stored.meta = JSON.stringify(meta);
        }
        // On the record this read-modify-write read (see the module's note on several processes).
        if (patch.maxBytes !== undefined) checkMaxBytes(patch.maxBytes, before, [stored.data, stored.meta]);
        if (patch.userId !== undefined) stored.userId = patch.userId;
        stored.lastSeenAt = patch.keepLater ? Math.max(stored.lastSeenAt, patch.lastSeenAt) : patch.lastSeenAt;
        stored.expiresAt = patch.keepLater ? Math.max(stored.expiresAt, patch.expiresAt) : patch.expiresAt;
        await write(stored);
        return true;
      });
    },
    touch(id, times) {
      // The connect `touch` only resets a TTL; the times live inside the record, so rewrite it.
      return queued(id, async () => {
        const stored = await read(id);
        if (!stored || stored.expiresAt <= clock.now() || stored.expiresAt <= times.lastSeenAt) return false;
        stored.lastSeenAt = times.lastSeenAt;
        stored.expiresAt = times.expiresAt;
        await write(stored);
        return true;
      });
    },
    async destroy(id) {
      await queued(id, () => remove(id));
    },
    async destroyByUser(userId, except = []) {
      const keep = new Set(except);
      const { records } = await listAll('destroyByUser');
      return destroyMany(records.filter((r) => r.userId === userId && !keep.has(r.id)).map((r) => r.id));
    },
    async destroyAll() {
      if (typeof inner.ids === 'function') {
        const ids: unknown = await call((cb) => inner.ids?.(cb));
        return destroyMany(Array.isArray(ids) ? ids.filter((id): id is string => typeof id === 'string') : []);
      }
      if (typeof inner.all !== 'function') {
        throw new ConfigError('connectStore: destroyAll needs the wrapped store\'s all() or ids() method, which it has neither of');
      }
      const { records, foreign } = await listAll('destroyAll');
      return destroyMany([...records.map((r) => r.id), ...foreign]);
    },
    async listByUser(userId) {
      const now = clock.now();
      const { records } = await listAll('listByUser');
      const out: SessionSummary[] = records.filter((r) => r.userId === userId && r.expiresAt > now).map(toSummary);
      return out.sort((a, b) => a.createdAt - b.createdAt);
    },
    async deleteExpired(sweep: ExpiredSweep): Promise<SweepResult> {
      if (options.nativeTtl) return { deleted: 0, cursor: null };
      // Stateless cursor: ids are visited in sorted order and the cursor is the last one examined.
      const { records } = await listAll('deleteExpired');
      const after = sweep.cursor ?? '';
      const candidates = records.filter((r) => r.id > after).sort((a, b) => (a.id < b.id ? -1 : 1));
      let deleted = 0;
      for (const record of candidates) {
        if (record.expiresAt > sweep.before) continue;
        // Re-checked under the id's queue: a request may have extended it since the listing.
        const removed = await queued(record.id, async () => {
          const current = await read(record.id).catch((error: unknown) => {
            if (error instanceof CorruptRecordError) return null;
            throw error;
          });
          if (!current || current.expiresAt > sweep.before) return false;
          await remove(record.id);
          return true;
        });
        if (removed) deleted++;
        if (deleted >= sweep.limit) return { deleted, cursor: record.id };
      }
      return { deleted, cursor: null };
    },
    async close() {
      // The wrapped store and its connection belong to the app; only let queued writes finish.
      await Promise.all([...queues.values()].map((tail) => waitAtMost(tail, queueTimeout)));
    },
  };
}

function noop(): void {}

function waitAtMost(promise: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref?.();
    void promise.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Calls a callback-style store method; a synchronous throw or a rejected returned promise also fails it. */
function call<T = unknown>(invoke: (callback: Callback) => unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      const returned = invoke((error?: unknown, value?: unknown) => (error ? reject(error) : resolve(value as T)));
      if (returned && typeof (returned as Promise<unknown>).then === 'function') (returned as Promise<unknown>).then(undefined, reject);
    } catch (error) {
      reject(error);
    }
  });
}

function fromRecord(record: SessionRecord): StoredRecord {
  return {
    v: 1,
    id: record.id,
    userId: record.userId,
    data: JSON.stringify(record.data),
    meta: JSON.stringify(record.meta),
    createdAt: record.createdAt,
    lastSeenAt: record.lastSeenAt,
    expiresAt: record.expiresAt,
    ip: record.ip,
    userAgent: record.userAgent,
  };
}

function toSession(stored: StoredRecord, clock: Clock): ConnectSession {
  // What express-session hands a store; TTL-deriving stores read `expires` or `maxAge`.
  return { cookie: new ConnectCookie(stored.expiresAt, clock), coatcheck: stored };
}

/** The JSON object in a stored data/meta field; anything else means the record is corrupt. */
function parseField(name: string, stored: StoredRecord, field: 'data' | 'meta'): Record<string, JsonValue> {
  const value = parseJsonObject(stored[field]);
  if (value === null) throw new CorruptRecordError(name, `session ${stored.id.slice(0, 8)}… has unreadable ${field}`);
  return value;
}

function toRecord(name: string, stored: StoredRecord): SessionRecord {
  return {
    id: stored.id,
    userId: stored.userId,
    data: parseField(name, stored, 'data'),
    meta: parseField(name, stored, 'meta'),
    createdAt: stored.createdAt,
    lastSeenAt: stored.lastSeenAt,
    expiresAt: stored.expiresAt,
    ip: stored.ip,
    userAgent: stored.userAgent,
  };
}

function toSummary(stored: StoredRecord): SessionSummary {
  const { id, userId, createdAt, lastSeenAt, expiresAt, ip, userAgent } = stored;
  return { id, userId, createdAt, lastSeenAt, expiresAt, ip, userAgent };
}

/** coatcheck's record inside a session object the store returned, or null for anything else. */
function decode(value: unknown): StoredRecord | null {
  let session = value;
  if (typeof session === 'string') {
    try {
      session = JSON.parse(session);
    } catch {
      return null;
    }
  }
  const stored = (session as { coatcheck?: unknown } | null)?.coatcheck as Partial<StoredRecord> | undefined;
  if (!stored || typeof stored !== 'object' || stored.v !== 1) return null;
  const nullableString = (x: unknown) => x === null || typeof x === 'string';
  const ok =
    typeof stored.id === 'string' &&
    nullableString(stored.userId) &&
    typeof stored.data === 'string' &&
    typeof stored.meta === 'string' &&
    Number.isFinite(stored.createdAt) &&
    Number.isFinite(stored.lastSeenAt) &&
    Number.isFinite(stored.expiresAt) &&
    nullableString(stored.ip) &&
    nullableString(stored.userAgent);
  return ok ? ({ ...stored } as StoredRecord) : null;
}
