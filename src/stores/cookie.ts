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
import type { JsonValue } from '../types.js';
import type { ClientStore, SessionRecord, Store } from './types.js';

const PURPOSE = 'coatcheck/cookie-store/v1';
/** How long a watermark is kept: longer than any absolute timeout people configure. */
const WATERMARK_TTL = 400 * 86_400_000;

export interface CookieStoreOptions {
  /** Secrets (each ≥ 32 bytes), newest first, or a key ring from `coatcheck/crypto`. */
  secrets: readonly KeyRingEntry[] | KeyRing;
  /** A server store for per-user "not valid before" watermarks (memory, Redis, SQL...). */
  revocations?: Store;
  /** With `revocations`: `logout()` voids all of the user's sessions. Default true. */
  revokeOnLogout?: boolean;
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

const isNullableString = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export function cookieStore(options: CookieStoreOptions): ClientStore {
  if (!options || typeof options !== 'object') throw new ConfigError('cookieStore needs { secrets }');
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
      const at = record?.meta.notValidBefore;
      return typeof at === 'number' ? at : null;
    };
    store.revokeUser = async (userId, at) => {
      const id = watermarkId(userId);
      const times = { lastSeenAt: at, expiresAt: at + WATERMARK_TTL };
      const meta = { notValidBefore: at };
      if (await revocations.update(id, { meta: { set: meta }, ...times })) return;
      try {
        await revocations.create({ id, userId: null, data: {}, meta, createdAt: at, ...times, ip: null, userAgent: null });
      } catch (error) {
        if (!(error instanceof StoreConflictError)) throw error;
        await revocations.update(id, { meta: { set: meta }, ...times });
      }
    };
  }
  return store;
}
