/**
 * Redis store, for a single server or a Redis Cluster (ioredis 5). Redis expires sessions itself:
 * every session key carries a time to live (`PEXPIRE`, `expiresAt` − `lastSeenAt` by the engine's
 * clock), so there is nothing to sweep.
 *
 * Layout (see docs/stores/redis.md): one hash per session, `<prefix>s:{<id>}`, and one sorted set
 * per user, `<prefix>u:{<userId>}`, listing that user's session ids. Every command touches a
 * single key, so the same code runs on a Cluster, where the two keys live in different slots.
 *
 * @example
 * ```ts
 * import { redisStore } from 'coatcheck/stores/redis';
 * // The store opens (and on close() quits) its own connection:
 * const store = redisStore({ url: 'redis://127.0.0.1:6379', prefix: 'myapp:' });
 *
 * // Or hand it a client the app owns, e.g. a Cluster (close() leaves it open):
 * import { Cluster } from 'ioredis';
 * const cluster = new Cluster([{ host: '10.0.0.1', port: 6379 }], {
 *   redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 5_000, connectTimeout: 5_000 },
 * });
 * const clustered = redisStore({ client: cluster });
 * ```
 * @module coatcheck/stores/redis
 */
import { createHash } from 'node:crypto';
import { Redis, type Cluster } from 'ioredis';
import { ConfigError, CorruptRecordError, SessionTooLargeError, StoreConflictError } from '../errors.js';
import { type Clock, systemClock } from '../core/clock.js';
import { objectFromEntries } from '../core/json.js';
import { checkFactoryOptions } from '../core/known-options.js';
import { FORWARDER_USER } from '../core/reserved-users.js';
import type { JsonValue } from '../types.js';
import { failCommandsAfter } from './redis-deadlines.js';
import { keySlot } from './redis-slot.js';
import { warnIfEvicting } from './redis-eviction.js';
import { tickBatcher } from './redis-tick-batch.js';
import {
  statsFromCounts,
  topUsersLimit,
  type KeyChanges,
  type SessionPatch,
  type SessionRecord,
  type SessionSummary,
  type Store,
} from './types.js';
import { MAX_TIMER_MS } from '../core/timer.js';

export interface RedisStoreOptions {
  /**
   * A connected ioredis `Redis` or `Cluster` the app owns; `close()` leaves it open. Configure it
   * to fail fast when Redis is down (`maxRetriesPerRequest: 1`, `commandTimeout`, `connectTimeout`),
   * or commands pile up in ioredis' queue and requests fail only at the engine's `storeTimeout`.
   * Give this or `url`, not both.
   */
  client?: Redis | Cluster | undefined;
  /**
   * A `redis://` / `rediss://` URL (or a Unix socket path): the store opens its own connection and
   * quits it on `close()`. Another scheme (`http://`) is refused with {@link ConfigError}.
   */
  url?: string | undefined;
  /** Prefix of every key the store writes. Default `coatcheck:`. Must not contain `{` or `}`. */
  prefix?: string | undefined;
  /** For a connection the store opens: a command with no answer after this many ms fails. Default 5000; at most 2 147 483 647. */
  commandTimeout?: number | undefined;
  /** For a connection the store opens: give up connecting after this many ms. Default `commandTimeout`. */
  connectTimeout?: number | undefined;
  /** Time source for "not expired yet" in `listByUser`; pass the same clock as `createSessions`. */
  clock?: Clock | undefined;
}

/** Index lifetime kept beyond a session's expiry is capped at a day (see `indexUntil`). */
const MAX_INDEX_SLACK = 86_400_000;
/** Commands in flight at once for bulk work (listing, killing, scanning). */
const BATCH = 500;
/** SCAN page size hint. */
const SCAN_COUNT = 1_000;
/** A mass-destroy step scans at most this many times its limit in key slots (see scanRounds). */
const SPARSE_SCAN = 10;
/** Keys examined per step by the walks that run to the end in one call (destroyAll, stats...). */
const WALK_LIMIT = 10_000;
/** Walks of such a call that may each see the cluster map change before the call gives up. */
const MAX_WALKS = 10;

/** One line of `CLUSTER NODES`: a node as the answering node sees it. */
interface ClusterNodeLine {
  id: string;
  /** `ip:port` as the cluster reports it (before any `natMap`). */
  address: string;
  /** The hostname it announces (`cluster-announce-hostname`: `ip:port@cport,hostname`), or null. */
  hostname: string | null;
  flags: string[];
  epoch: string;
  /** Slots and slot ranges it owns (`0-5460`, `5461`). */
  slots: string[];
  /** Slots it is migrating, and to which node (only on the answering node's own line). */
  migrating: Array<{ slot: number; target: string }>;
  /** Slots it is importing (only on the answering node's own line). */
  importing: number[];
}

function parseClusterNodes(text: string): ClusterNodeLine[] {
  const out: ClusterNodeLine[] = [];
  for (const raw of text.split('\n')) {
    const fields = raw.trim().split(' ');
    if (fields.length < 8) continue;
    const [id, address, flags, , , , epoch] = fields as [string, string, string, string, string, string, string];
    // `ip:port@cport`, then (Redis 7) `,hostname` (possibly empty), then (7.2) `,name=value` fields.
    const [endpoint = '', hostname = ''] = address.split(',');
    const line: ClusterNodeLine = {
      id,
      address: endpoint.split('@')[0] ?? '',
      hostname: hostname !== '' && !hostname.includes('=') ? hostname : null,
      flags: flags.split(','),
      epoch,
      slots: [],
      migrating: [],
      importing: [],
    };
    for (const token of fields.slice(8)) {
      const migrating = /^\[(\d+)->-([0-9a-zA-Z]+)\]$/.exec(token);
      const importing = /^\[(\d+)-<-([0-9a-zA-Z]+)\]$/.exec(token);
      if (migrating) line.migrating.push({ slot: Number(migrating[1]), target: migrating[2] as string });
      else if (importing) line.importing.push(Number(importing[1]));
      else if (/^\d+(-\d+)?$/.test(token)) line.slots.push(token);
    }
    out.push(line);
  }
  return out;
}

/** A master a walk must cover but could not reach (see clusterMap). */
interface UnreachableMaster {
  id: string;
  address: string;
  error: unknown;
}

/** The masters a keyspace walk must visit, and the fingerprint of the map they come from (see clusterMap). */
interface ClusterMap {
  fingerprint: string;
  /** Every reachable master owning a slot (in any master's view) or importing one, in walk order (by address). */
  masters: Array<{ id: string; address: string; node: Redis }>;
  /** Masters that own a slot (or import one) but could not be reached: the walk fails once the others are walked. */
  unreachable: UnreachableMaster[];
  /** Slots being migrated, each with the master importing it (not to a slot-less target the cluster marks failing). */
  moving: Array<{ slot: number; target: string }>;
  /** Closes the connections the store opened for this map. */
  close(): void;
}

/** An error that came from the connection (closed, refused, timed out), not a reply of the server. */
function isConnectionError(error: unknown): boolean {
  return !(error instanceof Error && (error.name === 'ReplyError' || error.name === 'ParserError'));
}

/** The error a walk fails with when masters it must cover cannot be reached. */
function unreachableError(masters: readonly UnreachableMaster[]): Error {
  const list = masters.map(({ id, address, error }) => `${id} (${address}${error === undefined ? '' : `: ${errorMessage(error)}`})`).join(', ');
  return new Error(
    `redis store: cluster master ${list} cannot be reached, so a walk of the keyspace cannot cover it; every other master was walked, try again once it is back`,
    { cause: (masters[0] as UnreachableMaster).error },
  );
}

/**
 * Where a keyspace walk is (destroyStep's cursor, as JSON): the masters already walked and the one
 * being walked (cluster node ids; unused on a single server), its SCAN cursor, the fingerprint of
 * the cluster map the walk runs under, and, once every master is walked, how many of the
 * migrating slots have been read again on their importing master.
 */
interface Walk {
  walked: string[];
  at: string | null;
  scan: string;
  map: string | null;
  rescan: number | null;
}
const WALK_START: Walk = Object.freeze({ walked: [], at: null, scan: '0', map: null, rescan: null }) as Walk;

