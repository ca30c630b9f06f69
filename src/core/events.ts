/**
 * Typed lifecycle events (ViUR's `on_delete`, appengine-utilities' session events, koa-session's
 * `session:*`). Payloads carry the session's handle (the hashed id), never the cookie token.
 */

export type DestroyReason =
  | 'reset'
  | 'login'
  | 'logout'
  | 'flush'
  | 'emptied'
  | 'cycled'
  | 'rotated'
  | 'revoked'
  | 'expired'
  | 'binding'
  | 'httpsUpgrade'
  | 'evicted';

export interface SessionEventMap {
  /** An existing session was loaded from the store. */
  loaded: { handle: string; userId: string | null };
  /** A session's changes were written (`touch`: only its idle timer). */
  saved: { handle: string; userId: string | null; touch: boolean };
  /** A new session record was written. */
  created: { handle: string; userId: string | null };
  /** The session's id was rotated (data kept); the old id forwards to the new one for a grace window. */
  rotated: { from: string; to: string; userId: string | null };
  /** A session record was deleted. */
  destroyed: { handle: string; userId: string | null; reason: DestroyReason };
  /**
   * Sessions were ended in bulk (`killSessionsByUser`, `revokeUser`): one event per call, as the
   * store deletes them without naming each. `deleted` is null where the count is unknown (the
   * cookie store: its sessions live in browsers and are void from now on).
   */
  killed: { scope: 'user' | 'guests' | 'everyone'; userId: string | null; deleted: number | null };
  /** A session was found past its idle, absolute or fixed expiry and ended. */
  expired: { handle: string; userId: string | null; reason: 'idle' | 'absolute' | 'fixed' };
  /** The request carried a cookie that leads to no session (never adopted). */
  invalidCookie: { reason: 'malformed' | 'ambiguous' | 'unknown' | 'corrupt' | 'revoked' };
  /** The client's IP or User-Agent no longer matches the session's (binding on): it was ended. */
  bindingMismatch: { handle: string; userId: string | null; field: 'ip' | 'userAgent' };
  /** A store call failed; the request fails closed. */
  storeError: { operation: string; error: unknown };
}

export type SessionEventName = keyof SessionEventMap;
export type SessionListener<K extends SessionEventName> = (event: SessionEventMap[K]) => void;

/** A tiny synchronous emitter; a throwing listener never breaks a request. */
export class SessionEvents {
  readonly #listeners = new Map<SessionEventName, Set<(event: never) => void>>();
  readonly #count: ((name: SessionEventName) => void) | undefined;

  /** `count` sees every emitted event (the metrics counters). */
  constructor(count?: (name: SessionEventName) => void) {
    this.#count = count;
  }

  on<K extends SessionEventName>(name: K, listener: SessionListener<K>): () => void {
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, (set = new Set()));
    set.add(listener as (event: never) => void);
    return () => this.off(name, listener);
  }

  off<K extends SessionEventName>(name: K, listener: SessionListener<K>): void {
    this.#listeners.get(name)?.delete(listener as (event: never) => void);
  }

  /** True when someone listens: lets hot paths skip building payloads. */
  has(name: SessionEventName): boolean {
    return (this.#listeners.get(name)?.size ?? 0) > 0;
  }

  emit<K extends SessionEventName>(name: K, event: SessionEventMap[K]): void {
    this.#count?.(name);
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as SessionListener<K>)(event);
      } catch {
        // A listener's bug must not turn into a failed request.
      }
    }
  }
}
