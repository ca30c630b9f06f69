/**
 * The Store contract: the one small interface every session store implements.
 * The engine (`createSessions`) is the only caller; stores hold records and apply changes
 * atomically, the engine decides everything about expiry, ids and cookies.
 * @module coatcheck/stores
 */
import { parseJsonObject, setOwn } from '../core/json.js';
import { SessionTooLargeError } from '../errors.js';
import type { JsonValue } from '../types.js';

/**
 * One session as a store keeps it. Times are milliseconds since the epoch (server clock); they may
 * be fractional (an app's clock, `setExpiry(3600 / 7)`), and a store may keep whole milliseconds:
 * past times rounded down, expiries up, so a record never expires before it was told to.
 */
export interface SessionRecord {
  /** The store key: SHA-256 of the cookie token, base64url (43 chars). Never the token itself. */
  id: string;
  /** The signed-in user, or null for a guest session. Indexed: list/kill by user. */
  userId: string | null;
  /** The app's data, key → JSON value. */
  data: Record<string, JsonValue>;
  /** The engine's own fields (CSRF secrets, flash queue, expiry override...). Opaque to stores. */
  meta: Record<string, JsonValue>;
  createdAt: number;
  lastSeenAt: number;
  /** When the record stops being valid. Indexed: stores without native TTL sweep by it. */
  expiresAt: number;
  /** Client metadata captured at creation, for "your devices" listings. */
  ip: string | null;
  userAgent: string | null;
}

/** What a request changed in one namespace (data or meta): only these keys are written. */
export interface KeyChanges {
  set?: Record<string, JsonValue>;
  unset?: string[];
}

/**
 * A save of an existing session. Only the keys named here change, so two requests that change
 * different keys of one session concurrently both survive.
 */
export interface SessionPatch {
  data?: KeyChanges;
  meta?: KeyChanges;
  /** Present only when the user changes. */
  userId?: string | null;
  lastSeenAt: number;
  expiresAt: number;
  /**
   * Conditions on meta keys checked atomically with the write: every `present` key must exist and
   * every `absent` key must not. If any fails, nothing is written and `update` resolves false.
   * (One-time CSRF tokens are consumed with `present`; id rotation claims a record with `absent`.)
   */
  guard?: { present?: string[]; absent?: string[] };
  /**
   * Neither time moves back: the record's `lastSeenAt` and `expiresAt` each become the later of
   * the stored value and the patch's. The engine sets it on saves that leave the session's expiry
   * choice alone, so a request that loaded before a parallel `setExpiry()` (a "remember me") cannot
   * cut the deadline that request stored. Absent: both are written as given (a shorter expiry
   * choice, a rotated-away record's grace window). A store that ignores it keeps working, with
   * that race open.
   */
  keepLater?: boolean;
  /**
   * A size bound checked atomically with the write: if, once the patch is applied, the record's
   * data and meta together measure more than this many bytes *and* more than they did before,
   * nothing is written and `update` fails with `SessionTooLargeError` (`ERR_TOO_LARGE`, 413; a
   * store that answers synchronously throws it). A save that keeps or shrinks a record already
   * over the bound passes. The measure is `maxDataSize`'s ({@link recordBytes}: the UTF-8 bytes
   * of every key plus those of its value's JSON); a store may measure less (never more), and says
   * so in its docs. The engine sets it on saves that set keys, so that parallel requests on one
   * session, each within `maxDataSize` on its own, cannot together store more. A store that
   * ignores it keeps working, with that race open.
   */
  maxBytes?: number;
}

/** A record with data and meta kept as JSON text (in-process stores hand out copies by parsing). */
export type SerializedRecord = Omit<SessionRecord, 'data' | 'meta'> & { data: string; meta: string };

/** A record without its data, as listed for a user ("your devices"). */
export type SessionSummary = Omit<SessionRecord, 'data' | 'meta'>;

/** One bounded step of deleting expired records. */
export interface ExpiredSweep {
  /**
   * Delete records whose `expiresAt` is at or before this time (a store may keep some of them a
   * bounded time longer: see {@link Store.deleteExpired}).
   */
  before: number;
  /** Delete at most this many records in this call. */
  limit: number;
  /** The cursor the previous call returned (absent on the first call). */
  cursor?: string | null;
}

/** One bounded step of ending every session, or every guest session (`Store.destroyStep`). */
export interface MassDestroyStep {
  /** Only sessions without a user (`killSessionsByUser('__guest__')`); otherwise every session. */
  guestsOnly: boolean;
  /** Records examined at most in this step (a hint: a store may examine a few more). */
  limit: number;
  /** The cursor the previous step returned; null on the first step. */
  cursor: string | null;
}