// Lua helpers shared by the scripts: HSET/HDEL in slices, since `unpack` has a stack limit
// (~8000 values) and a session may hold many keys.
const LUA_SLICES = `
local function sliced(cmd, key, from, to)
  local i = from
  while i <= to do
    local j = math.min(i + 999, to)
    redis.call(cmd, key, unpack(ARGV, i, j))
    i = j + 1
  end
end
`;

/**
 * create: KEYS[1] session. ARGV[1] = time to live (ms, from the engine's own clock: expiresAt −
 * lastSeenAt, so a Redis clock that differs from the app's does not shorten it), ARGV[2..] =
 * field/value pairs. Returns 0 when the key exists (any type: a foreign key is never
 * overwritten), else 1.
 */
const CREATE_LUA = `${LUA_SLICES}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
sliced('HSET', KEYS[1], 2, #ARGV)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`;

/**
 * update / touch: KEYS[1] session.
 * ARGV: 1 expiresAt (stored), 2 time to live (ms, for PEXPIRE: expiresAt − lastSeenAt by the
 *       engine's clock), 3 lastSeenAt,
 *       4 user mode ('k' keep, 'n' guest, 's' set to ARGV[5]; upper case to keep a later stored
 *       'l' / 'e', SessionPatch.keepLater), 5 user id,
 *       6 '1' when the client has just extended index ARGV[7] to cover ARGV[8] (else '0'),
 *       9 P, 10 A, 11 U: counts of the guard fields that must be present, must be absent, and of
 *       the fields to unset, 12 the size bound (SessionPatch.maxBytes; '' for none); then those
 *       P + A + U field names, then field/value pairs to set, ending with the times ('l' and
 *       'e'), so one HSET writes them all (and with keepLater a later stored time is put back
 *       after it).
 * Returns {0} when there is no session, it has expired by ARGV[3] or a guard fails (nothing
 * written), {1} when applied, {2, user, expiry} when the user's index must first be extended
 * to cover that expiry (nothing written), or {3, bytes} when the size bound refuses the record the
 * patch would leave (nothing written). The common save is HMGET (which also proves the session
 * exists: every session hash has 'c'), HEXISTS for the save guard, HSET, PEXPIRE. The user fields
 * are written only when they change.
 *
 * 'b' holds the size of the session's data and meta as maxDataSize measures it (the bytes of each
 * key, the field name without its 'd:' / 'm:', plus those of its JSON value): kept up to date by
 * each save that changes fields, from the HSTRLEN of just those fields, and counted once from the
 * whole hash for a record that lacks it (written before it existed). A refusal is never decided on
 * it alone: the hash is counted again first, so a total left wrong (a save by an older version
 * during an upgrade) can let a session grow a little past the bound, never refuse one within it.
 */
const UPDATE_LUA = `${LUA_SLICES}
local key = KEYS[1]
-- A key of another type answers WRONGTYPE: like a missing key, that is no session here. Any other
-- error (a command the server's ACL refuses, say) is an outage, never "no session".
local current = redis.pcall('HMGET', key, 'u', 'x', 'c', 'e', 'l', 'b')
if current.err then
  if string.sub(current.err, 1, 9) == 'WRONGTYPE' then return {0} end
  return redis.error_reply(current.err)
end
if not current[3] then return {0} end
-- Expired by the engine's clock (lastSeenAt is its "now"), though Redis's clock may keep the key.
local stored = tonumber(current[4])
if not stored or stored <= tonumber(ARGV[3]) then return {0} end
local present, absent, unsets = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
for i = 13, 12 + present do
  if redis.call('HEXISTS', key, ARGV[i]) == 0 then return {0} end
end
for i = 13 + present, 12 + present + absent do
  if redis.call('HEXISTS', key, ARGV[i]) == 1 then return {0} end
end
local first = 13 + present + absent
-- The set pairs end before the times' two pairs.
local lastSet = #ARGV - 4
local bound = tonumber(ARGV[12])
local total = tonumber(current[6])
if (total or bound) and lastSet >= first then
  local delta = 0
  for i = first, first + unsets - 1 do
    local len = redis.call('HSTRLEN', key, ARGV[i])
    if len > 0 then delta = delta - #ARGV[i] + 2 - len end
  end
  for i = first + unsets, lastSet, 2 do
    local len = redis.call('HSTRLEN', key, ARGV[i])
    if len > 0 then delta = delta + #ARGV[i + 1] - len else delta = delta + #ARGV[i] - 2 + #ARGV[i + 1] end
  end
  local function counted()
    local n = 0
    local all = redis.call('HGETALL', key)
    for i = 1, #all, 2 do
      local namespace = string.sub(all[i], 1, 2)
      if namespace == 'd:' or namespace == 'm:' then n = n + #all[i] - 2 + #all[i + 1] end
    end
    return n
  end
  if not total then total = counted() end
  if bound and delta > 0 and total + delta > bound then
    total = counted()
    if total + delta > bound then return {3, total + delta} end
  end
  total = total + delta
else
  total = nil
end
local expires = tonumber(ARGV[1])
local mode = string.lower(ARGV[4])
local keepLater = mode ~= ARGV[4]
local target = current[1]
if mode == 's' then target = ARGV[5] elseif mode == 'n' then target = false end
local ensured = false
-- The expiry the session will have: a later stored one stays under keepLater.
local cover, coverText = expires, ARGV[1]
if keepLater and stored > expires then cover, coverText = stored, current[4] end
if target then
  -- 'x' not a number (foreign or corrupt data): the index is extended as if it had none.
  local indexed = tonumber(current[2])
  if current[1] == target and indexed and indexed >= cover then
    ensured = current[2]
  elseif ARGV[6] == '1' and ARGV[7] == target and tonumber(ARGV[8]) >= cover then
    ensured = ARGV[8]
  else
    return {2, target, coverText}
  end
end
if unsets > 0 then sliced('HDEL', key, first, first + unsets - 1) end
local from = first + unsets
if total then
  -- The new size goes with the first slice of fields: no HSET of its own.
  local to = math.min(from + 999, #ARGV)
  redis.call('HSET', key, 'b', total, unpack(ARGV, from, to))
  from = to + 1
end
sliced('HSET', key, from, #ARGV)
if target then
  if current[1] ~= target or current[2] ~= ensured then redis.call('HSET', key, 'u', target, 'x', ensured) end
elseif current[1] or current[2] then
  redis.call('HDEL', key, 'u', 'x')
end
local ttl = ARGV[2]
if keepLater then
  local seen = tonumber(current[5])
  if seen and seen > tonumber(ARGV[3]) then redis.call('HSET', key, 'l', current[5]) end
  if stored > expires then
    redis.call('HSET', key, 'e', current[4])
    ttl = math.max(1, math.ceil(stored) - math.floor(tonumber(ARGV[3])))
  end
end
redis.call('PEXPIRE', key, ttl)
return {1}
`;

/**
 * Index upkeep: KEYS[1] user index. ARGV[1] session id, ARGV[2] the time (ms) until which the
 * member must stay, ARGV[3] the engine's "now". The score is that time (raised, never lowered);
 * members whose time has passed are dropped, and the key expires with its latest member. Both by
 * the engine's clock, as the sessions' own times are: not Redis's, which may differ.
 */
const INDEX_LUA = `
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(tonumber(top[2]) - now))) end
return 1
`;

/** destroy: KEYS[1] session. Deletes it (whatever its type); returns {existed, user?}. */
const DESTROY_LUA = `
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then return {0} end
local user = false
if kind == 'hash' then user = redis.call('HGET', KEYS[1], 'u') end
redis.call('UNLINK', KEYS[1])
if user then return {1, user} end
return {1}
`;

/**
 * destroyIfEmpty: KEYS[1] session, ARGV the meta keys that do not count. Deletes the hash only if it
 * has no user, no data field and no other meta field, in one script (no save can land in between).
 * Returns 0 absent, 1 kept (a key of another type included: not ours to judge), 2 deleted.
 */
const DESTROY_IF_EMPTY_LUA = `
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then return 0 end
if kind ~= 'hash' or redis.call('HEXISTS', KEYS[1], 'u') == 1 then return 1 end
local ignored = {}
for _, key in ipairs(ARGV) do ignored['m:' .. key] = true end
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  local namespace = string.sub(field, 1, 2)
  if namespace == 'd:' or (namespace == 'm:' and not ignored[field]) then return 1 end
end
redis.call('UNLINK', KEYS[1])
return 2
`;

