/**
 * Records a session leaves behind when its id changes (rotation, cycleId), and ending a session
 * together with those records. A rotated record keeps, for its grace window, the new token sealed
 * under the old one (`moved`, see rotation.ts) and the new record's handle (`movedTo`); a cycled
 * one keeps `moved: 'cycled'`, which no cookie can follow. Only the handle, never a token, is
 * readable in a store dump.
 */
import type { Store } from '../stores/types.js';
import { CorruptRecordError } from '../errors.js';
import { isReservedUser } from './reserved-users.js';
import { openForward } from './rotation.js';
import { hashToken, isWellFormedToken } from './token.js';

export const META_MOVED = 'moved';
/**
 * Beside `moved`: the handle (hashed id, no secret) of the record this one gave way to, so a
 * logout, a kill by handle or a binding mismatch can end the session it became without a token
 * (a handle listed before a rotation still names the device).
 */
export const META_MOVED_TO = 'movedTo';
/** `moved` on a record given up by cycleId or being ended: not a sealed token, so it forwards nowhere. */
export const CYCLED_MARK = 'cycled';
/** How long such a record may outlive its commit if deleting it fails. */
export const CYCLED_HOLD_MS = 60_000;
export const MAX_FORWARD_HOPS = 3;

/** What ending a chain needs from the engine (SessionEngine has it). */
export interface ChainEnder {
  call<R>(operation: string, run: (store: Store) => R | Promise<R>): Promise<R>;
  readonly options: { readonly clock: { now(): number } };
}

/**
 * Ends the record `id` and, when a parallel request has rotated or cycled it, the records it gave
 * way to (a few hops at most). Each record is claimed first, with the guarded write a rotation
 * makes, so a rotation racing with this either claimed it before (its forwarder is followed here)
 * or fails its own claim after (and gives up): no signed-in copy outlives a logout. `token` opens
 * forwarders written before `movedTo` existed; `stopAt` is a record never followed into (the
 * request's own, kept or ended on its own). `ended` is told of the session deleted (never of a
 * forwarder or a cycled record); resolves 1 if one was, else 0 (a record already gone or past its
 * expiry ends nothing and leads nowhere).
 */
export async function endChain(
  engine: ChainEnder,
  id: string,
  token: string | null,
  stopAt: string | null,
  ended: (id: string) => void,
): Promise<number> {
  let hopId = id;
  let hopToken = token;
  for (let hop = 0; hop <= MAX_FORWARD_HOPS; hop++) {
    const current = hopId;
    const now = engine.options.clock.now();
    // The user is left as it is: a claim that changed it would move the record between user
    // indexes (Redis writes one more key, shared by every session end) only to delete it.
    const claimed = await engine.call('update', (store) =>
      store.update(current, {
        meta: { set: { [META_MOVED]: CYCLED_MARK } },
        guard: { absent: [META_MOVED] },
        lastSeenAt: now,
        // Deleted right after this; should that fail, it leads nowhere and expires soon.
        expiresAt: now + CYCLED_HOLD_MS,
      }),
    );
    if (claimed) {
      // A session (a forwarder or a mark cannot be claimed): ended here, and it led nowhere.
      await engine.call('destroy', (store) => store.destroy(current));
      ended(current);
      return 1;
    }
    const record = await readOrNull(engine, current);
    if (record === null) return 0;
    // Past its expiry (left for the sweep): deleted, but it ended nothing and leads nowhere.
    const live = record.expiresAt > now;
    await engine.call('destroy', (store) => store.destroy(current));
    if (!live) return 0;
    if (record.meta[META_MOVED] === undefined) {
      // A session the store would not let the claim write (its own notion of expiry): ended.
      ended(current);
      return 1;
    }
    // A forwarder or a cycled record: no session of its own (a cycled one was reported ended when
    // it was cycled), so nothing is reported for it; the session it leads to is what ends.
    const movedTo = record.meta[META_MOVED_TO];
    const nextToken = hopToken === null ? null : openForward(record.meta[META_MOVED], hopToken);
    hopToken = nextToken !== null && isWellFormedToken(nextToken) ? nextToken : null;
    const nextId = typeof movedTo === 'string' ? movedTo : hopToken === null ? null : hashToken(hopToken);
    if (nextId === null || nextId === stopAt) return 0;
    hopId = nextId;
  }
  return 0;
}

/**
 * The user a record belongs to, following forwarders (whose own user is the reserved
 * `__moved__`) to the session they lead to; null for a guest or when the chain ends first.
 */
export async function ownerOf(engine: ChainEnder, record: { userId: string | null; meta: Record<string, unknown> }): Promise<string | null> {
  let current: { userId: string | null; meta: Record<string, unknown> } | null = record;
  for (let hop = 0; current !== null && hop <= MAX_FORWARD_HOPS; hop++) {
    if (current.userId === null || !isReservedUser(current.userId)) return current.userId;
    const movedTo = current.meta[META_MOVED_TO];
    if (typeof movedTo !== 'string') return null;
    current = await readOrNull(engine, movedTo);
  }
  return null;
}

/**
 * `handles` and the records each one's rotated or cycled record gave way to (through `movedTo`, a
 * few hops at most): the sessions those handles now name.
 */
export async function successorsOf(engine: ChainEnder, handles: readonly string[]): Promise<string[]> {
  const all = new Set(handles);
  for (const handle of handles) {
    let id = handle;
    for (let hop = 0; hop < MAX_FORWARD_HOPS; hop++) {
      const record = await readOrNull(engine, id);
      const movedTo = record === null || record.meta[META_MOVED] === undefined ? undefined : record.meta[META_MOVED_TO];
      if (typeof movedTo !== 'string' || all.has(movedTo)) break;
      all.add(movedTo);
      id = movedTo;
    }
  }
  return [...all];
}

async function readOrNull(engine: ChainEnder, id: string) {
  try {
    return await engine.call('get', (store) => store.get(id));
  } catch (error) {
    if (error instanceof CorruptRecordError) return null;
    throw error;
  }
}