export interface SweepResult {
  deleted: number;
  /** Pass back to continue; null when no expired record remains (as far as this store can tell). */
  cursor: string | null;
}

/**
 * A value or a promise of it. The hot-path methods (`get`, `update`, `touch`) of a store whose
 * backend answers synchronously (memory, better-sqlite3) may return the value itself: the engine
 * then finishes the request's load or save without waiting for another turn of the event loop.
 */
export type Awaitable<T> = T | Promise<T>;

/** True for a promise (or any thenable) as opposed to a plain value. */
export function isPromiseLike<T>(value: Awaitable<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/**
 * The contract. Every method may reject (or, when it answers synchronously, throw); the engine
 * turns failures into a `StoreError` (503 at the adapters) and never treats a failure as "no
 * session".
 */
export interface Store {
  /** Short name used in errors and events, e.g. `memory`, `sqlite`. */
  readonly name: string;
  /**
   * One record by id, or null. May return a record whose `expiresAt` has passed (the engine
   * checks expiry with its own clock). Returns a copy the caller may mutate. Fails (rejects, or
   * throws when answering synchronously) with `CorruptRecordError` when the stored bytes cannot
   * be decoded (the engine treats that as "no session" and reports it, unlike other failures,
   * which fail the request).
   */
  get(id: string): Awaitable<SessionRecord | null>;
  /** Writes a new record. Rejects with `StoreConflictError` if the id exists. */
  create(record: SessionRecord): Promise<void>;
  /**
   * Applies a patch atomically. Resolves false, writing nothing, when the record does not exist
   * (destroyed elsewhere) or has expired (`expiresAt` at or before the patch's `lastSeenAt`, the
   * engine's "now", or before the store's own clock): a save never resurrects a session. Fails
   * with `SessionTooLargeError`, writing nothing, when the patch's size bound refuses the record
   * it would leave ({@link SessionPatch.maxBytes}; checked after existence and the guard).
   */
  update(id: string, patch: SessionPatch): Awaitable<boolean>;
  /** Updates only the times (idle-expiry refresh). False, as for `update`, when the record does not exist or has expired. */
  touch(id: string, times: { lastSeenAt: number; expiresAt: number }): Awaitable<boolean>;
  /** Deletes one record; deleting an unknown id is not an error. */
  destroy(id: string): Promise<void>;
  /**
   * Optional: deletes the record only if it holds nothing, judged atomically with the delete: no
   * `data` key, no user (`userId` null), and no `meta` key other than those in `ignoredMeta`.
   * `'deleted'`, `'kept'` (something is in it), or `'absent'` (no such record). A record past its
   * expiry is judged like any other (a store with native expiry, Redis, may already answer
   * `'absent'`): the engine calls this right after a save, on a live record. The engine uses it
   * when a request leaves its session empty: without it, it re-reads and then deletes, and a
   * parallel save landing between the two is deleted with the record.
   */
  destroyIfEmpty?(id: string, ignoredMeta: readonly string[]): Awaitable<EmptyDestroyResult>;
  /**
   * Deletes every record of a user (`null`: every guest record), except the ids listed.
   * Resolves to the number deleted.
   */
  destroyByUser(userId: string | null, except?: readonly string[]): Promise<number>;
  /** Deletes every record this store holds (within its namespace). Resolves to the number deleted. */
  destroyAll(): Promise<number>;
  /** The user's records, without data, oldest first. */
  listByUser(userId: string): Promise<SessionSummary[]>;
  /**
   * Deletes up to `limit` expired records; call again with the cursor until it is null. Never
   * deletes a live record. A store may leave a record for a bounded time past its expiry (the
   * SQLite store: up to one sweep slack, at most 15 minutes); the engine never serves it.
   */
  deleteExpired(sweep: ExpiredSweep): Promise<SweepResult>;
  /**
   * Optional: `destroyAll()` / `destroyByUser(null)` in bounded steps, for stores where one call
   * over every record could outlast the store timeout (Redis walks its whole keyspace with SCAN).
   * When present, the engine makes one store call per step and yields to the event loop between
   * steps. `cursor` null in the result means done.
   */
  destroyStep?(step: MassDestroyStep): Promise<SweepResult>;
  /**
   * Optional: counts for operators (`coatcheck stats`). Judged at `now` (ms, the caller's clock),
   * so the result does not depend on the store's own idea of the time. Usually a full scan of the
   * store: meant for an occasional admin command, not for every request.
   */
  stats?(now: number, options?: StoreStatsOptions): Promise<StoreStats>;
  /**
   * Optional: operations this store cannot do as configured (a wrapped store without the method
   * they need); calling one rejects with a `ConfigError`. `createSessions` refuses the options
   * that would call them during requests (`maxSessionsPerUser` lists on every login,
   * `cleanupProbability` sweeps), so the misconfiguration shows at setup, not per request.
   */
  readonly unsupported?: readonly UnsupportedOperation[];
  /** Releases timers and connections the store opened itself (not ones the app passed in). */
  close(): Promise<void>;
}

/** What a SQL store's migration found (version 0: no table) and left, for `coatcheck migrate`. @internal */
export interface SchemaMigration {
  fromVersion: number;
  version: number;
  /** At version 0: the table was there already, without a version row (made from the documented DDL, say), and was adopted. */
  adopted?: boolean;
}

/** A column of a table found under the store's name, as the database describes it. @internal */
export interface FoundColumn {
  name: string;
  /** The declared type, lower case (`text`, `integer`, `jsonb`, `bigint`). */
  type: string;
  notNull: boolean;
  hasDefault: boolean;
}

/**
 * Why a table found under the store's name without a version row cannot be adopted as a session
 * table, or null if it can: a missing column, a column of another type (PostgreSQL's `text`
 * data would turn every per-key update into text concatenation), `id` not its unique key (every
 * create's `ON CONFLICT (id)` fails), or a column of its own the store cannot fill (NOT NULL
 * without a default). Another library's table (connect-pg-simple's `session`) is refused, never
 * altered; the documented DDL run by hand is adopted. @internal
 */
export function foreignTableMessage(
  store: string,
  table: string,
  columns: readonly FoundColumn[],
  expected: Readonly<Record<string, string>>,
  idIsKey: boolean,
  other: string | null = null,
): string | null {
  const byName = new Map(columns.map((column) => [column.name, column]));
  const problems: string[] = [];
  const missing = Object.keys(expected).filter((name) => !byName.has(name));
  if (missing.length > 0) problems.push(`it has no column ${missing.join(', ')}`);
  for (const [name, type] of Object.entries(expected)) {
    const found = byName.get(name);
    if (found !== undefined && found.type !== type) problems.push(`its column ${name} is ${found.type}, not ${type}`);
  }
  if (byName.has('id') && !idIsKey) problems.push('id is not its primary key');
  const unfillable = columns.filter((column) => !(column.name in expected) && column.name !== 'sweep_at' && column.notNull && !column.hasDefault);
  if (unfillable.length > 0) problems.push(`its column ${unfillable.map((column) => column.name).join(', ')} is NOT NULL without a default`);
  if (other !== null) problems.push(other);
  if (problems.length === 0) return null;
  return `${store}: table ${table} exists but is not a coatcheck session table (${problems.join('; ')}; its columns: ${columns.map((column) => column.name).join(', ')}); give the store another table name, or move that table away`;
}

/** What {@link Store.unsupported} may list. */
export type UnsupportedOperation = 'listByUser' | 'destroyByUser' | 'destroyAll' | 'deleteExpired';

/** What {@link Store.destroyIfEmpty} did. */
export type EmptyDestroyResult = 'deleted' | 'kept' | 'absent';

/** Options of {@link Store.stats}. */
export interface StoreStatsOptions {
  /** How many users to list in `topUsers`. Default 10; 0 lists none. */
  topUsers?: number | undefined;
}

/**
 * What {@link Store.stats} reports. "Live" means `expiresAt > now`. Rotation forwarders (records
 * of the reserved user `__moved__`) are no session, user or guest: only `expired` counts them.
 */
export interface StoreStats {
  /** Live records, guests included. */
  sessions: number;
  /**
   * Records past their `expiresAt` that the store still holds, waiting for `deleteExpired`
   * (forwarders included: the sweep deletes them too).
   * Stores with native TTL (Redis) delete records at expiry, so they report 0 in practice.
   */
  expired: number;
  /** Distinct user ids with at least one live record. */
  users: number;
  /** Live records without a user. */
  guests: number;
  /** The users with the most live records, most first; ties ordered by user id. */
  topUsers: { userId: string; sessions: number }[];
}

/**
 * A store that keeps the whole session inside the cookie (stateless, Django's signed_cookies but
 * encrypted). The engine seals the full record on every save and opens it on load; there is no
 * server record, so per-session revocation is impossible and per-user revocation needs the
 * optional watermark below.
 */
export interface ClientStore {
  readonly kind: 'client';
  readonly name: string;
  /** The cookie value for a record. `context` is bound into the seal (the cookie's name). */
  seal(record: SessionRecord, context: string): string;
  /** The record in a cookie value, or null for anything tampered, foreign or undecryptable. */
  unseal(value: string, context: string): { record: SessionRecord; stale: boolean } | null;
  /** Sessions of this user created before the returned time are void. Absent: no revocation. */
  notValidBefore?(userId: string): Promise<number | null>;
  /** Voids every session of the user created before `at`. */
  revokeUser?(userId: string, at: number): Promise<void>;
  /** Whether `logout()` voids the user's other sessions too (see docs/stores/cookie.md). */
  readonly revokeOnLogout: boolean;
  close(): Promise<void>;
}

/** Either kind of store `createSessions` accepts. */
export type AnyStore = Store | ClientStore;

export function isClientStore(store: AnyStore): store is ClientStore {
  return (store as ClientStore).kind === 'client';
}

/** True when a record's meta satisfies a patch's guard (for stores that check it in code). */
export function guardHolds(meta: Record<string, unknown>, guard: SessionPatch['guard']): boolean {
  if (!guard) return true;
  for (const key of guard.present ?? []) if (!Object.prototype.hasOwnProperty.call(meta, key)) return false;
  for (const key of guard.absent ?? []) if (Object.prototype.hasOwnProperty.call(meta, key)) return false;
  return true;
}

/** Applies key changes to a plain object in place (memory-style stores and tests share this). */
export function applyKeyChanges(target: Record<string, JsonValue>, changes: KeyChanges | undefined): void {
  if (!changes) return;
  for (const key of changes.unset ?? []) delete target[key];
  if (changes.set) {
    for (const key of Object.keys(changes.set)) {
      setOwn(target, key, changes.set[key]);
    }
  }
}

/**
 * `maxDataSize`'s measure of a record's data and meta ({@link SessionPatch.maxBytes}): the UTF-8
 * bytes of every key plus those of its value's JSON, summed over the objects given.
 */
export function recordBytes(...objects: Record<string, JsonValue>[]): number {
  let bytes = 0;
  for (const object of objects) {
    for (const key of Object.keys(object)) bytes += Buffer.byteLength(key) + Buffer.byteLength(JSON.stringify(object[key]));
  }
  return bytes;
}

/** {@link recordBytes} of an object kept as JSON text (an unreadable text measures 0). */
function textBytes(json: string): number {
  return recordBytes(parseJsonObject(json) ?? {});
}

/**
 * For stores that apply a patch in code, before they write: throws `SessionTooLargeError` when
 * `maxBytes` ({@link SessionPatch.maxBytes}) refuses the record the patch leaves. `before` and
 * `after` are the record's data and meta as the JSON text the store keeps (`JSON.stringify` of
 * each object). The text of an object is never shorter than its measure (braces, quotes, colons
 * and commas come on top), so a record whose text fits costs no parse: only one within a few bytes
 * per key of the bound, or over it, is measured exactly.
 */
export function checkMaxBytes(maxBytes: number | undefined, before: readonly [string, string], after: readonly [string, string]): void {
  if (maxBytes === undefined) return;
  const [data, meta] = after;
  // A UTF-16 unit is at most 3 UTF-8 bytes: most records are decided by their length alone.
  if ((data.length + meta.length) * 3 <= maxBytes) return;
  if (Buffer.byteLength(data) + Buffer.byteLength(meta) <= maxBytes) return;
  const bytes = textBytes(data) + textBytes(meta);
  if (bytes <= maxBytes || bytes <= textBytes(before[0]) + textBytes(before[1])) return;
  throw new SessionTooLargeError(bytes, maxBytes);
}

/** Default length of {@link StoreStats.topUsers}. */
export const DEFAULT_TOP_USERS = 10;

/** The `topUsers` option as a count, checked (stores call it before doing any work). */
export function topUsersLimit(options: StoreStatsOptions | undefined): number {
  const limit = options?.topUsers ?? DEFAULT_TOP_USERS;
  if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError('stats: topUsers must be an integer >= 0');
  return limit;
}

/** Stats from per-user counts of live records (for stores that count in code). */
export function statsFromCounts(
  counts: ReadonlyMap<string, number>,
  totals: { sessions: number; expired: number; guests: number },
  limit: number,
): StoreStats {
  const ranked = [...counts].sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0));
  return {
    ...totals,
    users: counts.size,
    topUsers: ranked.slice(0, limit).map(([userId, sessions]) => ({ userId, sessions })),
  };
}
