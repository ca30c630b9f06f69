/**
 * Stateless sessions: the whole session lives in the cookie, sealed with AES-256-GCM under a key
 * ring (the newest secret seals, all open; a cookie opened with an old key is re-issued under the
 * newest). Expiry is inside the sealed payload and checked on the server clock. Optional
 * `revocations` (any server store) holds a per-user "not valid before" watermark so that logout
 * or `killSessionsByUser` can void cookies that were copied before.
 * @module coatcheck/stores/cookie
 * @example
 * ```ts
 * import { createSessions } from 'coatcheck';
 * import { cookieStore } from 'coatcheck/stores/cookie';
 * const sessions = createSessions({
 *   store: cookieStore({ secrets: [process.env.SESSION_SECRET!] }),
 * });
 * ```
 */
import { createHash } from 'node:crypto';
import { createKeyRing, isKeyRing, type KeyRing, type KeyRingEntry } from '../crypto/keyring.js';
import { seal, unseal } from '../crypto/seal.js';
import { ConfigError, StoreConflictError } from '../errors.js';
import { parseJsonObject } from '../core/json.js';
import { checkFactoryOptions } from '../core/known-options.js';
import { MAX_DURATION_SECONDS } from '../core/options.js';
import type { JsonValue } from '../types.js';
import type { ClientStore, SessionRecord, Store } from './types.js';

const PURPOSE = 'coatcheck/cookie-store/v1';
/**
 * How long a watermark is kept: the longest session lifetime coatcheck allows (100 years). It
 * voids the cookies created at or before its time, and each of those dies at the latest its
 * `absoluteTimeout` after its creation, which is at most this long: so the watermark outlives
 * every cookie it revokes, whatever timeout the engine uses (a store is not told it). The cost
 * is one small record per revoked user (each raise replaces the last), kept that long.
 */
const WATERMARK_TTL = MAX_DURATION_SECONDS * 1000;

export interface CookieStoreOptions {
  /** Secrets (each ≥ 32 bytes), newest first, or a key ring from `coatcheck/crypto`. */
  secrets: readonly KeyRingEntry[] | KeyRing;
  /** A server store for per-user "not valid before" watermarks (memory, Redis, SQL...). */
  revocations?: Store | undefined;
  /** With `revocations`: `logout()` (and `flush()` / `destroy()` / `reset()` of a signed-in session) voids all of the user's sessions. Default true. */
  revokeOnLogout?: boolean | undefined;
}

/** The compact payload sealed into the cookie. */
interface Payload {
  i: string;
  u: string | null;
  d: Record<string, JsonValue>;
  m: Record<string, JsonValue>;
  c: number;
  l: number;
  e: number;
  p: string | null;
  a: string | null;
}

function watermarkId(userId: string): string {
  return createHash('sha256').update('coatcheck-watermark\0').update(userId).digest('base64url');
}

/**
 * A watermark is the highest of its marks: one meta key per raise (`nvb:<ms>` → ms), since a
 * store merges writes per key and never compares values. Two raises racing both land, and the
 * higher wins whatever their order; a raise deletes only marks below its own, in the same write.
 * (`notValidBefore` is the single key of records written before marks.)
 */
const MARK_PREFIX = 'nvb:';
const LEGACY_KEY = 'notValidBefore';

/** The marks of a watermark record, key → time. */
function marksOf(meta: Record<string, JsonValue>): Map<string, number> {
  const marks = new Map<string, number>();
  for (const key of Object.keys(meta)) {
    const at = meta[key];
    if ((key === LEGACY_KEY || key.startsWith(MARK_PREFIX)) && typeof at === 'number' && Number.isFinite(at)) marks.set(key, at);
  }
  return marks;
}

function highest(marks: ReadonlyMap<string, number>): number | null {
  let top: number | null = null;
  for (const at of marks.values()) if (top === null || at > top) top = at;
  return top;
}

const isNullableString = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

const COOKIE_STORE_OPTIONS = Object.keys({ secrets: true, revocations: true, revokeOnLogout: true } satisfies Record<keyof CookieStoreOptions, true>);

const COOKIE_ATTRIBUTES = 'cookie attributes are createSessions options: createSessions({ store, cookie: { … } })';

