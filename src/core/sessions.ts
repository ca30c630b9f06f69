/**
 * `createSessions(options)`: the one object an app configures. It opens per-request sessions for
 * the adapters and carries the operations that span sessions (kill by user, list devices, sweep).
 */
import { ConfigError, CorruptRecordError, StoreError, StoreTimeoutError } from '../errors.js';
import { type AnyStore, type ClientStore, isClientStore, type SessionSummary, type Store, type SweepResult } from '../stores/types.js';
import type { RegisteredData, SessionData } from '../types.js';
import { SessionEvents } from './events.js';
import { SessionMetrics } from './metrics.js';
import { resolveOptions, type ResolvedOptions, type SessionsOptions } from './options.js';
import { type RequestInfo, Session, type SessionEngine } from './session.js';
import { StoreCaller } from './store-call.js';

/** ViUR's name for "sessions without a user" in `killSessionsByUser`. */
export { GUEST_USER } from './reserved-users.js';
import { GUEST_USER, isReservedUser } from './reserved-users.js';
import { endChain, ownerOf, successorsOf } from './forwarding.js';

/** Records examined per store call when a store ends every (guest) session in steps. */
const MASS_DESTROY_STEP = 2000;

export interface ClearExpiredOptions {
  /** Records deleted per store call. Default 1000. */
  batchSize?: number | undefined;
  /** Stop after this many batches (resume later with the returned cursor). Default: until done. */
  maxBatches?: number | undefined;
  /** Continue a previous run. */
  cursor?: string | null | undefined;
  /** Called after each batch (progress bars). */
  onBatch?: ((progress: { deleted: number; batches: number }) => void) | undefined;
}

/** One of a user's sessions as listed for "your devices". */
export interface DeviceSummary extends SessionSummary {
  /** True for the session whose handle was passed as `current`. */
  current: boolean;
}

export interface Sessions<T extends SessionData = RegisteredData> {
  readonly options: ResolvedOptions;
  readonly store: AnyStore;
  /** Lifecycle events: created, loaded, saved, rotated, destroyed, expired, killed, invalidCookie, bindingMismatch, storeError. */
  readonly events: SessionEvents;
  /** Event counters and store-latency histograms (snapshot, Prometheus text, OpenTelemetry hook). */
  readonly metrics: SessionMetrics;
  /**
   * The per-request session for an incoming request (adapters call this; costs no I/O). Pass the
   * request facts, or a function returning them so they are only read if the session is used.
   */
  open(request: RequestInfo | (() => RequestInfo), onActivate?: () => void): Session<T>;
  /**
   * ViUR's `killSessionByUser`: a user id ends that user's sessions, `'__guest__'` ends every
   * session without a user, no argument at all ends every session (an explicit `undefined`, an
   * unset variable say, is refused: it would sign everyone out). Resolves to the number of records
   * deleted (for everyone: rotation forwarders and cycled records still in their minute
   * included). Emits one `killed` event (not a `destroyed` per session: the store deletes them in
   * bulk). A user's sessions are deleted in two passes, so a session a parallel rotation creates
   * while a store reads and deletes apart (Redis) is not missed. Another reserved id is refused.
   * On the cookie store (with `revocations`) it resolves 0, as no record exists to delete: every
   * cookie of that user is void all the same (the `killed` event says `deleted: null`).
   */
  killSessionsByUser(): Promise<number>;
  killSessionsByUser(user: string): Promise<number>;
  /**
   * A user's live sessions ("your devices"), oldest first, without data: handles, never tokens.
   * Pass the current session's handle to have it marked `current: true`. A session rotated within
   * its grace window is listed once (its forwarder belongs to `FORWARDER_USER`).
   */
  listByUser(userId: string, options?: { current?: string | null | undefined }): Promise<DeviceSummary[]>;
  /**
   * Ends one session by its handle (a read, to name its user in the `destroyed` event, then a
   * guarded claim and the delete). A handle listed before the session's id rotated or was cycled
   * (while its forwarder lives) ends the session it became: the forwarder is deleted without an
   * event, and the one `destroyed` event names the new record's handle. A handle that matches no
   * live session ends nothing and emits nothing. Resolves true when a session was ended.
   */
  revoke(handle: string): Promise<boolean>;
  /**
   * Ends all of a user's sessions except the handles listed ("sign out other devices"); emits
   * `killed`. A `null` in `except` (the `handle` of a session not stored yet, as in the request
   * that logs in) matches nothing; a listed handle whose session has rotated or been cycled spares
   * the session it became (one that rotates while this call runs is not spared). A guest (`null`)
   * or reserved user id is refused: guests have no "other devices"
   * (`killSessionsByUser('__guest__')` ends them all).
   */
  revokeUser(userId: string, options?: { except?: readonly (string | null)[] | undefined }): Promise<number>;
  /**
   * Deletes expired records in bounded batches, yielding to the event loop between batches.
   * Stores with native TTL make it a cheap no-op.
   */
  clearExpired(options?: ClearExpiredOptions): Promise<{ deleted: number; batches: number; cursor: string | null }>;
  /**
   * Refuses new store calls at once (a `StoreError`, 503), lets the calls in flight finish (each
   * is bounded by `storeTimeout`, and so is the wait), then closes the store (also bounded: a
   * store that does not close in time rejects with `StoreTimeoutError`). Stop the HTTP server and
   * let its requests finish first: a commit of several store calls (`cycleId()`, a rotation) that
   * is under way fails at its next call. Calling it again returns the same promise; after a
   * timeout it waits for the store's close again, after a failure it asks the store again.
   */
  close(): Promise<void>;
}