/**
 * Conditional delete for destroyByUser: KEYS = session keys (one per call on a Cluster, a whole
 * batch on a single server). ARGV[1] 'g' (only guest sessions) or 'u' (only sessions of user
 * ARGV[2]). Returns, per key, 1 deleted, 0 already gone, -1 not this owner's. The owner is checked
 * on the session itself because an index entry may be stale.
 */
const DELETE_IF_OWNER_LUA = `
local results = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key).ok
  local result = -1
  if kind == 'none' then
    result = 0
  elseif kind == 'hash' then
    local user = redis.call('HGET', key, 'u')
    if (ARGV[1] == 'g' and not user) or (ARGV[1] == 'u' and user == ARGV[2]) then
      redis.call('UNLINK', key)
      result = 1
    end
  end
  results[i] = result
end
return results
`;

/**
 * Bulk delete for destroyAll: KEYS = session keys (one per call on a Cluster, a whole batch on a
 * single server). Deletes each (whatever its type) and returns, per key, 0 already gone, 1 deleted
 * (a guest or a foreign key), or the user of a deleted user session, whose index entry the caller
 * then removes.
 */
const DELETE_REPORTING_LUA = `
local results = {}
for i, key in ipairs(KEYS) do
  -- A key of another type answers WRONGTYPE (a table here): deleted all the same, with no user.
  local user = redis.pcall('HGET', key, 'u')
  local result = redis.call('UNLINK', key)
  if result == 1 and type(user) == 'string' then result = user end
  results[i] = result
end
return results
`;

/**
 * Index entry removal for a single server: KEYS = user indexes; ARGV = for each, a count n then
 * its n session ids. One call instead of one ZREM per user (never used on a Cluster: the keys
 * are in different slots).
 */
const UNINDEX_MANY_LUA = `
local at = 1
for _, key in ipairs(KEYS) do
  local n = tonumber(ARGV[at])
  local i = at + 1
  while i <= at + n do
    local j = math.min(i + 999, at + n)
    redis.call('ZREM', key, unpack(ARGV, i, j))
    i = j + 1
  end
  at = at + n + 1
end
return 1
`;

interface Script {
  lua: string;
  sha: string;
}
function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}
const SCRIPTS = {
  create: script(CREATE_LUA),
  update: script(UPDATE_LUA),
  index: script(INDEX_LUA),
  destroy: script(DESTROY_LUA),
  destroyIfEmpty: script(DESTROY_IF_EMPTY_LUA),
  deleteIfOwner: script(DELETE_IF_OWNER_LUA),
  deleteReporting: script(DELETE_REPORTING_LUA),
  unindexMany: script(UNINDEX_MANY_LUA),
};

/** The update script's user mode in upper case: keep a later stored lastSeenAt / expiresAt. */
const KEEP_LATER_MODE = { k: 'K', n: 'N', s: 'S' } as const;

/** Escapes SCAN glob characters so a prefix matches only itself. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isWrongType(error: unknown): boolean {
  return errorMessage(error).startsWith('WRONGTYPE');
}

/**
 * A key's time to live (ms) for PEXPIRE, from the engine's own times: Redis applies it by its
 * clock, so a Redis clock ahead of or behind the app's does not end sessions early or late (an
 * absolute PEXPIREAT would: by more than a session's lifetime, at once). At least 1: PEXPIRE
 * with 0 or less deletes the key, which only an expired session (refused before this) deserves.
 */
function timeToLive(expiresAt: number, lastSeenAt: number): number {
  return Math.max(1, Math.ceil(expiresAt) - Math.floor(lastSeenAt));
}

/**
 * How long a user's index must keep a session: its expiry plus some slack, so that a sliding
 * session refreshed on every request extends the index about once per lifetime (capped at a day),
 * not on every request. The index only ever holds ids, so the slack costs little.
 */
function indexUntil(expiresAt: number, lastSeenAt: number): number {
  const slack = Math.min(Math.max(expiresAt - lastSeenAt, 0), MAX_INDEX_SLACK);
  return Math.ceil(expiresAt + slack);
}

/** Runs `fn` over `items`, at most BATCH at a time, results in order. */
async function inBatches<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += BATCH) {
    out.push(...(await Promise.all(items.slice(i, i + BATCH).map(fn))));
  }
  return out;
}

function ownsKeyPrefix(client: Redis | Cluster): boolean {
  const options = client.options as { keyPrefix?: unknown };
  return typeof options.keyPrefix === 'string' && options.keyPrefix.length > 0;
}

/**
 * Whether a URL sets ioredis' `keyPrefix`: ioredis copies every query parameter of a URL into
 * the client's options, and reads the query as everything after the first `?`, as here.
 */
function urlSetsKeyPrefix(url: string): boolean {
  const mark = url.indexOf('?');
  return mark >= 0 && (new URLSearchParams(url.slice(mark + 1)).get('keyPrefix') ?? '') !== '';
}

const REDIS_OPTIONS = Object.keys({
  client: true, url: true, prefix: true, commandTimeout: true, connectTimeout: true, clock: true,
} satisfies Record<keyof RedisStoreOptions, true>);

/** connect-redis' and ioredis' names for what these options do. */
const REDIS_HINTS: Readonly<Record<string, string>> = {
  keyPrefix: 'use prefix (the store\'s own; ioredis\' keyPrefix is refused, see docs/stores/redis.md)',
  host: 'use url (redis://host:6379/0), or client for a connection the app configures',
  port: 'use url (redis://host:6379/0), or client for a connection the app configures',
  db: 'use url with the database number as its path (redis://host:6379/2)',
  password: 'use url (redis://:password@host:6379), or client',
  username: 'use url (redis://user:password@host:6379), or client',
  tls: 'use a rediss:// url, or client for TLS options of your own',
  redisOptions: 'use client: a Redis or Cluster the app configured',
  scanCount: 'not needed: the store scans in batches of its own',
  disableTTL: 'records always expire with the session (createSessions idleTimeout, absoluteTimeout)',
};

/**
 * The URL forms ioredis reads as a Redis address: `redis://` / `rediss://` (TLS), and a Unix
 * socket path. Anything else, `http://127.0.0.1:6379` say, ioredis takes for a host name (here
 * `http`) and would try to reach that instead.
 */
const REDIS_URL = /^(rediss?:\/\/|\/(?!\/))/i;

function checkUrl(url: unknown): void {
  if (typeof url !== 'string' || url === '') throw new ConfigError('redisStore: url must be a non-empty string, e.g. redis://127.0.0.1:6379');
  if (REDIS_URL.test(url)) return;
  // Only the scheme is shown: the rest may hold a password.
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*:)\/\//.exec(url)?.[1];
  throw new ConfigError(
    `redisStore: url must start with redis:// or rediss:// (TLS), or be a Unix socket path, got ${scheme === undefined ? 'no scheme' : `scheme ${scheme}`}; e.g. redis://127.0.0.1:6379/0`,
  );
}

/** Why a client-side key prefix is refused (client or URL alike). */
const KEY_PREFIX_REASON =
  'SCAN returns full key names, which ioredis would prefix a second time, so bulk deletes and stats would miss every session';

/** The store name used in errors and events. */
const NAME = 'redis';

/**
 * Creates a Redis store. Pass `url` (the store owns the connection) or `client` (the app owns it:
 * a `Redis` or a `Cluster`). Needs Redis 6.2 or later (`ZADD GT`).
 *
 * @example
 * <!-- snippet: with coatcheck, stores -->
 * ```ts
 * const store = redisStore({ url: process.env.REDIS_URL, prefix: 'shop:' });
 * const sessions = createSessions({ store });
 * ```
 */