/** iron-session's, cookie-session's and express-session's names for what is configured elsewhere here. */
const COOKIE_STORE_HINTS: Readonly<Record<string, string>> = {
  password: 'use secrets (each at least 32 bytes, newest first)',
  secret: 'use secrets: [secret] (each at least 32 bytes, newest first)',
  keys: 'use secrets (each at least 32 bytes, newest first)',
  maxAge: 'session lifetimes are createSessions options (idleTimeout, absoluteTimeout, in seconds); cookie.persistent gives the cookie a Max-Age',
  ttl: 'session lifetimes are createSessions options (idleTimeout, absoluteTimeout, in seconds); cookie.persistent gives the cookie a Max-Age',
  name: COOKIE_ATTRIBUTES,
  cookieName: COOKIE_ATTRIBUTES,
  cookie: COOKIE_ATTRIBUTES,
  cookieOptions: COOKIE_ATTRIBUTES,
  secure: COOKIE_ATTRIBUTES,
  sameSite: COOKIE_ATTRIBUTES,
  httpOnly: COOKIE_ATTRIBUTES,
  domain: COOKIE_ATTRIBUTES,
  path: COOKIE_ATTRIBUTES,
};

export function cookieStore(options: CookieStoreOptions): ClientStore {
  checkFactoryOptions('cookieStore', options, COOKIE_STORE_OPTIONS, {
    required: true,
    usage: 'cookieStore({ secrets: [secret] }), each secret at least 32 bytes',
    hints: COOKIE_STORE_HINTS,
  });
  const ring = isKeyRing(options.secrets) ? options.secrets : createKeyRing(options.secrets as readonly KeyRingEntry[]);
  const revocations = options.revocations;
  if (revocations !== undefined && typeof revocations.get !== 'function') throw new ConfigError('cookieStore: revocations must be a Store');

  const store: ClientStore = {
    kind: 'client',
    name: 'cookie',
    revokeOnLogout: revocations !== undefined && (options.revokeOnLogout ?? true),
    seal(record, context) {
      const payload: Payload = {
        i: record.id,
        u: record.userId,
        d: record.data,
        m: record.meta,
        c: record.createdAt,
        l: record.lastSeenAt,
        e: record.expiresAt,
        p: record.ip,
        a: record.userAgent,
      };
      return seal(ring, PURPOSE, JSON.stringify(payload), context);
    },
    unseal(value, context) {
      const opened = unseal(ring, PURPOSE, value, context);
      if (!opened) return null;
      const payload = parseJsonObject(opened.plaintext.toString('utf8')) as Partial<Payload> | null;
      if (!payload) return null;
      const { i, u, d, m, c, l, e, p, a } = payload;
      if (typeof i !== 'string' || !isNullableString(u) || !isNullableString(p) || !isNullableString(a)) return null;
      if (!isTime(c) || !isTime(l) || !isTime(e)) return null;
      if (!d || typeof d !== 'object' || Array.isArray(d) || !m || typeof m !== 'object' || Array.isArray(m)) return null;
      const record: SessionRecord = { id: i, userId: u, data: d, meta: m, createdAt: c, lastSeenAt: l, expiresAt: e, ip: p, userAgent: a };
      return { record, stale: opened.stale };
    },
    async close() {
      // The revocation store belongs to the app; nothing of ours to release.
    },
  };
  if (revocations) {
    store.notValidBefore = async (userId) => {
      const record = await revocations.get(watermarkId(userId));
      return record ? highest(marksOf(record.meta)) : null;
    };
    store.revokeUser = async (userId, at) => {
      const id = watermarkId(userId);
      const current = await revocations.get(id);
      // Expired by the time of this raise (`at` is the engine's now): as good as absent.
      const marks = current && current.expiresAt > at ? marksOf(current.meta) : new Map<string, number>();
      const top = highest(marks);
      // Only ever raised: an older `at` (another server's clock behind, a retry) changes nothing.
      if (top !== null && top >= at) return;
      const mark = { [`${MARK_PREFIX}${at}`]: at };
      const times = { lastSeenAt: at, expiresAt: at + WATERMARK_TTL };
      if (await revocations.update(id, { meta: { set: mark, unset: [...marks.keys()] }, ...times })) return;
      for (let attempt = 0; ; attempt++) {
        try {
          await revocations.create({ id, userId: null, data: {}, meta: mark, createdAt: at, ...times, ip: null, userAgent: null });
          return;
        } catch (error) {
          if (!(error instanceof StoreConflictError) || attempt > 0) throw error;
        }
        // Created concurrently: add this mark beside the other's; the higher counts.
        if (await revocations.update(id, { meta: { set: mark }, ...times })) return;
        // Or an expired record a store keeps until a sweep (which may never come: the engine
        // sweeps no revocation store). Updates refuse it, so replace it.
        await revocations.destroy(id);
      }
    };
  }
  return store;
}