/** Minimum time between two warnings of an unheard store failure: an outage warns once a minute. */
const STORE_WARNING_INTERVAL_MS = 60_000;

/**
 * With nobody listening to `storeError`, a store failure would only show as 503 answers (a typo
 * in a database URL, a server down): said on stderr, at most once a minute per `createSessions()`.
 */
function storeErrorWarner(): (store: string, operation: string, error: unknown) => void {
  let lastAt = -Infinity;
  return (store, operation, error) => {
    const now = performance.now();
    if (now - lastAt < STORE_WARNING_INTERVAL_MS) return;
    lastAt = now;
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : null;
    const detail = error instanceof Error ? error.message : String(error);
    process.emitWarning(
      `coatcheck: the session store ${store} failed during ${operation} (${detail}); requests that need it are answered 503. ` +
        "Listen with sessions.events.on('storeError', …) to see every failure; this warning repeats at most once a minute.",
      { code: 'COATCHECK_STORE_ERROR', detail: cause?.stack },
    );
  };
}

export function createSessions<T extends SessionData = RegisteredData>(options: SessionsOptions): Sessions<T> {
  const resolved = resolveOptions(options);
  const metrics = new SessionMetrics();
  const events = new SessionEvents((name) => metrics.countEvent(name));
  const anyStore = resolved.store;
  const client: ClientStore | null = isClientStore(anyStore) ? anyStore : null;
  // For a client store, server calls never happen: only `callClient` is used.
  const store = anyStore as Store;
  const warnUnheardStoreError = storeErrorWarner();
  const caller = new StoreCaller(anyStore, resolved.storeTimeout, (operation, durationMs, error) => {
    metrics.observe(anyStore.name, operation, durationMs, error === undefined);
    if (error === undefined) return;
    // Outages only: a corrupt record or an id collision is handled by the engine, not a 503.
    if (error instanceof StoreError && !events.has('storeError')) warnUnheardStoreError(anyStore.name, operation, error);
    events.emit('storeError', { operation, error });
  });
  /** Set by close(): no more background sweeps. */
  let closing: Promise<void> | null = null;
  let storeClosing: Promise<void> | null = null;
  // Probabilistic cleanup: one bounded batch at a time, in the background, never failing a request.
  let sweeping = false;
  const maybeCleanup = (): void => {
    if (sweeping || client || closing !== null || resolved.cleanupProbability === 0 || Math.random() >= resolved.cleanupProbability) return;
    sweeping = true;
    setImmediate(() => {
      // close() may have begun since this was scheduled: a sweep now would only fail, and its
      // storeError would read as an outage.
      if (closing !== null) {
        sweeping = false;
        return;
      }
      manager
        .clearExpired({ maxBatches: 1 })
        .catch(() => undefined) // already reported as a storeError event
        .finally(() => {
          sweeping = false;
        });
    });
  };
  // Cookie store: the newest revocation watermark this process set (see noteRevocation).
  let revokedUpTo = -Infinity;
  const engine: SessionEngine = {
    options: resolved,
    events,
    client,
    call: (operation, run) => caller.call(operation, () => run(store)),
    callNow: (operation, run) => caller.callNow(operation, () => run(store)),
    callClient: (operation, run) => caller.call(operation, () => run(client as ClientStore)),
    maybeCleanup,
    noteRevocation(at) {
      if (at > revokedUpTo) revokedUpTo = at;
    },
    creationTime: (now) => (now > revokedUpTo ? now : revokedUpTo + 1),
  };
  /** Operations that need server-side records fail loudly on the cookie store. */
  const serverOnly = (what: string): void => {
    if (client) throw new ConfigError(`${what} is not possible with the cookie store: stateless sessions live only in browsers`);
  };

  /** Every (guest) session, one bounded store call per step, so no single call outlasts storeTimeout. */
  const destroyInSteps = async (guestsOnly: boolean): Promise<number> => {
    let cursor: string | null = null;
    let deleted = 0;
    do {
      const step: SweepResult = await engine.call('destroyStep', (s) => (s.destroyStep as NonNullable<Store['destroyStep']>)({ guestsOnly, limit: MASS_DESTROY_STEP, cursor }));
      deleted += step.deleted;
      cursor = step.cursor;
      if (cursor !== null) await new Promise((resolve) => setImmediate(resolve));
    } while (cursor !== null);
    return deleted;
  };

  /** Waits for `work`, at most storeTimeout; then resolves, or rejects with `timedOut()` if given. */
  const withinStoreTimeout = async (work: Promise<void>, timedOut?: () => Error): Promise<void> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => (timedOut ? reject(timedOut()) : resolve()), resolved.storeTimeout);
    });
    try {
      await Promise.race([work, late]);
    } finally {
      clearTimeout(timer);
    }
  };
  /**
   * A user's sessions, deleted twice. A store that reads its user index and deletes in two round
   * trips (Redis) can miss a session a parallel rotation or cycleId creates between the two: the
   * old record, claimed meanwhile, is no longer the user's. The second pass finds the new one.
   */
  async function destroyUser(userId: string, except: readonly string[]): Promise<number> {
    const first = await engine.call('destroyByUser', (s) => s.destroyByUser(userId, except));
    return first + (await engine.call('destroyByUser', (s) => s.destroyByUser(userId, except)));
  }

  const manager: Sessions<T> = {
    options: resolved,
    store: anyStore,
    events,
    metrics,
    open(request, onActivate) {
      return new Session<T>(engine, request, onActivate);
    },
    async killSessionsByUser(...args: [user?: string]) {
      // Only a call without an argument ends every session: an argument that happens to be
      // undefined (a missing form field or variable) is a mistake one step from signing everyone out.
      if (args.length > 0 && args[0] === undefined) {
        throw new ConfigError('killSessionsByUser(undefined): pass a user id, or call killSessionsByUser() with no argument to end every session');
      }
      const user = args[0];
      if (client) {
        if (user === undefined || user === GUEST_USER || !client.revokeUser) {
          serverOnly(user === undefined ? 'killing every session' : user === GUEST_USER ? 'killing guest sessions' : 'killing a user\'s sessions without `revocations`');
        }
        if (typeof user !== 'string' || user.length === 0) throw new ConfigError('killSessionsByUser takes a user id');
        const at = resolved.clock.now();
        await engine.callClient('revokeUser', (c) => (c.revokeUser as NonNullable<ClientStore['revokeUser']>)(user, at));
        engine.noteRevocation(at);
        events.emit('killed', { scope: 'user', userId: user, deleted: null });
        return 0; // unknown: the sessions live in browsers; all of them are void from now on
      }
      if (user !== undefined && (typeof user !== 'string' || user.length === 0 || (user !== GUEST_USER && isReservedUser(user)))) {
        throw new ConfigError(`killSessionsByUser takes a user id, "${GUEST_USER}" or nothing; got ${JSON.stringify(user)}`);
      }
      let deleted: number;
      if ((user === undefined || user === GUEST_USER) && store.destroyStep) deleted = await destroyInSteps(user === GUEST_USER);
      else if (user === undefined) deleted = await engine.call('destroyAll', (s) => s.destroyAll());
      else if (user === GUEST_USER) deleted = await engine.call('destroyByUser', (s) => s.destroyByUser(null));
      else deleted = await destroyUser(user, []);
      const scope = user === undefined ? 'everyone' : user === GUEST_USER ? 'guests' : 'user';
      events.emit('killed', { scope, userId: scope === 'user' ? (user as string) : null, deleted });
      return deleted;
    },
    async listByUser(userId, opts = {}) {
      serverOnly('listing a user\'s sessions');
      const now = resolved.clock.now();
      const list = await engine.call('listByUser', (s) => s.listByUser(userId));
      // The absolute timeout as configured now binds every session: one lowered since a session's
      // deadline was stored does not leave it listed. (A lowered idleTimeout cannot be judged here:
      // a per-session setExpiry() may outlast it, and the summary carries no meta.)
      const absolute = resolved.absoluteTimeout * 1000;
      return list
        .filter((item) => item.expiresAt > now && item.createdAt + absolute > now)
        .map((item) => ({ ...item, current: item.id === opts.current }));
    },
    async revoke(handle) {
      serverOnly('revoking one session');
      // Read first: the event names the session's user, and a handle that matched nothing ends nothing.
      if (typeof handle !== 'string' || handle.length === 0) return false; // matches no session
      let userId: string | null;
      try {
        const record = await engine.call('get', (s) => s.get(handle));
        // Past its expiry (a forwarder after its grace window, a session the sweep has not reached):
        // no session to end, and where it led is not followed.
        if (record === null || record.expiresAt <= resolved.clock.now()) return false;
        // A handle listed before the device's session rotated: name (and end) the session it became.
        userId = await ownerOf(engine, record);
      } catch (error) {
        // Unreadable bytes: still a record to delete, its user unknown.
        if (!(error instanceof CorruptRecordError)) throw error;
        userId = null;
      }
      return (await endChain(engine, handle, null, null, (id) => events.emit('destroyed', { handle: id, userId, reason: 'revoked' }))) > 0;
    },
    async revokeUser(userId, opts = {}) {
      serverOnly('revoking a user\'s other sessions');
      // null would reach the stores as "every guest": a guest's "sign out other devices" must not end everyone's carts.
      if (typeof userId !== 'string' || userId.length === 0 || isReservedUser(userId)) {
        throw new ConfigError(
          `revokeUser takes a signed-in user's id; got ${userId === null ? 'null (a guest session)' : JSON.stringify(userId)}. To end guest sessions use killSessionsByUser('${GUEST_USER}')`,
        );
      }
      if (opts.except !== undefined && !Array.isArray(opts.except)) throw new ConfigError('revokeUser: except must be an array of session handles');
      // session.handle is null until the session is stored (a login in this request): it matches
      // no stored record, so it is left out; the SQL stores would read NOT IN (NULL) as "keep all".
      const listed = (opts.except ?? []).filter((handle): handle is string => typeof handle === 'string' && handle.length > 0);
      // A handle listed before a parallel request rotated that session names the forwarder: the
      // session it became is spared too (the device asking must not sign itself out).
      const except = listed.length === 0 ? listed : await successorsOf(engine, listed);
      const deleted = await destroyUser(userId, except);
      events.emit('killed', { scope: 'user', userId, deleted });
      return deleted;
    },
    async clearExpired(opts = {}) {
      // Django: clearing expired sessions is a no-op where they expire by themselves.
      if (client) return { deleted: 0, batches: 0, cursor: null };
      const batchSize = opts.batchSize ?? 1000;
      if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new ConfigError(`clearExpired: batchSize must be a whole number >= 1; got ${String(batchSize)}`);
      if (opts.maxBatches !== undefined && !((Number.isInteger(opts.maxBatches) || opts.maxBatches === Infinity) && opts.maxBatches >= 1)) {
        throw new ConfigError('clearExpired: maxBatches must be a whole number >= 1, or Infinity for no limit');
      }
      const before = resolved.clock.now();
      let cursor = opts.cursor ?? null;
      let deleted = 0;
      let batches = 0;
      do {
        const result = await engine.call('deleteExpired', (s) => s.deleteExpired({ before, limit: batchSize, cursor }));
        deleted += result.deleted;
        cursor = result.cursor;
        batches++;
        opts.onBatch?.({ deleted, batches });
        // Yield between batches so a long sweep never starves request handling.
        if (cursor !== null) await new Promise((resolve) => setImmediate(resolve));
      } while (cursor !== null && (opts.maxBatches === undefined || batches < opts.maxBatches));
      return { deleted, batches, cursor };
    },
    close() {
      closing ??= (async () => {
        // New calls are refused at once (a 503 for requests still arriving), and the calls already
        // sent may finish: a store going away under them (a pool ended) would fail them all.
        caller.close();
        await withinStoreTimeout(caller.whenIdle());
        // Asked once: a store's close() called again may answer at once while the first still runs
        // (a pool already ending). A retry waits for that first one again.
        try {
          storeClosing ??= Promise.resolve(anyStore.close());
          await withinStoreTimeout(storeClosing, () => new StoreTimeoutError(anyStore.name, 'close', resolved.storeTimeout));
        } catch (error) {
          closing = null; // a later close() waits again
          if (!(error instanceof StoreTimeoutError)) storeClosing = null; // a failed close is asked again
          throw error;
        }
      })();
      return closing;
    },
  };
  return manager;
}