export function redisStore(options: RedisStoreOptions): Store {
  checkFactoryOptions('redisStore', options, REDIS_OPTIONS, { required: true, usage: "redisStore({ url: 'redis://127.0.0.1:6379' }) or redisStore({ client })", hints: REDIS_HINTS });
  const prefix = options.prefix ?? 'coatcheck:';
  const commandTimeout = options.commandTimeout ?? 5_000;
  const connectTimeout = options.connectTimeout ?? commandTimeout;
  const clock = options.clock ?? systemClock;
  if ((options.client === undefined) === (options.url === undefined)) {
    // `url: process.env.REDIS_URL` with the variable unset arrives as undefined.
    const unset = options.client === undefined && 'url' in options ? ' (url is undefined: is the environment variable you passed unset?)' : '';
    throw new ConfigError(`redisStore: pass exactly one of \`client\` (an ioredis Redis or Cluster) or \`url\`${unset}`);
  }
  if (options.url !== undefined) checkUrl(options.url);
  if (typeof prefix !== 'string' || prefix.length === 0) throw new ConfigError('redisStore: prefix must be a non-empty string');
  // A brace in the prefix would become the hash tag of every key, pinning them all to one slot.
  if (/[{}]/.test(prefix)) throw new ConfigError('redisStore: prefix must not contain `{` or `}` (keys carry their own hash tags)');
  // ioredis (and clusterReady) hand these to setTimeout, which fires a longer delay after 1 ms.
  for (const [option, value] of [['commandTimeout', commandTimeout], ['connectTimeout', connectTimeout]] as const) {
    if (typeof value !== 'number' || !(value > 0 && value <= MAX_TIMER_MS)) {
      throw new ConfigError(`redisStore: ${option} must be a number of milliseconds greater than 0 and at most ${MAX_TIMER_MS}, got ${String(value)}`);
    }
  }
  if (options.client && ownsKeyPrefix(options.client)) {
    throw new ConfigError(`redisStore: the client has a \`keyPrefix\`; use the store's \`prefix\` option instead (${KEY_PREFIX_REASON})`);
  }
  if (typeof options.url === 'string' && urlSetsKeyPrefix(options.url)) {
    throw new ConfigError(
      `redisStore: the URL sets ?keyPrefix=, which ioredis applies to the connection; use the store's \`prefix\` option instead (${KEY_PREFIX_REASON})`,
    );
  }

  const owned = options.client === undefined;
  const client: Redis | Cluster =
    options.client ??
    new Redis(options.url as string, {
      // Fail fast when Redis is down: a command fails after one reconnect attempt or after
      // commandTimeout (failCommandsAfter below), whichever comes first, instead of waiting in the
      // offline queue. The queue stays on so commands sent while the first connection is being
      // made are not refused.
      maxRetriesPerRequest: 1,
      connectTimeout,
      // Off: the store batches each event-loop iteration's commands itself (./redis-tick-batch.ts),
      // which saves Redis as much CPU as auto-pipelining did, for less of the app's CPU.
      enableAutoPipelining: false,
      // A command whose answer was lost with its connection may have run: re-sending it would run
      // a create or a token spend twice and misreport it. It fails instead (503).
      autoResendUnfulfilledCommands: false,
      // A failover behind a stable address (DNS, a VIP) leaves the connection on a demoted
      // primary: reconnect on READONLY (the refused write never ran) instead of failing every
      // write until the connection happens to break. At most once a second: a burst of refused
      // writes reconnecting each time stacks listeners on the socket (a MaxListeners warning).
      reconnectOnError: reconnectOnReadOnly(),
    });
  if (owned && ownsKeyPrefix(client)) {
    // A URL form the check above does not read the same way as ioredis: still refused.
    client.disconnect();
    throw new ConfigError(`redisStore: the URL gives the connection a \`keyPrefix\`; use the store's \`prefix\` option instead (${KEY_PREFIX_REASON})`);
  }
  // Connection errors reach callers as rejected commands; without a listener ioredis would also
  // print each reconnect failure.
  if (owned) client.on('error', () => {});
  // ioredis' own commandTimeout would arm a timer per command: one timer per connection instead.
  const stopDeadlines = owned ? failCommandsAfter(client as Redis, commandTimeout).stop : () => {};
  if (owned) failCommandsLostWithConnection(client as Redis);
  warnIfEvicting(client, prefix);
  const cluster = client.isCluster ? (client as Cluster) : null;
  // Called right before each per-request command, so an iteration's commands leave in one write.
  const batch = tickBatcher(client);

  const sessionKey = (id: string): string => `${prefix}s:{${id}}`;
  const userKey = (userId: string): string => `${prefix}u:{${userId}}`;
  const sessionStart = `${prefix}s:{`;
  const idOf = (key: string): string => key.slice(sessionStart.length, key.endsWith('}') ? -1 : undefined);
  /** SCAN's pattern for every session key under the prefix (and nothing else). */
  const sessionPattern = `${globEscape(sessionStart)}*`;

  /** EVALSHA, falling back to EVAL (which caches the script) on a node that lacks it. */
  async function run(s: Script, keys: string | string[], args: (string | number)[]): Promise<unknown> {
    const list = typeof keys === 'string' ? [keys] : keys;
    try {
      batch();
      return await client.evalsha(s.sha, list.length, ...list, ...args);
    } catch (error) {
      if (!errorMessage(error).startsWith('NOSCRIPT')) throw error;
      return client.eval(s.lua, list.length, ...list, ...args);
    }
  }

  /**
   * Runs a per-key script over many keys, results in order: a single server takes a whole batch
   * per script call; a Cluster needs one call per key, since keys in different slots cannot share
   * a script.
   */
  async function perKey<R>(s: Script, keys: string[], args: string[]): Promise<R[]> {
    if (cluster) return inBatches(keys, async (key) => ((await run(s, key, args)) as R[])[0] as R);
    const out: R[] = [];
    for (let i = 0; i < keys.length; i += BATCH) out.push(...((await run(s, keys.slice(i, i + BATCH), args)) as R[]));
    return out;
  }

  /** Deletes each session key if it belongs to the owner (see DELETE_IF_OWNER_LUA); results in order. */
  function deleteIfOwner(keys: string[], owner: string | null): Promise<number[]> {
    return perKey<number>(SCRIPTS.deleteIfOwner, keys, owner === null ? ['g', ''] : ['u', owner]);
  }

  /**
   * Deletes session keys, then the index entries of the user sessions among them; resolves to how
   * many existed. Index keys are never deleted whole: one may list a session created after a
   * keyspace walk passed that session's key, which must stay reachable by user.
   */
  async function deleteSessions(keys: string[]): Promise<number> {
    const results = await perKey<number | string>(SCRIPTS.deleteReporting, keys, []);
    let deleted = 0;
    const byUser = new Map<string, string[]>();
    results.forEach((result, i) => {
      if (result === 0) return;
      deleted++;
      if (typeof result !== 'string') return;
      const ids = byUser.get(result);
      if (ids) ids.push(idOf(keys[i] as string));
      else byUser.set(result, [idOf(keys[i] as string)]);
    });
    if (cluster) {
      await inBatches([...byUser], ([userId, ids]) => removeFromIndex(userId, ids));
    } else if (byUser.size > 0) {
      // One script call for the page rather than one ZREM command per user (a Cluster cannot).
      const args: (string | number)[] = [];
      for (const ids of byUser.values()) args.push(ids.length, ...ids);
      await run(SCRIPTS.unindexMany, [...byUser.keys()].map(userKey), args);
    }
    return deleted;
  }

  /** Makes sure `userId`'s index lists `id` until at least `until`. */
  async function index(userId: string, id: string, until: number, now: number): Promise<void> {
    await run(SCRIPTS.index, userKey(userId), [id, until, Math.floor(now)]);
  }

  async function removeFromIndex(userId: string, ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += BATCH) await client.zrem(userKey(userId), ...ids.slice(i, i + BATCH));
  }

  /** Resolves when a Cluster client knows its slots (so `nodes()` lists every master). */
  async function clusterReady(c: Cluster): Promise<void> {
    if (c.status === 'ready') return;
    if (c.status === 'wait') c.connect().catch(() => {});
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`cluster not ready within ${commandTimeout} ms`)), commandTimeout);
      const onReady = () => finish();
      const onEnd = () => finish(new Error('cluster connection closed'));
      function finish(error?: Error): void {
        clearTimeout(timer);
        c.off('ready', onReady);
        c.off('end', onEnd);
        if (error) reject(error);
        else resolve();
      }
      c.once('ready', onReady);
      c.once('end', onEnd);
    });
  }

  /**
   * Asks ioredis to re-read the slot map (CLUSTER SLOTS), which also reconnects to every slot
   * owner. Waits a second at most: a master still missing then gets a connection of the store's own.
   */
  function refreshSlots(c: Cluster): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(commandTimeout, 1_000));
      timer.unref();
      c.refreshSlotsCache(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * A connection of the store's own to a master ioredis has no connection to (an importing master
   * that owns no slot yet is not in its pool), with the Cluster's `redisOptions` (and `natMap`,
   * looked up by `endpoint`, the `host:port` ioredis itself would see). Its commands time out
   * after the `redisOptions`' `commandTimeout`, else the store's: a master that accepts the
   * connection but never answers (stopped, overloaded) must not hang the walk. Closed by the
   * caller once the step is over.
   */
  function connectTo(c: Cluster, endpoint: string): Redis {
    const mapper = (c as unknown as { natMapper?: (key: string) => { host?: string; port?: number } }).natMapper;
    const colon = endpoint.lastIndexOf(':');
    const mapped = typeof mapper === 'function' ? mapper.call(c, endpoint) : {};
    const redisOptions = c.options.redisOptions ?? {};
    const redis = new Redis({
      ...redisOptions,
      host: mapped.host ?? endpoint.slice(0, colon),
      port: mapped.port ?? Number(endpoint.slice(colon + 1)),
      lazyConnect: true,
      enableOfflineQueue: true,
      maxRetriesPerRequest: 1,
      retryStrategy: () => null,
      connectTimeout: redisOptions.connectTimeout ?? connectTimeout,
      commandTimeout: redisOptions.commandTimeout ?? commandTimeout,
    });
    redis.on('error', () => {});
    return redis;
  }

  /**
   * Whether the cluster gives clients hostnames rather than IPs (`cluster-preferred-endpoint-type
   * hostname`), which is then what ioredis sees and what an app's `natMap` is keyed by: `CLUSTER
   * SLOTS` lists a slot owner by its IP only under `ip`. Asked only when a connection of the
   * store's own must reach a node that announces a hostname.
   */
  async function hostnameEndpoints(node: Redis, lines: readonly ClusterNodeLine[]): Promise<boolean> {
    let slots: Array<[number, number, ...Array<[unknown, number, unknown, ...unknown[]]>]>;
    try {
      slots = (await node.call('CLUSTER', 'SLOTS')) as Array<[number, number, ...Array<[unknown, number, unknown, ...unknown[]]>]>;
    } catch {
      // Cannot tell: the node's announcement is what there is to go by.
      return true;
    }
    for (const [, , owner] of slots) {
      const line = owner && lines.find((l) => l.id === String(owner[2]));
      if (!line) continue;
      // `?` (no hostname announced) or the hostname under `hostname`; the IP under `ip`.
      return String(owner[0]) !== line.address.slice(0, line.address.lastIndexOf(':'));
    }
    return true;
  }

  /**
   * The Cluster's masters as they report themselves now, asked of every master (`CLUSTER NODES`),
   * not read from ioredis' connection pool: ioredis drops a master from the pool when its
   * connection ends (CLIENT KILL, an idle timeout, a network blip) and adds it back only when a
   * command is routed there, so the pool may lack a master that owns slots. Every master that owns
   * a slot in any master's view, and every master importing a slot, must be walked: one missing
   * from the pool is reconnected (ioredis re-reads the slot map), or reached by a connection of the
   * store's own. One that still cannot be reached (a connection error) is listed as unreachable:
   * the walk covers every other master, then fails (see walkStep). A migration target that owns no
   * slot and that the cluster marks failing (`fail` or `fail?`: an interrupted resharding onto a
   * new master, which then died) is left out, with the re-read of the slots migrating to it: the
   * keys already moved there are out of every client's reach until it is back. A master that
   * answers with an error (a refused command) fails the step at once.
   *
   * The fingerprint covers each reachable master's own line (its slots, the slots it is migrating
   * or importing, its config epoch, which a finished import or a failover bumps): equal before and
   * after a walk means no slot moved and no migration started or ended meanwhile.
   */
  async function clusterMap(c: Cluster): Promise<ClusterMap> {
    await clusterReady(c);
    const answered = new Map<string, { node: Redis; address: string; self: ClusterNodeLine; lines: ClusterNodeLine[] }>();
    const asked = new Set<Redis>();
    const own: Redis[] = [];
    /** Why a master could not be asked, by cluster node id (own connections) or by pool address. */
    const failures = new Map<string, unknown>();
    const close = (): void => {
      for (const redis of own) redis.disconnect();
    };
    const ask = async (node: Redis, expected?: string): Promise<void> => {
      asked.add(node);
      const address = `${node.options.host ?? ''}:${node.options.port ?? ''}`;
      let reply: unknown;
      try {
        reply = await node.call('CLUSTER', 'NODES');
      } catch (error) {
        if (!isConnectionError(error)) throw error;
        failures.set(expected ?? address, error);
        return;
      }
      const lines = parseClusterNodes(String(reply));
      const self = lines.find((line) => line.flags.includes('myself'));
      if (!self) throw new Error(`redis store: CLUSTER NODES of ${address} names no node as "myself"`);
      if (expected !== undefined && self.id !== expected) {
        failures.set(expected, new Error(`${address} answers as cluster node ${self.id}`));
        return;
      }
      answered.set(self.id, { node, address, self, lines });
    };
    const askPool = () => Promise.all(c.nodes('master').filter((node) => !asked.has(node)).map((node) => ask(node)));
    /** Every master that owns a slot in any view, or imports one, or is a migration target: id → its line. */
    const needed = (): Map<string, ClusterNodeLine> => {
      const ids = new Map<string, ClusterNodeLine>();
      const targets = new Set<string>();
      for (const { self, lines } of answered.values()) {
        for (const line of lines) if (line.slots.length > 0) ids.set(line.id, line);
        for (const move of self.migrating) {
          targets.add(move.target);
          if (!ids.has(move.target)) {
            // A target this node's view does not list (forgotten?) cannot be reached: say so.
            const unknown: ClusterNodeLine = { id: move.target, address: '?', hostname: null, flags: [], epoch: '0', slots: [], migrating: [], importing: [] };
            ids.set(move.target, lines.find((line) => line.id === move.target) ?? unknown);
          }
        }
        if (self.importing.length > 0) ids.set(self.id, self);
      }
      for (const id of targets) {
        if (answered.has(id)) continue;
        const views = [...answered.values()].map(({ lines }) => lines.find((line) => line.id === id));
        const ownsSlots = views.some((line) => line !== undefined && line.slots.length > 0);
        const failing = views.some((line) => line !== undefined && (line.flags.includes('fail') || line.flags.includes('fail?')));
        if (!ownsSlots && failing) ids.delete(id);
      }
      return ids;
    };
    try {
      await askPool();
      if (answered.size === 0) {
        const [address, error] = [...failures][0] ?? ['-', new Error('ioredis has no master in its pool')];
        throw new Error(`redis store: no master of the cluster can be reached (${address}: ${errorMessage(error)}), so a walk of the keyspace cannot start`, { cause: error });
      }
      let missing = [...needed()].filter(([id]) => !answered.has(id));
      if (missing.length > 0) {
        await refreshSlots(c);
        await askPool();
        missing = [...needed()].filter(([id]) => !answered.has(id));
      }
      if (missing.length > 0) {
        const some = answered.values().next().value as { node: Redis; lines: ClusterNodeLine[] };
        const byHostname = missing.some(([, line]) => line.hostname !== null) ? await hostnameEndpoints(some.node, some.lines) : false;
        await Promise.all(
          missing.map(([id, line]) => {
            const redis = connectTo(c, byHostname && line.hostname !== null ? `${line.hostname}:${line.address.slice(line.address.lastIndexOf(':') + 1)}` : line.address);
            own.push(redis);
            return ask(redis, id);
          }),
        );
      }
      const wanted = needed();
      const unreachable: UnreachableMaster[] = [...wanted]
        .filter(([id]) => !answered.has(id))
        .map(([id, line]) => ({ id, address: line.hostname ? `${line.address}, ${line.hostname}` : line.address, error: failures.get(id) }));
      const ids = [...wanted.keys()].filter((id) => answered.has(id)).sort();
      const masters = ids.map((id) => answered.get(id) as { node: Redis; address: string; self: ClusterNodeLine });
      const moving = new Map<string, { slot: number; target: string }>();
      for (const { self } of masters) {
        for (const move of self.migrating) if (wanted.has(move.target)) moving.set(`${move.slot}>${move.target}`, move);
        for (const slot of self.importing) moving.set(`${slot}>${self.id}`, { slot, target: self.id });
      }
      const fingerprint = masters
        .map(({ self }) => `${self.id} ${self.epoch} ${self.slots.join(' ')} ${self.migrating.map((m) => `${m.slot}>${m.target}`).join(' ')} ${self.importing.map((s) => `<${s}`).join(' ')}`)
        .join('\n');
      return {
        fingerprint: createHash('sha1').update(fingerprint).digest('base64url'),
        masters: masters
          .map(({ node, address, self }) => ({ id: self.id, address, node }))
          .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.id < b.id ? -1 : 1)),
        unreachable,
        moving: [...moving.values()].sort((a, b) => a.slot - b.slot || (a.target < b.target ? -1 : a.target > b.target ? 1 : 0)),
        close,
      };
    } catch (error) {
      close();
      throw error;
    }
  }

  /**
   * Runs a command of the walk on one master; a connection error (it went away since the map was
   * read) becomes the walk's "cannot be reached" error, a reply error stays as it is.
   */
  async function onMaster<T>(master: { id: string; address: string }, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (!isConnectionError(error)) throw error;
      throw unreachableError([{ id: master.id, address: master.address, error }]);
    }
  }

  /**
   * SCAN rounds on one node from `cursor`, until about `limit` keys were seen; the next cursor ('0':
   * done). `master` (on a Cluster) names the node in a connection error.
   */
  async function scanRounds(node: Redis, cursor: string, limit: number, onKeys: (keys: string[]) => Promise<void>, master?: { id: string; address: string }): Promise<string> {
    const count = Math.min(SCAN_COUNT, limit);
    // Sessions may be sparse among the keys (a shared Redis, other prefixes): keep scanning until
    // `limit` of ours were seen, over at most SPARSE_SCAN × limit slots, rather than answering
    // a step per `limit` slots (a walk of thousands of empty steps through a big keyspace).
    const rounds = Math.max(1, Math.ceil((limit * SPARSE_SCAN) / count));
    let seen = 0;
    for (let round = 0; round < rounds; round++) {
      const page = () => node.scan(cursor, 'MATCH', sessionPattern, 'COUNT', count);
      const [next, keys] = master ? await onMaster(master, page) : await page();
      cursor = next;
      seen += keys.length;
      if (keys.length > 0) await onKeys(keys);
      if (cursor === '0' || seen >= limit) break;
    }
    return cursor;
  }

  /**
   * One bounded step of a walk over every session key: at most about `limit` keys examined, on
   * one node. On a Cluster the walk visits every reachable master of the cluster map (see
   * clusterMap), in address order; it starts over (`onRestart`, then from the first master:
   * deleting is idempotent) whenever the map differs from the one it started under (slots moved,
   * a failover, a migration began or ended), since keys may have moved onto a master already
   * walked. Once every master is walked and the map is still the same, the slots being migrated
   * (then and all along) are read again on their importing master (`CLUSTER GETKEYSINSLOT`): a key
   * MIGRATEd from a master not walked yet onto one already walked is there. So a walk ends only
   * after a whole walk under one unchanged map. Resolves to the walk's next state, null when it is
   * complete; rejects instead of completing when a master it must cover cannot be reached (after
   * walking all the others).
   *
   * `seen` (stats, which must not count a key twice): the keys of migrating slots already passed
   * to `onKeys` in this walk, by slot; such a key found again (on the importing master's SCAN,
   * then by the re-read, or on both masters) is not passed again. It holds at most the keys of
   * the migrating slots; the caller clears it when the walk starts over.
   */
  async function walkStep(
    limit: number,
    walk: Walk,
    onKeys: (keys: string[]) => Promise<void>,
    onRestart: () => void,
    seen?: Map<number, Set<string>>,
  ): Promise<Walk | null> {
    if (!cluster) {
      const next = await scanRounds(client as Redis, walk.scan, limit, onKeys);
      return next === '0' ? null : { ...walk, scan: next };
    }
    const map = await clusterMap(cluster);
    const complete = (): null => {
      if (map.unreachable.length > 0) throw unreachableError(map.unreachable);
      return null;
    };
    try {
      if (walk.map !== null && walk.map !== map.fingerprint) {
        onRestart();
        walk = WALK_START;
      }
      const moving = new Set(map.moving.map((m) => m.slot));
      const deliver =
        seen === undefined || moving.size === 0
          ? onKeys
          : async (keys: string[]): Promise<void> => {
              const fresh = keys.filter((key) => {
                const slot = keySlot(key);
                if (!moving.has(slot)) return true;
                let known = seen.get(slot);
                if (!known) seen.set(slot, (known = new Set()));
                if (known.has(key)) return false;
                known.add(key);
                return true;
              });
              if (fresh.length > 0) await onKeys(fresh);
            };
      if (walk.rescan === null) {
        const { walked } = walk;
        let current = walk.at === null ? undefined : map.masters.find((m) => m.id === walk.at && !walked.includes(m.id));
        let scanCursor = walk.scan;
        if (!current) {
          scanCursor = '0';
          current = map.masters.find((m) => !walked.includes(m.id));
        }
        if (current) {
          scanCursor = await scanRounds(current.node, scanCursor, limit, deliver, current);
          if (scanCursor !== '0') return { walked, at: current.id, scan: scanCursor, map: map.fingerprint, rescan: null };
          const done = [...walked, current.id];
          const following = map.masters.find((m) => !done.includes(m.id));
          if (following) return { walked: done, at: following.id, scan: '0', map: map.fingerprint, rescan: null };
        }
        // Every master is walked: the walk counts only if the map did not change while it ran.
        const end = await clusterMap(cluster);
        end.close();
        if (end.fingerprint !== map.fingerprint) {
          onRestart();
          return WALK_START;
        }
        if (end.moving.length === 0) return complete();
        return { walked: map.masters.map((m) => m.id), at: null, scan: '0', map: map.fingerprint, rescan: 0 };
      }
      let index = walk.rescan;
      let examined = 0;
      for (; index < map.moving.length && examined < limit; index++) {
        const { slot, target } = map.moving[index] as { slot: number; target: string };
        const master = map.masters.find((m) => m.id === target);
        // Unreachable: the walk fails at its end (complete()).
        if (!master) continue;
        const count = Number(await onMaster(master, () => master.node.call('CLUSTER', 'COUNTKEYSINSLOT', slot)));
        if (!(count > 0)) continue;
        const keys = ((await onMaster(master, () => master.node.call('CLUSTER', 'GETKEYSINSLOT', slot, count))) as string[]).filter((key) =>
          key.startsWith(sessionStart),
        );
        examined += count;
        if (keys.length > 0) await deliver(keys);
      }
      return index < map.moving.length ? { ...walk, map: map.fingerprint, rescan: index } : complete();
    } finally {
      map.close();
    }
  }

  /**
   * Calls `onKeys` with every page of session keys (on every master of a Cluster), a walk of
   * steps as destroyStep's, run to the end. On a Cluster a walk that starts over calls
   * `onRestart` (keys already passed to `onKeys` come again); after MAX_WALKS walks that each saw
   * the cluster map change, it gives up with an error rather than walk on for ever. `once`
   * (stats): a key of a migrating slot is passed once per walk, though found on two masters.
   */
  async function scan(onKeys: (keys: string[]) => Promise<void>, onRestart: () => void = () => {}, once = false): Promise<void> {
    const seen = once ? new Map<number, Set<string>>() : undefined;
    let walks = 1;
    const restart = (): void => {
      if (++walks > MAX_WALKS) {
        throw new Error(
          `redis store: the cluster's slot map changed during each of ${MAX_WALKS} walks of the keyspace (a resharding or a failover under way?); not every session was reached, try again once it is over`,
        );
      }
      seen?.clear();
      onRestart();
    };
    for (let walk: Walk | null = WALK_START; walk !== null; ) walk = await walkStep(WALK_LIMIT, walk, onKeys, restart, seen);
  }

  /** destroyStep's cursor: a walk's state as JSON; anything else (not one of ours) walks from the start. */
  function decodeWalk(cursor: string | null): Walk {
    if (cursor === null) return WALK_START;
    try {
      const parsed = JSON.parse(cursor) as Partial<Record<keyof Walk | 'v', unknown>>;
      if (parsed.v !== 2) return WALK_START;
      return {
        walked: Array.isArray(parsed.walked) ? parsed.walked.filter((id): id is string => typeof id === 'string') : [],
        at: typeof parsed.at === 'string' ? parsed.at : null,
        scan: typeof parsed.scan === 'string' ? parsed.scan : '0',
        map: typeof parsed.map === 'string' ? parsed.map : null,
        rescan: typeof parsed.rescan === 'number' && Number.isInteger(parsed.rescan) && parsed.rescan >= 0 ? parsed.rescan : null,
      };
    } catch {
      return WALK_START;
    }
  }

  function fieldPairs(namespace: 'd:' | 'm:', values: Record<string, JsonValue> | undefined, out: string[]): void {
    if (!values) return;
    for (const key of Object.keys(values)) out.push(namespace + key, JSON.stringify(values[key]));
  }
  function changes(patch: SessionPatch): { unset: string[]; set: string[] } {
    const unset: string[] = [];
    const set: string[] = [];
    const add = (namespace: 'd:' | 'm:', c: KeyChanges | undefined) => {
      for (const key of c?.unset ?? []) unset.push(namespace + key);
      fieldPairs(namespace, c?.set, set);
    };
    add('d:', patch.data);
    add('m:', patch.meta);
    return { unset, set };
  }

  function decode(id: string, hash: Record<string, string>): SessionRecord {
    const corrupt = (detail: string) => new CorruptRecordError(NAME, `${sessionKey(id)}: ${detail}`);
    const time = (field: string): number => {
      const value = Number(hash[field]);
      if (hash[field] === undefined || hash[field] === '' || !Number.isFinite(value)) throw corrupt(`field ${field} is not a time`);
      return value;
    };
    const data: [string, JsonValue][] = [];
    const meta: [string, JsonValue][] = [];
    for (const field of Object.keys(hash)) {
      const target = field.startsWith('d:') ? data : field.startsWith('m:') ? meta : null;
      if (!target) continue;
      let value: JsonValue;
      try {
        value = JSON.parse(hash[field] as string) as JsonValue;
      } catch {
        throw corrupt(`field ${JSON.stringify(field)} is not JSON`);
      }
      target.push([field.slice(2), value]);
    }
    return {
      id,
      userId: hash.u ?? null,
      // objectFromEntries: a key named __proto__ stays an own data property.
      data: objectFromEntries(data),
      meta: objectFromEntries(meta),
      createdAt: time('c'),
      lastSeenAt: time('l'),
      expiresAt: time('e'),
      ip: hash.i ?? null,
      userAgent: hash.a ?? null,
    };
  }

  /**
   * Applies a patch with one script call in the common case. When the session belongs to a user
   * whose index does not yet cover the new expiry, the script writes nothing and says so; the index
   * is extended first and the script rerun, so the index never lags behind a live session.
   */
  async function patchSession(id: string, patch: SessionPatch): Promise<boolean> {
    const { unset, set } = changes(patch);
    // Guards name meta keys; they are checked inside the script, atomically with the write.
    const present = (patch.guard?.present ?? []).map((key) => `m:${key}`);
    const absent = (patch.guard?.absent ?? []).map((key) => `m:${key}`);
    const user = patch.userId === undefined ? 'k' : patch.userId === null ? 'n' : 's';
    const mode = patch.keepLater ? KEEP_LATER_MODE[user] : user;
    let ensured: { userId: string; until: number } | null = null;
    for (let attempt = 0; attempt < 5; attempt++) {
      const reply = (await run(SCRIPTS.update, sessionKey(id), [
        String(patch.expiresAt),
        timeToLive(patch.expiresAt, patch.lastSeenAt),
        String(patch.lastSeenAt),
        mode,
        user === 's' ? (patch.userId as string) : '',
        ensured ? '1' : '0',
        ensured?.userId ?? '',
        ensured?.until ?? 0,
        present.length,
        absent.length,
        unset.length,
        patch.maxBytes === undefined ? '' : String(patch.maxBytes),
        ...present,
        ...absent,
        ...unset,
        ...set,
        'l',
        String(patch.lastSeenAt),
        'e',
        String(patch.expiresAt),
      ])) as [number, (string | number)?, string?];
      if (reply[0] === 0) return false;
      if (reply[0] === 1) return true;
      if (reply[0] === 3) throw new SessionTooLargeError(Number(reply[1]), patch.maxBytes as number);
      const userId = reply[1] as string;
      // Up to the expiry the session will have (a later stored one, under keepLater).
      const until = indexUntil(Math.max(patch.expiresAt, Number(reply[2]) || 0), patch.lastSeenAt);
      await index(userId, id, until, patch.lastSeenAt);
      ensured = { userId, until };
    }
    // Only reachable if the session's user keeps changing under us.
    throw new Error(`redis store: session user kept changing during update of ${sessionKey(id)}`);
  }

  const store: Store = {
    name: NAME,

    async get(id) {
      let hash: Record<string, string>;
      try {
        batch();
        hash = await client.hgetall(sessionKey(id));
      } catch (error) {
        if (isWrongType(error)) throw new CorruptRecordError(NAME, `${sessionKey(id)} is not a hash`);
        throw error;
      }
      if (Object.keys(hash).length === 0) return null;
      return decode(id, hash);
    },

    async create(record) {
      const until = indexUntil(record.expiresAt, record.lastSeenAt);
      // 'b' (filled in below) among the fields every save reads first: a small hash is a list,
      // searched from its start.
      const fields: string[] = ['c', String(record.createdAt), 'l', String(record.lastSeenAt), 'e', String(record.expiresAt), 'b', ''];
      if (record.userId !== null) fields.push('u', record.userId, 'x', String(until));
      if (record.ip !== null) fields.push('i', record.ip);
      if (record.userAgent !== null) fields.push('a', record.userAgent);
      const from = fields.length;
      fieldPairs('d:', record.data, fields);
      fieldPairs('m:', record.meta, fields);
      // The size the update script keeps up to date (see UPDATE_LUA): each key's bytes (its
      // field name without the namespace) and its value's.
      let bytes = 0;
      for (let i = from; i < fields.length; i++) bytes += Buffer.byteLength(fields[i] as string);
      fields[7] = String(bytes - (fields.length - from));
      // Session first, index second: an index entry then always means "this session exists or
      // existed", so listByUser may prune entries whose session is gone. If indexing fails the
      // create fails and its session is removed again (no cookie was ever issued for it).
      const created = await run(SCRIPTS.create, sessionKey(record.id), [timeToLive(record.expiresAt, record.lastSeenAt), ...fields]);
      if (created === 0) throw new StoreConflictError(NAME);
      if (record.userId !== null) {
        try {
          await index(record.userId, record.id, until, record.lastSeenAt);
        } catch (error) {
          await client.unlink(sessionKey(record.id)).catch(() => {});
          throw error;
        }
      }
    },

    update(id, patch) {
      return patchSession(id, patch);
    },

    touch(id, times) {
      return patchSession(id, { lastSeenAt: times.lastSeenAt, expiresAt: times.expiresAt });
    },

    async destroy(id) {
      const reply = (await run(SCRIPTS.destroy, sessionKey(id), [])) as [number, string?];
      // The session is gone for good (ids are never reused), so its index entry can go too.
      if (reply[1] !== undefined) await removeFromIndex(reply[1], [id]);
    },

    async destroyIfEmpty(id, ignoredMeta) {
      batch();
      const reply = (await run(SCRIPTS.destroyIfEmpty, sessionKey(id), [...ignoredMeta])) as number;
      return reply === 2 ? 'deleted' : reply === 1 ? 'kept' : 'absent';
    },

    async destroyByUser(userId, except = []) {
      const keep = new Set(except);
      let deleted = 0;
      if (userId === null) {
        // Guests have no index (there can be millions): walk the prefix, delete hashes without a user.
        await scan(async (keys) => {
          const results = await deleteIfOwner(keys.filter((key) => !keep.has(idOf(key))), null);
          for (const result of results) if (result === 1) deleted++;
        });
        return deleted;
      }
      const ids = (await client.zrange(userKey(userId), 0, -1)).filter((id) => !keep.has(id));
      const results = await deleteIfOwner(ids.map(sessionKey), userId);
      // Entries of sessions now gone are removed; entries of sessions that moved to another user
      // stay until they age out (removing them could race with a move back).
      const gone = ids.filter((_, i) => results[i] === 1 || results[i] === 0);
      for (const result of results) if (result === 1) deleted++;
      await removeFromIndex(userId, gone);
      return deleted;
    },

    async destroyAll() {
      let deleted = 0;
      await scan(async (keys) => {
        deleted += await deleteSessions(keys);
      });
      return deleted;
    },

    async destroyStep({ guestsOnly, limit, cursor }) {
      let deleted = 0;
      const next = await walkStep(
        Math.max(1, limit),
        decodeWalk(cursor),
        async (keys) => {
          if (guestsOnly) {
            for (const result of await deleteIfOwner(keys, null)) if (result === 1) deleted++;
            return;
          }
          deleted += await deleteSessions(keys);
        },
        () => {},
      );
      return { deleted, cursor: next === null ? null : JSON.stringify({ v: 2, ...next }) };
    },

    async listByUser(userId) {
      const ids = await client.zrange(userKey(userId), 0, -1);
      const rows = await inBatches(ids, (id) =>
        client.hmget(sessionKey(id), 'u', 'c', 'l', 'e', 'i', 'a').then(
          (row) => row,
          (error: unknown) => {
            // A foreign key under a session name is skipped, not fatal to the listing.
            if (isWrongType(error)) return undefined;
            throw error;
          },
        ),
      );
      // The engine's clock, as the records' times are (a test clock behind real time listed nothing).
      const now = clock.now();
      const out: SessionSummary[] = [];
      const gone: string[] = [];
      ids.forEach((id, i) => {
        const row = rows[i];
        if (!row) return;
        const [u, c, l, e, ip, ua] = row;
        if (u === null && c === null && e === null) {
          gone.push(id);
          return;
        }
        // A session that moved to another user keeps a stale entry here: skip it.
        if (u !== userId) return;
        const createdAt = Number(c);
        const lastSeenAt = Number(l);
        const expiresAt = Number(e);
        if (![createdAt, lastSeenAt, expiresAt].every(Number.isFinite) || expiresAt <= now) return;
        out.push({ id, userId, createdAt, lastSeenAt, expiresAt, ip: ip ?? null, userAgent: ua ?? null });
      });
      // Expired or destroyed sessions: drop their entries (safe: an entry is written only after
      // its session, and a gone session never comes back).
      if (gone.length > 0) await removeFromIndex(userId, gone);
      // The index is scored by "keep until", not creation time, so order here.
      return out.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },

    async deleteExpired() {
      // Redis deletes expired sessions itself (PEXPIRE), and each user index drops entries past
      // their score whenever it is written and expires with its last entry. Nothing to sweep.
      return { deleted: 0, cursor: null };
    },

    /**
     * SCANs every session key under the prefix (on every master of a Cluster) and reads each one's
     * user and expiry: O(sessions) keys walked and one HMGET per session, pipelined 500 at a time.
     * It never blocks Redis (SCAN, not KEYS), but on millions of sessions it takes a while and adds
     * load: run it now and then, not on a timer. Redis deletes keys at expiry, so `expired` is 0
     * unless `now` is ahead of Redis's clock.
     */
    async stats(now, options) {
      const limit = topUsersLimit(options);
      const counts = new Map<string, number>();
      const totals = { sessions: 0, expired: 0, guests: 0 };
      // A walk that starts over (the cluster map changed) counts from zero again.
      const restart = (): void => {
        counts.clear();
        totals.sessions = totals.expired = totals.guests = 0;
      };
      await scan(async (keys) => {
        const rows = await inBatches(keys, (key) =>
          client.hmget(key, 'u', 'e').then(
            (row) => row,
            (error: unknown) => {
              // A foreign key under a session name is not a session: skip it, as listByUser does.
              if (isWrongType(error)) return undefined;
              throw error;
            },
          ),
        );
        for (const row of rows) {
          if (!row) continue;
          const [user, expires] = row;
          // Gone since the SCAN saw it (expired or destroyed meanwhile).
          if (expires === null || expires === undefined) continue;
          if (Number(expires) <= now) {
            totals.expired++;
            continue;
          }
          // A rotation forwarder is no session of anyone's: it only points at the new record.
          if (user === FORWARDER_USER) continue;
          totals.sessions++;
          if (user === null || user === undefined) totals.guests++;
          else counts.set(user, (counts.get(user) ?? 0) + 1);
        }
      }, restart, true);
      return statsFromCounts(counts, totals, limit);
    },

    async close() {
      if (!owned) return;
      stopDeadlines();
      const redis = client as Redis;
      if (redis.status === 'end') return;
      // QUIT lets in-flight commands finish; if Redis is unreachable, just drop the socket.
      await Promise.race([redis.quit().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
      redis.disconnect();
    },
  };
  const db = owned && !cluster ? Number((client.options as { db?: unknown }).db ?? 0) : 0;
  return db > 0 ? withDatabaseCheck(store, client as Redis, db) : store;
}

/** `reconnectOnError` for READONLY replies (a demoted primary), at most once a second. */
function reconnectOnReadOnly(): (error: Error) => boolean {
  let last = -Infinity;
  return (error) => {
    if (!error.message.startsWith('READONLY')) return false;
    const now = performance.now();
    if (now - last < 1_000) return false;
    last = now;
    return true;
  };
}

/**
 * With `autoResendUnfulfilledCommands` off, ioredis (5.11) drops the commands that were awaiting
 * an answer when the connection closed without failing them: each would wait for the command
 * timeout (5 s by default) although its answer can never come. They fail as soon as ioredis
 * starts reconnecting instead (a 503 at once). Reads ioredis' `prevCommandQueue`, where it keeps
 * them; should a later version not have it, the command timeout still fails them.
 */
function failCommandsLostWithConnection(client: Redis): void {
  client.on('reconnecting', () => {
    const lost = (client as unknown as { prevCommandQueue?: { length: number; shift(): { command?: { reject?: (error: Error) => void } } } | null }).prevCommandQueue;
    if (!lost || typeof lost.shift !== 'function') return;
    while (lost.length > 0) lost.shift().command?.reject?.(new Error('the connection to Redis was lost before it answered'));
  });
}

/**
 * ioredis reports a failed `SELECT` (a database number past the server's `databases`) only as an
 * `error` event and carries on in database 0, where the commands it had queued then run. So a
 * store given a database checks, before its first command on each connection (a reconnect may
 * reach a server configured otherwise), which database it is in. Commands in flight when a
 * connection drops are not re-sent on the next one, which might be in database 0: they fail.
 * Costs one `CLIENT INFO` per connection, nothing per call afterwards.
 */
function withDatabaseCheck(store: Store, client: Redis, db: number): Store {
  (client.options as { autoResendUnfulfilledCommands?: boolean }).autoResendUnfulfilledCommands = false;
  let selectFailure = '';
  let checked: Promise<void> | null = null;
  let verified = false;
  client.on('error', (error: unknown) => {
    if ((error as { command?: { name?: unknown } } | null)?.command?.name === 'select') {
      selectFailure = errorMessage(error);
      verified = false;
      checked = null;
    }
  });
  client.on('close', () => {
    verified = false;
    checked = null;
  });
  const check = async (): Promise<void> => {
    const info = String(await client.call('CLIENT', 'INFO'));
    const current = /(?:^|\s)db=(\d+)/.exec(info)?.[1];
    if (current !== String(db)) {
      throw new Error(`could not select database ${db}${selectFailure ? ` (${selectFailure})` : ''}; the connection is in database ${current ?? '?'}`);
    }
    verified = true;
  };
  const ensure = (): Promise<void> => {
    checked ??= check().catch((error: unknown) => {
      checked = null; // a connection failure is retried on the next call
      throw error;
    });
    return checked;
  };
  const gated = { ...store };
  for (const key of Object.keys(store) as (keyof Store)[]) {
    const method = store[key];
    if (key === 'close' || typeof method !== 'function') continue;
    (gated as Record<string, unknown>)[key] = async (...args: unknown[]) => {
      if (!verified) await ensure();
      return (method as (...a: unknown[]) => unknown).apply(store, args);
    };
  }
  return gated;
}
