/**
 * One request's view of one session: a dictionary of JSON values, loaded lazily (one store read),
 * saved only when something changed (one store write of the changed keys), with the seeds'
 * lifecycle: reset on login/logout keeping whitelisted fields, cycle id, flush, per-session expiry
 * and Django's test cookie.
 */
import { randomBytes } from 'node:crypto';
import { findCookie } from '../cookie/parse.js';
import { pathMatches } from '../cookie/path-match.js';
import {
  ConfigError,
  CookieTooLargeError,
  CorruptRecordError,
  HeadersSentError,
  InvalidValueError,
  MissingKeyError,
  NotLoadedError,
  SessionGoneError,
  ReauthenticationRequiredError,
  SessionTooLargeError,
  StoreConflictError,
  TooManySessionsError,
} from '../errors.js';
import { constantTimeEqual, randomToken } from '../crypto/compare.js';
import { applyKeyChanges, type Awaitable, type ClientStore, type EmptyDestroyResult, isPromiseLike, type KeyChanges, type SessionPatch, type SessionRecord, type SessionSummary, type Store } from '../stores/types.js';
import type { DataKey, JsonValue, RegisteredData, SessionData, Storable } from '../types.js';
import { FORWARDER_USER, isReservedUser } from './reserved-users.js';
import type { DestroyReason, SessionEvents } from './events.js';
import { assertJson, checkString, objectFromEntries, setOwn } from './json.js';
import { cookieNameFor, isSecureFor, type ResolvedOptions } from './options.js';
import { CYCLED_HOLD_MS, CYCLED_MARK, endChain, MAX_FORWARD_HOPS, META_MOVED, META_MOVED_TO } from './forwarding.js';
import { openForward, sealForward } from './rotation.js';
import { clearedOtherScopeCookies, clearedPlainHttpCookie, clearedSessionCookie, sessionCookie } from './session-cookie.js';
import { generateToken, hashToken, isWellFormedToken } from './token.js';

/** What an adapter knows about the incoming request. */
export interface RequestInfo {
  /** The raw `Cookie` header (null/undefined when absent). */
  cookieHeader: string | null | undefined;
  /** The request arrived over HTTPS (after proxy rules). */
  https: boolean;
  ip?: string | null;
  userAgent?: string | null;
  /**
   * The request target (`/path?query`). With a `cookie.path` other than `/`, a request outside it
   * gets no session, as a browser would not have sent the cookie there. Adapters pass it when
   * `cookie.path` is set; without it the rule is not applied.
   */
  path?: string | null | undefined;
}

/** What the adapter must add to the response. */
export interface CommitResult {
  /** `Set-Cookie` values to append (never replacing the app's own cookies). */
  setCookie: string[];
}

/** The engine services a session uses; built once by `createSessions`. */
export interface SessionEngine {
  readonly options: ResolvedOptions;
  readonly events: SessionEvents;
  /** Set when the store is stateless (`cookieStore`): records live in the cookie itself. */
  readonly client: ClientStore | null;
  call<R>(operation: string, run: (store: Store) => Awaitable<R>): Promise<R>;
  /** As `call`, but a store that answers synchronously is answered in the same tick (or throws). */
  callNow<R>(operation: string, run: (store: Store) => Awaitable<R>): Awaitable<R>;
  callClient<R>(operation: string, run: (client: ClientStore) => Promise<R>): Promise<R>;
  /** Sweeps a batch of expired sessions in the background on a fraction of requests. */
  maybeCleanup(): void;
  /**
   * Cookie store: this process revoked sessions created up to `at` (ms). Sessions it creates
   * afterwards get a later creation time, so a logout and login in the same millisecond do not
   * void the new session.
   */
  noteRevocation(at: number): void;
  /** The creation time for a session starting now (`now`, or just past the last revocation). */
  creationTime(now: number): number;
}

type Phase = 'idle' | 'loading' | 'ready' | 'failed' | 'committed';

/** Meta keys the engine keeps beside the app's data. */
const META_EXPIRY = 'expiry';
const META_TEST_COOKIE = 'testcookie';
/** Before 0.1.0's tenth pass: the whole queue as one array (still read, never written). */
const META_FLASH = 'flash';
/**
 * One key per flash message, `flash.<ms, 13 digits>.<seq, 6 digits>.<random>`: parallel requests add and
 * consume messages key by key, like any other change, so none is lost or shown again. Sorting the
 * keys gives the order they were queued in.
 */
const META_FLASH_ITEM = 'flash.';
const META_CSRF = 'csrf';
/** One-time CSRF tokens: `otk.<sha256(token)>` → { until, data }. */
const META_ONE_TIME = 'otk.';
/** The guard on every ordinary save: never write to a record another request rotated away. */
const SAVE_GUARD: NonNullable<SessionPatch['guard']> = Object.freeze({ absent: Object.freeze([META_MOVED]) as string[] });
const META_ROTATED_AT = 'rotatedAt';
/** When the signed-in user last re-authenticated (ms): markAuthenticated(). login() is the creation time. */
const META_AUTH_AT = 'authAt';
const META_REQUESTS = 'requests';
const DEFAULT_GRACE = 30;
/** How far this clock may run behind a record's last write before a touch resets its times (ms). */
const MAX_CLOCK_LAG_MS = 1000;
/** Queued flash messages kept per session; older ones are dropped. */
const MAX_FLASHES = 100;
/** A sealed cookie value (`v1.<keyId>.<base64url>`), before decryption. */
const SEALED_SHAPE = /^[A-Za-z0-9._-]{20,4096}$/;

/**
 * With `cookie.prefix: false` both schemes share the cookie's name, so a record born over plain
 * HTTP says so itself: over HTTPS it is upgraded as a `sid` found beside `__Host-sid` would be.
 */
const META_PLAIN_HTTP = 'plainHttp';

/** The engine's own bookkeeping (rotation, birth scheme): meta that is no reason to keep a session. */
const BOOKKEEPING_META: readonly string[] = Object.freeze([META_REQUESTS, META_ROTATED_AT, META_MOVED, META_MOVED_TO, META_PLAIN_HTTP]);

/**
 * A save that leaves the expiry choice alone keeps a later stored deadline: this request may have
 * loaded before a parallel `setExpiry()` lengthened it (SessionPatch.keepLater).
 */
function keepsExpiryChoice(meta: KeyChanges | null): boolean {
  return meta === null || !((meta.set !== undefined && Object.prototype.hasOwnProperty.call(meta.set, META_EXPIRY)) || meta.unset?.includes(META_EXPIRY));
}

const BOOKKEEPING = new Set(BOOKKEEPING_META);

/** Meta worth keeping a session for: anything but the engine's own bookkeeping. */
function holdsMeta(keys: Iterable<string>): boolean {
  for (const key of keys) if (!BOOKKEEPING.has(key)) return true;
  return false;
}

/** Outstanding one-time tokens kept per session; those expiring soonest are dropped beyond this. */
const MAX_ONE_TIME_TOKENS = 50;

/**
 * Client-written strings every record keeps (for binding and the devices list) are cut to these
 * lengths, stored and compared alike: a 12 KB User-Agent must not make each guest session 12 KB,
 * nor the cookie store's cookie too large to send. Real values are far shorter.
 */
const MAX_STORED_USER_AGENT = 512;
const MAX_STORED_IP = 64;
/** What ends a signed-in session for good: on the cookie store, with `revokeOnLogout`, these set the user's watermark. */
const ENDS_SIGN_IN: ReadonlySet<DestroyReason> = new Set<DestroyReason>(['logout', 'flush', 'reset']);

/** What a request changed, per namespace, and the size of the session it leaves (maxDataSize's measure). */
interface SessionChanges {
  data: KeyChanges | null;
  meta: KeyChanges | null;
  bytes: number;
}

function clipped(value: string | null | undefined, max: number): string | null {
  if (value === undefined || value === null) return null;
  return value.length > max ? value.slice(0, max) : value;
}

/** A one-time token's expiry, for choosing which to drop (anything unreadable goes first). */
function oneTimeUntil(entry: unknown): number {
  const until = entry !== null && typeof entry === 'object' ? (entry as { until?: unknown }).until : undefined;
  return typeof until === 'number' ? until : -Infinity;
}

export class Session<T extends SessionData = RegisteredData> {
  readonly #engine: SessionEngine;
  /** The request's facts, read on first use: a session never used never parses a header. */
  #requestSource: RequestInfo | (() => RequestInfo);
  #requestInfo: RequestInfo | undefined;
  #phase: Phase = 'idle';
  #loading: Promise<this> | null = null;
  #failure: unknown = null;
  #accessed = false;
  /** Committed before it was ever used (see commitNow): it may still be read, never changed. */
  #closed = false;
  /** The request is outside `cookie.path`: no session there, and nothing may be stored (see #outsidePathError). */
  #outsidePath = false;
  /** login/logout/reset/flush ended a record or a cookie this request: `modified`, whatever follows. */
  #ended = false;
  #onActivate: (() => void) | undefined;

  #cookieSent = false;
  /** The request carried two cookies of our name (see clearedOtherScopeCookies). */
  #ambiguousCookie = false;
  /** The session came in on the plain-HTTP cookie over HTTPS: re-key it and clear that cookie. */
  #fromPlainHttp = false;
  /** The token for #id, held only for re-sending the cookie. Never stored or emitted. */
  #token: string | null = null;
  #id: string | null = null;
  #stored = false;
  /**
   * Ids given up by `cycleId`, deleted at commit; with their tokens, to follow a parallel rotation,
   * and (`loaded`) the snapshots this request loaded them with, to carry the record over at commit.
   */
  #retired: { id: string; token: string | null; loaded?: { data: Map<string, string>; meta: Map<string, string> } }[] = [];
  /** The rotated-away record this request's cookie led through, if any: ended with the session. */
  #arrivedVia: { id: string; token: string } | null = null;
  #cookieChanged = false;
  /** Meta keys of one-time tokens issued by this request (spent locally: nothing stored yet). */
  #issuedKeys: Set<string> | null = null;
  /** Meta keys of flash messages queued by this request: carried into a new session by a reset. */
  #queuedFlashes: Set<string> | null = null;

  #data = new Map<string, JsonValue>();
  #snapshot = new Map<string, string>();
  #meta = new Map<string, JsonValue>();
  #metaSnapshot = new Map<string, string>();
  #userId: string | null = null;
  #userIdBaseline: string | null = null;
  #forceSave = false;
  #rotateRequested = false;
  #createdAt = 0;
  #lastSeenAt = 0;
  /** The loaded record's own deadline (Infinity for a session not loaded from the store). */
  #storedExpiresAt = Infinity;

  /**
   * Adapters: whether `value` is a session opened by the `createSessions()` result whose resolved
   * options are `options` (each result has its own). Lets a second mount recognise the first
   * one's session from the session itself, so the request carries nothing else. @internal
   */
  static openedWith(value: unknown, options: object): boolean {
    return value instanceof Session && value.#engine.options === options;
  }

  /** Adapters: whether `value` is a session whose request has been answered (committed or closed). @internal */
  static finished(value: unknown): boolean {
    return value instanceof Session && (value.#closed || value.#phase === 'committed');
  }

  constructor(engine: SessionEngine, request: RequestInfo | (() => RequestInfo), onActivate?: () => void) {
    this.#engine = engine;
    this.#requestSource = request;
    this.#onActivate = onActivate;
    // express-session habits (`req.session.views = 1`, middleware that keeps its state on
    // req.session) would add a property that is never saved: refused instead (a TypeError in
    // strict code), so the data is not lost silently. Every instance takes the same shape.
    Object.preventExtensions(this);
  }

  // ---------------------------------------------------------------- loading

  /**
   * Loads the session (one store read when the request carries a session cookie, none otherwise).
   * Idempotent; concurrent calls share one read. Rejects with a StoreError when the store fails:
   * a failure is never mistaken for "no session".
   */
  load(): Promise<this> {
    if (this.#phase === 'ready' || this.#phase === 'committed') return Promise.resolve(this);
    if (this.#phase === 'failed') return Promise.reject(this.#failure);
    if (this.#loading) return this.#loading;
    // Called again while a synchronous fetch is still running (from an event listener): answer
    // once it has finished, instead of starting a second fetch.
    if (this.#phase === 'loading') return Promise.resolve().then(() => this.load());
    let token: string | null;
    try {
      this.#activate();
      token = this.#readCookie();
    } catch (error) {
      // Reading the request failed (an adapter's refusal: binding.ip with no address): a
      // rejection, as every other load failure, never a throw from getSession().
      return this.#loadFailed(error);
    }
    if (token === null) {
      this.#startFresh();
      this.#phase = 'ready';
      return Promise.resolve(this);
    }
    this.#phase = 'loading';
    let fetching: void | Promise<void>;
    try {
      fetching = this.#fetch(token);
    } catch (error) {
      return this.#loadFailed(error);
    }
    if (fetching === undefined) {
      // A store that answered synchronously: loaded in this tick, no promise chain to wait on.
      this.#phase = 'ready';
      return Promise.resolve(this);
    }
    this.#loading = fetching.then(
      () => {
        this.#phase = 'ready';
        return this;
      },
      (error: unknown) => this.#loadFailed(error),
    );
    return this.#loading;
  }

  #loadFailed(error: unknown): Promise<never> {
    this.#phase = 'failed';
    this.#failure = error;
    return Promise.reject(error);
  }

  /** True once the data is available synchronously. */
  get loaded(): boolean {
    return this.#phase === 'ready' || this.#phase === 'committed';
  }

  /**
   * Adapters: the response ended before the session was first used, so nothing could carry a
   * change: from now on it may be read, and a change throws HeadersSentError. @internal
   */
  closeUnsaved(): void {
    this.#closed = true;
  }

  /** Adapters: called once, the first time the session is used, to hook the response. */
  set onActivate(hook: (() => void) | undefined) {
    this.#onActivate = hook;
  }

  #request(): RequestInfo {
    if (this.#requestInfo === undefined) {
      const source = this.#requestSource;
      this.#requestInfo = typeof source === 'function' ? source() : source;
    }
    return this.#requestInfo;
  }

  #activate(): void {
    if (this.#accessed) return;
    this.#accessed = true;
    const hook = this.#onActivate;
    this.#onActivate = undefined;
    hook?.();
  }

  #readCookie(): string | null {
    const { cookie } = this.#engine.options;
    // Outside the cookie's Path a browser sends no cookie: a client that does (or a cookie of
    // another scope) gets no session there either (fastify/session #169).
    if (cookie.path !== '/' && !pathMatches(this.#request().path, cookie.path)) {
      this.#outsidePath = true;
      return null;
    }
    const name = cookieNameFor(cookie, isSecureFor(cookie, this.#request().https));
    let lookup = findCookie(this.#request().cookieHeader, name);
    if (lookup.kind === 'absent' && name !== cookie.name && this.#request().https) {
      // A cookie issued over plain HTTP, now arriving over HTTPS (ViUR's two cookies).
      lookup = findCookie(this.#request().cookieHeader, cookie.name);
      if (lookup.kind === 'found' && this.#plausible(lookup.value)) this.#fromPlainHttp = true;
    }
    if (lookup.kind === 'absent') return null;
    this.#cookieSent = true;
    if (lookup.kind === 'ambiguous') {
      this.#ambiguousCookie = true;
      this.#engine.events.emit('invalidCookie', { reason: 'ambiguous' });
      return null;
    }
    if (!this.#plausible(lookup.value)) {
      this.#engine.events.emit('invalidCookie', { reason: 'malformed' });
      return null;
    }
    return lookup.value;
  }

  /** A cheap shape check before any store call or decryption. */
  #plausible(value: string): boolean {
    return this.#engine.client === null ? isWellFormedToken(value) : SEALED_SHAPE.test(value);
  }

  /**
   * Reads the record for a cookie token and takes it on. Returns nothing when all of it happened
   * synchronously (a synchronous store, the common case of a live session), or a promise when
   * the store is asynchronous or the session needs more store calls (expired, rotated, rebound).
   */
  #fetch(cookieToken: string): void | Promise<void> {
    if (this.#engine.client !== null) return this.#open(cookieToken, this.#engine.client);
    const id = hashToken(cookieToken);
    let answer: Awaitable<SessionRecord | null>;
    try {
      answer = this.#engine.callNow('get', (store) => store.get(id));
    } catch (error) {
      return this.#unreadable(error);
    }
    if (isPromiseLike(answer)) {
      return answer.then(
        (record) => this.#receive(cookieToken, id, record),
        (error: unknown) => this.#unreadable(error),
      );
    }
    return this.#receive(cookieToken, id, answer);
  }

  /** A corrupt record reads as "no session" (reported); any other failure fails the load. */
  #unreadable(error: unknown): void {
    if (!(error instanceof CorruptRecordError)) throw error;
    this.#engine.events.emit('invalidCookie', { reason: 'corrupt' });
    this.#startFresh();
  }

  /** Takes on the record a cookie's token found (or starts fresh if it cannot be used). */
  #receive(token: string, id: string, record: SessionRecord | null): void | Promise<void> {
    const engine = this.#engine;
    this.#startFresh();
    if (!record) {
      // Strict mode: an id we don't hold is never adopted; a fresh one is issued if data is stored.
      engine.events.emit('invalidCookie', { reason: 'unknown' });
      return;
    }
    if (record.meta[META_MOVED] !== undefined) {
      // A forwarder or a cycled record past its life is no session that expired: an unknown
      // cookie (its user is the reserved __moved__, never named in an event). The sweep deletes it.
      if (record.expiresAt <= engine.options.clock.now()) {
        engine.events.emit('invalidCookie', { reason: 'unknown' });
        return;
      }
      return this.#receiveMoved(id, token, record);
    }
    const expired = this.#expiryReason(record, engine.options.clock.now());
    if (expired) return this.#dropExpired(id, record, expired);
    return this.#accept(id, token, record);
  }

  async #dropExpired(id: string, record: SessionRecord, reason: 'idle' | 'absolute' | 'fixed'): Promise<void> {
    const engine = this.#engine;
    engine.events.emit('expired', { handle: id, userId: record.userId, reason });
    await engine.call('destroy', (store) => store.destroy(id));
    engine.events.emit('destroyed', { handle: id, userId: record.userId, reason: 'expired' });
  }

  /** Rotated by a parallel request within the grace window: continue in the new session. */
  async #receiveMoved(id: string, token: string, record: SessionRecord): Promise<void> {
    const followed = await this.#follow(token, record);
    if (!followed) {
      this.#engine.events.emit('invalidCookie', { reason: 'unknown' });
      return;
    }
    // The session it moved to may have expired since (a short setExpiry): judged like any other.
    const expired = this.#expiryReason(followed.record, this.#engine.options.clock.now());
    if (expired) return this.#dropExpired(followed.record.id, followed.record, expired);
    this.#cookieChanged = true;
    this.#arrivedVia = { id, token };
    await this.#accept(id, followed.token, followed.record);
  }

  /** Checks the binding and adopts the record; upgrades a plain-HTTP session arriving over HTTPS. */
  #accept(id: string, token: string, record: SessionRecord): void | Promise<void> {
    const engine = this.#engine;
    const mismatch = this.#bindingMismatch(record);
    if (mismatch) return this.#dropRebound(id, record, mismatch);
    this.#adopt(token, record);
    engine.events.emit('loaded', { handle: record.id, userId: record.userId });
    // ViUR: a session created over HTTP is never carried into HTTPS unchanged.
    if (this.#fromPlainHttp || this.#bornOverPlainHttp(record)) return this.#upgradeToHttps();
  }

  /**
   * Ends the session the mismatching request reached: `record` (through an old cookie in its grace
   * window, the session it was rotated into) and, if the request came through one, the forwarder.
   */
  async #dropRebound(arrivedAt: string, record: SessionRecord, field: 'ip' | 'userAgent'): Promise<void> {
    const engine = this.#engine;
    engine.events.emit('bindingMismatch', { handle: record.id, userId: record.userId, field });
    // The old cookie's token opens a forwarder written before `movedTo` existed.
    const token = this.#arrivedVia?.id === arrivedAt ? this.#arrivedVia.token : null;
    await endChain(engine, arrivedAt, token, null, (handle) => engine.events.emit('destroyed', { handle, userId: record.userId, reason: 'binding' }));
  }

  /** Loads a stateless session: decrypt, check expiry, revocation and binding; no store record. */
  async #open(value: string, client: ClientStore): Promise<void> {
    const engine = this.#engine;
    this.#startFresh();
    const opened = client.unseal(value, engine.options.cookie.name);
    if (!opened) {
      engine.events.emit('invalidCookie', { reason: 'malformed' });
      return;
    }
    const { record } = opened;
    const expired = this.#expiryReason(record, engine.options.clock.now());
    if (expired) {
      engine.events.emit('expired', { handle: record.id, userId: record.userId, reason: expired });
      return;
    }
    if (record.userId !== null && client.notValidBefore) {
      const userId = record.userId;
      const voidBefore = await engine.callClient('notValidBefore', (c) => (c.notValidBefore as NonNullable<ClientStore['notValidBefore']>)(userId));
      if (voidBefore !== null && record.createdAt <= voidBefore) {
        engine.events.emit('invalidCookie', { reason: 'revoked' });
        return;
      }
    }
    const mismatch = this.#bindingMismatch(record);
    if (mismatch) {
      engine.events.emit('bindingMismatch', { handle: record.id, userId: record.userId, field: mismatch });
      return;
    }
    this.#adopt(value, record);
    // Opened with an older key: re-issue under the newest even if nothing else changes.
    if (opened.stale) this.#cookieChanged = true;
    if (this.#fromPlainHttp || this.#bornOverPlainHttp(record)) await this.#upgradeToHttps();
  }

  /** A record marked as born over plain HTTP (`cookie.prefix: false`), arriving over HTTPS. */
  #bornOverPlainHttp(record: SessionRecord): boolean {
    return record.meta[META_PLAIN_HTTP] === true && this.#request().https;
  }

  /** Marks a new record's meta when its scheme cannot be told from the cookie name (see META_PLAIN_HTTP). */
  #birthMeta(meta: Record<string, JsonValue>): Record<string, JsonValue> {
    if (!this.#engine.options.cookie.prefix && !this.#request().https) meta[META_PLAIN_HTTP] = true;
    return meta;
  }

  /**
   * A session born over plain HTTP arriving over HTTPS is never carried over as it is (ViUR). Its
   * data may be (`keepDataOnHttpsUpgrade`), but never its user or its tokens: anyone on the path,
   * or on a sibling domain, can plant a plain cookie.
   */
  async #upgradeToHttps(): Promise<void> {
    if (!this.#engine.options.keepDataOnHttpsUpgrade) return this.#restart([], 'httpsUpgrade');
    // Re-keyed at commit, as cycleId does: the HTTP-born record stays until the new one exists
    // (a failed request, or parallel ones, still find it). Its expiry choice and creation time
    // stay too; who is signed in, tokens and flashes do not (so nothing is carried over).
    await this.cycleIdNow(false);
    this.#userId = null;
    for (const key of [...this.#meta.keys()]) if (key !== META_EXPIRY) this.#meta.delete(key);
  }

  #adopt(token: string, record: SessionRecord): void {
    this.#token = token;
    this.#id = record.id;
    this.#stored = true;
    this.#userId = this.#userIdBaseline = record.userId;
    this.#createdAt = record.createdAt;
    this.#lastSeenAt = record.lastSeenAt;
    this.#storedExpiresAt = record.expiresAt;
    takeOn(record.data, this.#data, this.#snapshot);
    takeOn(record.meta, this.#meta, this.#metaSnapshot);
  }

  #bindingMismatch(record: SessionRecord): 'ip' | 'userAgent' | null {
    const { binding } = this.#engine.options;
    const request = this.#request();
    if (binding.ip && record.ip !== null && clipped(request.ip, MAX_STORED_IP) !== record.ip) return 'ip';
    if (binding.userAgent && clipped(request.userAgent, MAX_STORED_USER_AGENT) !== record.userAgent) return 'userAgent';
    return null;
  }

  #startFresh(): void {
    const now = this.#engine.options.clock.now();
    const createdAt = this.#engine.creationTime(now);
    this.#token = null;
    this.#id = null;
    this.#stored = false;
    // Cleared, not replaced: nothing holds on to these maps, and a load would otherwise allocate twice.
    this.#data.clear();
    this.#snapshot.clear();
    this.#meta.clear();
    this.#metaSnapshot.clear();
    this.#userId = this.#userIdBaseline = null;
    this.#createdAt = createdAt;
    this.#lastSeenAt = now;
    this.#storedExpiresAt = Infinity;
    this.#forceSave = false;
    this.#arrivedVia = null;
  }

  /** Synchronous access guard: a request without a cookie needs no load at all. */
  #ready(): void {
    if (this.#phase === 'ready' || this.#phase === 'committed') return;
    if (this.#phase === 'idle') {
      this.#activate();
      if (this.#readCookie() === null) {
        this.#startFresh();
        this.#phase = 'ready';
        return;
      }
      this.#cookieSent = false; // re-read by load()
    }
    if (this.#phase === 'failed') throw this.#failure;
    throw new NotLoadedError();
  }

  /** Guard for changes: after commit they would be lost without a word, the response having gone. */
  #writable(): void {
    this.#ready();
    if (this.#phase === 'committed' || this.#closed) throw new HeadersSentError();
  }

  /** The same for lifecycle calls, once they have loaded the session. */
  #stillOpen(): void {
    if (this.#phase === 'committed' || this.#closed) throw new HeadersSentError();
  }

  /**
   * Outside `cookie.path`, a commit that would store something would start a session whose
   * cookie (Path=cookie.path) replaces the browser's real one there, signing the user out:
   * refused, loudly. Calls that store nothing (no flashes to consume, a guest's logout) pass.
   */
  #outsidePathError(): ConfigError {
    const { path } = this.#engine.options.cookie;
    return new ConfigError(`this request is outside cookie.path ${JSON.stringify(path)}, where the session cookie is not sent: its session can be read (empty) but nothing can be stored in it`);
  }

  // ---------------------------------------------------------------- dictionary

  /** The value under `key`, or `undefined` / the fallback when absent. */
  get<K extends DataKey<T>>(key: K): T[K] | undefined;
  get<K extends DataKey<T>, D>(key: K, fallback: D): Exclude<T[K], undefined> | D;
  get(key: string, fallback?: unknown): unknown {
    this.#ready();
    return this.#data.has(key) ? this.#data.get(key) : fallback;
  }

  /** The value under `key`; throws MissingKeyError when absent (the seeds' `session[key]`). */
  require<K extends DataKey<T>>(key: K): Exclude<T[K], undefined> {
    this.#ready();
    if (!this.#data.has(key)) throw new MissingKeyError(key);
    return this.#data.get(key) as Exclude<T[K], undefined>;
  }

  /**
   * Stores a JSON value; anything else throws InvalidValueError naming the key. The type refuses
   * `undefined` (use `delete`) and non-JSON values such as a `Date` too (`Storable`); values
   * nested deeper are checked at run time only.
   */
  set<K extends DataKey<T>>(key: K, value: Storable<T[K]>): this {
    this.#writable();
    checkKey(key);
    assertJson(key, value);
    this.#checkValueSize(key, value as JsonValue);
    this.#data.set(key, value as JsonValue);
    return this;
  }

  /** One value alone over the limit fails at `set`, where the app can still handle it. */
  #checkValueSize(key: string, value: JsonValue): void {
    const limit = this.#engine.options.maxDataSize;
    const json = JSON.stringify(value);
    // UTF-8 needs at most 3 bytes per UTF-16 unit: only measure when the limit could be near.
    if (json.length * 3 + key.length * 3 <= limit) return;
    const bytes = Buffer.byteLength(key) + Buffer.byteLength(json);
    if (bytes > limit) throw new SessionTooLargeError(bytes, limit);
  }

  has(key: DataKey<T> | (string & {})): boolean {
    this.#ready();
    return this.#data.has(key);
  }

  /** Removes `key`; throws MissingKeyError when absent (the seeds' `del session[key]`). */
  delete(key: DataKey<T>): this {
    this.#writable();
    if (!this.#data.delete(key)) throw new MissingKeyError(key);
    return this;
  }

  /** Removes and returns `key`'s value; without a fallback a missing key throws. */
  pop<K extends DataKey<T>>(key: K): Exclude<T[K], undefined>;
  pop<K extends DataKey<T>, D>(key: K, fallback: D): Exclude<T[K], undefined> | D;
  pop(key: string, ...fallback: unknown[]): unknown {
    this.#writable();
    if (!this.#data.has(key)) {
      if (fallback.length === 0) throw new MissingKeyError(key);
      return fallback[0];
    }
    const value = this.#data.get(key);
    this.#data.delete(key);
    return value;
  }

  /** Returns the value under `key`, storing `value` first if the key is absent. */
  setDefault<K extends DataKey<T>>(key: K, value: Storable<T[K]>): Exclude<T[K], undefined> {
    this.#ready();
    if (this.#data.has(key)) return this.#data.get(key) as Exclude<T[K], undefined>;
    this.set(key, value);
    return value as Exclude<T[K], undefined>;
  }

  /** Merges an object's own keys into the session (the seeds' `session |= other`). */
  update(values: { [K in DataKey<T>]?: Storable<T[K]> }): this {
    this.#writable();
    // A string or an array would be read as keys "0", "1", …; null would fail in Object.keys.
    const proto = typeof values === 'object' && values !== null ? (Object.getPrototypeOf(values) as unknown) : undefined;
    if (proto !== Object.prototype && proto !== null) throw new ConfigError('update() takes a plain object of keys and values');
    const entries = Object.keys(values).map((key) => [key, (values as Record<string, unknown>)[key]] as const);
    for (const [key, value] of entries) {
      checkKey(key);
      assertJson(key, value);
      this.#checkValueSize(key, value as JsonValue);
    }
    for (const [key, value] of entries) this.#data.set(key, value as JsonValue);
    return this;
  }

  /**
   * Removes every data key. The user, a `setExpiry()` choice, CSRF tokens, flashes and the test
   * cookie stay (`flush()` ends those too); a session left holding nothing is deleted at save.
   */
  clear(): this {
    this.#writable();
    this.#data.clear();
    return this;
  }

  keys(): DataKey<T>[] {
    this.#ready();
    return [...this.#data.keys()] as DataKey<T>[];
  }

  values(): T[DataKey<T>][] {
    this.#ready();
    return [...this.#data.values()] as T[DataKey<T>][];
  }

  entries(): [DataKey<T>, T[DataKey<T>]][] {
    this.#ready();
    return [...this.#data.entries()] as [DataKey<T>, T[DataKey<T>]][];
  }

  /** Number of keys. */
  get size(): number {
    this.#ready();
    return this.#data.size;
  }

  /** True when the session holds no data. */
  isEmpty(): boolean {
    this.#ready();
    return this.#data.size === 0;
  }

  /** Forces a save even if no change is detected. */
  markChanged(): this {
    this.#writable();
    this.#forceSave = true;
    return this;
  }

  /** Iterates `[key, value]` pairs, as a Map does: `for (const [key, value] of session)`. */
  [Symbol.iterator](): IterableIterator<[DataKey<T>, T[DataKey<T>]]> {
    return this.entries()[Symbol.iterator]();
  }

  /**
   * Removes and returns the last `[key, value]` in the session's key order (ViUR's `popitem`): within a
   * request the most recently added; after a reload, the store's order. undefined when empty.
   */
  popItem(): [DataKey<T>, T[DataKey<T>]] | undefined {
    this.#writable();
    let last: [string, JsonValue] | undefined;
    for (const entry of this.#data) last = entry;
    if (last === undefined) return undefined;
    this.#data.delete(last[0]);
    return last as [DataKey<T>, T[DataKey<T>]];
  }

  /** Whether this request has used the session (Django's `accessed`): read, changed or loaded it. */
  get accessed(): boolean {
    return this.#phase !== 'idle';
  }

  /**
   * Whether this request has changed the session so far (Django's `modified`), so that its commit
   * will save: data, the signed-in user, engine data such as flashes and tokens, `markChanged()`,
   * a lifecycle call. Housekeeping the commit may do besides (a scheduled rotation, clearing a dead
   * cookie, refreshing the idle timer) does not count.
   */
  get modified(): boolean {
    if (this.#phase !== 'ready' && this.#phase !== 'committed') return false;
    if (this.#forceSave || this.#userId !== this.#userIdBaseline || this.#ended || this.#rotateRequested || this.#retired.length > 0) return true;
    return this.#diff(this.#data, this.#snapshot, false).changes !== null || this.#diff(this.#meta, this.#metaSnapshot, false).changes !== null;
  }

  /** A plain copy of the data (for templates and debugging). */
  toJSON(): Partial<T> {
    this.#ready();
    return JSON.parse(JSON.stringify(objectFromEntries(this.#data))) as Partial<T>;
  }

  // ---------------------------------------------------------------- identity

  /**
   * The session's public handle (the hashed id, as listed for "your devices"), or null while the
   * session has no stored record. Never the cookie token.
   */
  get handle(): string | null {
    return this.#stored ? this.#id : null;
  }

  /** True until the session has a stored record. */
  get isNew(): boolean {
    this.#ready();
    return !this.#stored;
  }

  /** The signed-in user (set by `login`), or null for a guest. */
  get userId(): string | null {
    this.#ready();
    return this.#userId;
  }

  get createdAt(): Date {
    this.#ready();
    return new Date(this.#createdAt);
  }

  get lastSeenAt(): Date {
    this.#ready();
    return new Date(this.#lastSeenAt);
  }

  // ---------------------------------------------------------------- lifecycle

  /**
   * Ends this session and starts a new one with a new id, keeping only the listed keys. The old
   * record is deleted at once, so the old cookie is dead even if this response never arrives.
   */
  async reset(options: { keep?: readonly string[] | undefined } = {}): Promise<void> {
    // Checked before anything ends: a string `keep` was read letter by letter, and the data it
    // meant to keep was gone with the old record.
    const keep = (options ?? {}).keep === undefined ? [] : (options as { keep: unknown }).keep;
    if (!Array.isArray(keep) || keep.some((key) => typeof key !== 'string')) {
      throw new ConfigError(`reset({ keep }): keep must be an array of key names, got ${JSON.stringify(keep)}`);
    }
    await this.load();
    this.#stillOpen();
    await this.#restart(keep as readonly string[], 'reset');
  }

  /**
   * Reset keeping `persistentFieldsOnLogin`, then record the user. A per-session expiry
   * (`setExpiry`) set before is kept, unless the session belonged to another user.
   */
  async login(userId: string): Promise<void> {
    if (typeof userId !== 'string' || userId.length === 0) throw new ConfigError('login(userId) needs a non-empty string');
    if (isReservedUser(userId)) throw new ConfigError(`login(userId): ${JSON.stringify(userId)} is reserved (guest sessions, rotated-away records)`);
    // Checked before the old session is ended: PostgreSQL would refuse it at the commit, SQLite and
    // Redis would store U+FFFD instead (another user, on reload).
    const unportable = checkString(userId);
    if (unportable !== null) throw new InvalidValueError('userId', unportable);
    await this.load();
    this.#stillOpen();
    await this.#enforceSessionLimit(userId);
    // A "remember me" choice (setExpiry) made before login() belongs to this browser: kept, as
    // Django's login keeps it through cycle_key, unless the session was another user's.
    const expiry = this.#userId === null || this.#userId === userId ? this.#meta.get(META_EXPIRY) : undefined;
    await this.#restart(this.#engine.options.persistentFieldsOnLogin, 'login');
    this.#userId = userId;
    if (expiry !== undefined) this.#meta.set(META_EXPIRY, expiry);
    // authenticatedAt is the new session's creation time: nothing more to store (one meta key
    // more on every signed-in session costs each request about half a microsecond).
  }

  /**
   * When the signed-in user last proved who they are: at `login()` (which starts the session, so
   * its creation time), or at `markAuthenticated()` after re-entering a password or a second
   * factor. Carried over by `cycleId()` and rotation, as the creation time is. null for a guest.
   */
  get authenticatedAt(): Date | null {
    this.#ready();
    if (this.#userId === null) return null;
    const at = this.#meta.get(META_AUTH_AT);
    return new Date(typeof at === 'number' ? at : this.#createdAt);
  }

  /**
   * The user has just authenticated again (a password re-entered, a second factor): restarts the
   * clock `requireFreshAuth` checks. Consider `cycleId()` too, as for any change of privilege.
   * Throws `ConfigError` for a guest: there is nobody to re-authenticate; use `login()`.
   */
  markAuthenticated(): void {
    this.#writable();
    if (this.#userId === null) throw new ConfigError('markAuthenticated(): nobody is signed in; use login(userId)');
    this.#meta.set(META_AUTH_AT, this.#engine.options.clock.now());
  }

  /** Whether a user is signed in and authenticated no more than `maxAgeSeconds` ago. */
  authenticatedWithin(maxAgeSeconds: number): boolean {
    if (typeof maxAgeSeconds !== 'number' || !(maxAgeSeconds >= 0)) throw new ConfigError(`authenticatedWithin / requireFreshAuth need a number of seconds (0 or more), got ${String(maxAgeSeconds)}`);
    const at = this.authenticatedAt;
    return at !== null && this.#engine.options.clock.now() - at.getTime() <= maxAgeSeconds * 1000;
  }

  /**
   * Guards a sensitive action (changing the password or e-mail, paying): throws
   * `ReauthenticationRequiredError` (401) unless the user authenticated within `maxAgeSeconds`.
   * @example
   * <!-- snippet: with coatcheck, session -->
   * ```ts
   * session.requireFreshAuth(5 * 60); // else 401: ask for the password, then session.markAuthenticated()
   * ```
   */
  requireFreshAuth(maxAgeSeconds: number): void {
    if (!this.authenticatedWithin(maxAgeSeconds)) throw new ReauthenticationRequiredError(this.authenticatedAt, maxAgeSeconds);
  }

  /** maxSessionsPerUser: make room (evict the oldest) or refuse, before the new session exists. */
  async #enforceSessionLimit(userId: string): Promise<void> {
    const limit = this.#engine.options.maxSessionsPerUser;
    if (limit === null) return;
    const now = this.#engine.options.clock.now();
    const mine = this.#stored ? this.#id : null;
    let live = (await this.#engine.call('listByUser', (store) => store.listByUser(userId))).filter(
      (s) => s.expiresAt > now && s.id !== mine,
    );
    let excess = live.length - limit.limit + 1;
    if (excess <= 0) return;
    // Over the limit by the stored deadlines: judge each by the current settings before refusing or
    // evicting (a deadline written under a longer, older timeout keeps a dead session listed).
    live = await this.#servedNow(live, now);
    excess = live.length - limit.limit + 1;
    if (excess <= 0) return;
    if (limit.strategy === 'refuse-new') throw new TooManySessionsError(limit.limit);
    // Claimed, then deleted (endChain): a device rotating meanwhile is evicted with its new id.
    for (const oldest of live.slice(0, excess)) await this.#destroyChain(oldest.id, null, userId, 'evicted');
  }

  /**
   * Of listed sessions, those a request would be served now. The summary settles most: past the
   * absolute timeout as configured now is dead; idle for less than the idle timeout as configured
   * now is alive (a shorter per-session expiry shows in its stored deadline, already checked).
   * Only the rest, idle for longer, are read (in parallel): a per-session `setExpiry()` may keep
   * them alive, and only the record says so. With unchanged settings that is none of them.
   */
  async #servedNow<S extends SessionSummary>(listed: S[], now: number): Promise<S[]> {
    const { absoluteTimeout, idleTimeout } = this.#engine.options;
    const unsure: S[] = [];
    const served: S[] = [];
    for (const summary of listed) {
      if (now >= summary.createdAt + absoluteTimeout * 1000) continue;
      if (now < summary.lastSeenAt + idleTimeout * 1000) served.push(summary);
      else unsure.push(summary);
    }
    if (unsure.length === 0) return served;
    const records = await Promise.all(unsure.map((summary) => this.#getOrNull(summary.id)));
    const kept = new Set(served);
    unsure.forEach((summary, i) => {
      const record = records[i];
      if (record != null && this.#expiryReason(record, now) === null) kept.add(summary);
    });
    // Oldest first, as listed: eviction takes the front.
    return listed.filter((summary) => kept.has(summary));
  }

  /** Reset keeping `persistentFieldsOnLogout`; the new session has no user. */
  async logout(): Promise<void> {
    await this.load();
    this.#stillOpen();
    await this.#restart(this.#engine.options.persistentFieldsOnLogout, 'logout');
  }

  /** Deletes the session's data and record; the cookie is expired unless new data is stored. */
  async flush(): Promise<void> {
    await this.load();
    this.#stillOpen();
    await this.#restart([], 'flush');
  }

  /** Alias of {@link flush}. */
  destroy(): Promise<void> {
    return this.flush();
  }

  /**
   * New id, same data (Django's `cycle_key`). At commit the new record is written and the old one
   * ended: no old cookie leads to the new session. The new record takes the old one as it is by
   * then (what parallel requests saved or spent) with this request's changes on top; if the
   * session was ended meanwhile (a logout, a kill), the commit fails with `SessionGoneError`.
   * Creation time (and so the absolute timeout) carries over.
   */
  async cycleId(): Promise<void> {
    await this.load();
    this.#stillOpen();
    await this.cycleIdNow();
  }

  /**
   * cycleId on an already-loaded session. With `carry` (an explicit cycleId), the commit builds the
   * new record from the old one as it is by then, not from this request's copy. @internal
   */
  async cycleIdNow(carry = true): Promise<void> {
    if (!this.#stored || this.#id === null) return;
    if (this.#engine.client === null) {
      const loaded = carry ? { data: this.#snapshot, meta: this.#metaSnapshot } : undefined;
      this.#retired.push({ id: this.#id, token: this.#token, ...(loaded && { loaded }) });
    }
    this.#stored = false;
    this.#token = null;
    this.#id = null;
    this.#snapshot = new Map();
    this.#metaSnapshot = new Map();
  }

  /** Ends the current record and starts fresh; the caller has loaded the session. */
  async #restart(keep: readonly string[], reason: DestroyReason): Promise<void> {
    const kept: [string, JsonValue][] = [];
    for (const key of keep) if (this.#data.has(key)) kept.push([key, this.#data.get(key) as JsonValue]);
    // Flash messages this request queued ("Signed out", then logout()) are for the page it leads
    // to, whichever session that is; ones from earlier requests end with their session. A flush
    // (destroy) keeps nothing: it must not leave a new session behind.
    const flashes: [string, JsonValue][] = [];
    if (reason !== 'flush' && this.#queuedFlashes !== null) {
      for (const key of this.#queuedFlashes) if (this.#meta.has(key)) flashes.push([key, this.#meta.get(key) as JsonValue]);
    }
    const doomed = [...this.#retired];
    if (this.#stored && this.#id !== null) doomed.push({ id: this.#id, token: this.#token });
    // A logout through an old cookie in its grace window ends that forwarder too.
    if (this.#arrivedVia !== null) doomed.push(this.#arrivedVia);
    const userId = this.#userIdBaseline;
    // A record or a cookie to end: the commit will write (an expired cookie at least).
    if (doomed.length > 0 || this.#cookieSent) this.#ended = true;
    const client = this.#engine.client;
    if (client) {
      // Nothing to delete server-side; a logout can still void copies via the user watermark. So
      // can flush/destroy and reset, which end a signed-in session as surely (Django's logout is a
      // flush): on a server store they delete the record every copy points to.
      // Not on login(), even over another user's session: the watermark would sign that user out
      // on every device because someone else signed in here (docs/stores/cookie.md).
      if (ENDS_SIGN_IN.has(reason) && userId !== null && client.revokeOnLogout && client.revokeUser) {
        // At least this session's own creation time: made on a process whose clock runs ahead,
        // its copies would otherwise outlive the logout (revocation compares createdAt <= at).
        const at = Math.max(this.#engine.options.clock.now(), this.#createdAt);
        await this.#engine.callClient('revokeUser', (c) => (c.revokeUser as NonNullable<ClientStore['revokeUser']>)(userId, at));
        this.#engine.noteRevocation(at);
      }
      for (const { id } of doomed) this.#engine.events.emit('destroyed', { handle: id, userId, reason });
      doomed.length = 0;
    }
    for (const { id, token } of doomed) await this.#destroyChain(id, token, userId, reason);
    this.#retired = [];
    this.#startFresh();
    for (const [key, value] of kept) this.#data.set(key, value);
    for (const [key, value] of flashes) this.#meta.set(key, value);
  }

  // ---------------------------------------------------------------- expiry

  /**
   * Per-session expiry with Django's meaning: seconds of inactivity (> 0), a fixed Date, 0 for
   * "until the browser closes" (server idle timeout still applies), or null for the default.
   * The absolute timeout caps every choice.
   */
  setExpiry(value: number | Date | null): void {
    this.#writable();
    if (value === null) this.#meta.delete(META_EXPIRY);
    else if (value instanceof Date) {
      if (Number.isNaN(value.getTime())) throw new ConfigError('setExpiry: invalid Date');
      this.#meta.set(META_EXPIRY, value.toISOString());
    } else if (typeof value === 'number' && Number.isFinite(value) && value >= 0) {
      this.#meta.set(META_EXPIRY, value);
    } else {
      throw new ConfigError('setExpiry takes seconds (>= 0), a Date, or null');
    }
    this.#cookieChanged = true;
  }

  /**
   * Seconds from now until the session expires if this request is its last, as things stand
   * when called: a request that changes nothing restarts the idle timer only once
   * `touchInterval` has passed since the last write, so until then the stored expiry holds.
   */
  getExpiryAge(): number {
    this.#ready();
    const now = this.#engine.options.clock.now();
    // Whole seconds left, rounded down as the cookie's Max-Age is (and Django's age is).
    return Math.max(0, Math.floor((this.#deadline(now) - now) / 1000));
  }

  /** When the session expires if this request is its last (see `getExpiryAge`). */
  getExpiryDate(): Date {
    this.#ready();
    return new Date(this.#deadline(this.#engine.options.clock.now()));
  }

  /**
   * The expiry the session has if this request commits now. Without a write the stored deadline
   * binds as well: one written under an older, shorter timeout, or a rotated record's grace window.
   */
  #deadline(now: number): number {
    return this.#commitWrites(now) ? this.#expiresAt(now) : Math.min(this.#expiresAt(this.#lastSeenAt), this.#storedExpiresAt);
  }

  /** Whether committing now would write the record (and so restart the idle timer). */
  #commitWrites(now: number): boolean {
    if (!this.#stored || this.#forceSave || this.#rotateRequested || this.#userId !== this.#userIdBaseline || this.#touchDue(now)) return true;
    // Rotation writes too: counting requests on every one, or once `afterSeconds` has passed.
    const rotation = this.#engine.options.rotation;
    if (rotation !== null && (rotation.afterRequests !== null || this.#rotationTimeDue(now))) return true;
    try {
      return this.#diff(this.#data, this.#snapshot, false).changes !== null || this.#diff(this.#meta, this.#metaSnapshot, false).changes !== null;
    } catch {
      return true; // a value that cannot be serialized: the commit will fail, not keep the old expiry
    }
  }

  /** True when the cookie lasts only until the browser closes. */
  getExpireAtBrowserClose(): boolean {
    this.#ready();
    const expiry = this.#meta.get(META_EXPIRY);
    if (expiry === undefined) return !this.#engine.options.cookie.persistent;
    return expiry === 0;
  }

  #expiresAt(lastSeenAt: number): number {
    const { absoluteTimeout, idleTimeout } = this.#engine.options;
    const absolute = this.#createdAt + absoluteTimeout * 1000;
    const expiry = this.#meta.get(META_EXPIRY);
    if (typeof expiry === 'string') {
      const at = Date.parse(expiry);
      // A stored date that doesn't parse (foreign or corrupt data) counts as already passed.
      return Math.min(absolute, Number.isFinite(at) ? at : this.#createdAt);
    }
    const idle = typeof expiry === 'number' && expiry > 0 ? expiry : idleTimeout;
    return Math.min(absolute, lastSeenAt + idle * 1000);
  }

  /**
   * Whether the idle timer needs refreshing: every `touchInterval`, or twice per idle period when
   * `setExpiry(seconds)` chose one shorter than that (else an active user would time out). Also
   * when the record's deadline was set under an older, shorter `idleTimeout` and would pass before
   * the next scheduled touch: raising the timeout must not sign out the users active right now.
   */
  #touchDue(now: number): boolean {
    let interval = this.#engine.options.touchInterval * 1000;
    const expiry = this.#meta.get(META_EXPIRY);
    if (typeof expiry === 'number' && expiry > 0) interval = Math.min(interval, (expiry * 1000) / 2);
    if (now - this.#lastSeenAt >= interval) return true;
    if (this.#clockBehind(now)) return true;
    const stored = this.#storedExpiresAt;
    return stored < now + interval && stored < this.#expiresAt(this.#lastSeenAt);
  }

  /**
   * The record was last written at a time still ahead of this clock (stepped back by NTP, or
   * another process's clock runs ahead). Waiting for the touch until this clock catches up would
   * let the timers that run in real time lapse meanwhile: a Redis key's time to live, a
   * persistent cookie's Max-Age. So the touch is due now. It keeps the later stored times
   * (keepLater, as every save does: a parallel setExpiry() may have lengthened the deadline), so
   * it is due again on this clock's requests until the lag is under a second; the store counts
   * the time to live from this clock's now, which gives it at least the whole idle timeout again.
   */
  #clockBehind(now: number): boolean {
    return this.#lastSeenAt - now > Math.min(MAX_CLOCK_LAG_MS, (this.#engine.options.touchInterval * 1000) / 2);
  }

  #expiryReason(record: SessionRecord, now: number): 'idle' | 'absolute' | 'fixed' | null {
    const { absoluteTimeout, idleTimeout } = this.#engine.options;
    if (now >= record.createdAt + absoluteTimeout * 1000) return 'absolute';
    const expiry = record.meta[META_EXPIRY];
    if (typeof expiry === 'string') {
      const at = Date.parse(expiry);
      if (!Number.isFinite(at) || now >= at) return 'fixed';
    } else {
      const idle = typeof expiry === 'number' && expiry > 0 ? expiry : idleTimeout;
      if (now >= record.lastSeenAt + idle * 1000) return 'idle';
    }
    // The stored deadline binds every kind of expiry: a rotated-away record's grace window is there.
    if (now >= record.expiresAt) return typeof expiry === 'string' ? 'fixed' : 'idle';
    return null;
  }

  // ---------------------------------------------------------------- test cookie

  /** Django's test cookie: stores a marker to check on the next request. */
  setTestCookie(): void {
    this.#writable();
    this.#meta.set(META_TEST_COOKIE, 'worked');
  }

  /** True when the marker set by `setTestCookie` came back. */
  testCookieWorked(): boolean {
    this.#ready();
    return this.#meta.get(META_TEST_COOKIE) === 'worked';
  }

  deleteTestCookie(): void {
    this.#writable();
    this.#meta.delete(META_TEST_COOKIE);
  }

  /**
   * Rotates the id at commit keeping the data, like automatic rotation: the old id forwards to the
   * new session for the grace window, so parallel requests are neither logged out nor forked. Use
   * it for routine re-keying. On a privilege change use {@link cycleId}, which lets no old cookie
   * follow; `login()` already starts a new session.
   */
  async rotate(): Promise<void> {
    await this.load();
    this.#stillOpen();
    if (this.#engine.client !== null) await this.cycleIdNow();
    else if (this.#stored) this.#rotateRequested = true;
  }

  // ---------------------------------------------------------------- CSRF (ViUR security keys)

  /**
   * The session's static CSRF token (ViUR's static security key): stable for the session's life,
   * created on first use (which makes the session persist). Send it in a form field or header.
   */
  csrfToken(): string {
    this.#ready();
    const existing = this.#meta.get(META_CSRF);
    if (typeof existing === 'string') return existing;
    this.#stillOpen();
    const token = randomToken(32);
    this.#meta.set(META_CSRF, token);
    return token;
  }

  /** Checks a presented token against the static one, in constant time. */
  validateStaticSecurityKey(key: unknown): boolean {
    this.#ready();
    const expected = this.#meta.get(META_CSRF);
    return typeof key === 'string' && typeof expected === 'string' && constantTimeEqual(key, expected);
  }

  /**
   * Issues a one-time token (ViUR's `getSecurityKey`), valid for `lifetime` seconds (default: the
   * idle timeout), optionally carrying JSON `data` returned on validation. Several may be
   * outstanding at once, so parallel forms work.
   */
  getSecurityKey(options: { lifetime?: number | undefined; data?: JsonValue | undefined } = {}): string {
    this.#writable();
    options ??= {};
    if (this.#engine.client !== null) {
      throw new ConfigError('one-time security keys need a server-side store to be spent exactly once; use csrfToken() with the cookie store');
    }
    const lifetime = options.lifetime ?? this.#engine.options.idleTimeout;
    const now = this.#engine.options.clock.now();
    // Finite: the expiry is stored as JSON, where Infinity would turn into null (never spendable).
    if (typeof lifetime !== 'number' || !(lifetime > 0) || !Number.isFinite(now + lifetime * 1000)) {
      throw new ConfigError('getSecurityKey: lifetime must be a positive, finite number of seconds');
    }
    if (options.data !== undefined) assertJson('data', options.data);
    // Validation answers a token's data (true without), or false for an invalid one: falsy data
    // would read as invalid in `if (await validateSecurityKey(t))`, and null came back as true.
    if (options.data !== undefined && !options.data) {
      throw new ConfigError(
        `getSecurityKey: data cannot be ${JSON.stringify(options.data)} (validateSecurityKey answers false for an invalid token, so data must be truthy); wrap it, e.g. { data: { value: ${JSON.stringify(options.data)} } }`,
      );
    }
    // Over the size limit, fail here, where the app can still handle it (not at the commit).
    if (options.data !== undefined) this.#checkValueSize(META_ONE_TIME, options.data);
    const token = randomToken(32);
    const outstanding = [...this.#meta].filter(([key]) => key.startsWith(META_ONE_TIME));
    const excess = outstanding.length - MAX_ONE_TIME_TOKENS + 1;
    if (excess > 0) {
      // By expiry, not by key order: a store may hand keys back in its own order (PostgreSQL's
      // jsonb sorts them), where "first" would be a random token, maybe one issued a moment ago.
      outstanding.sort((a, b) => oneTimeUntil(a[1]) - oneTimeUntil(b[1]));
      for (const [key] of outstanding.slice(0, excess)) this.#meta.delete(key);
    }
    const metaKey = META_ONE_TIME + hashToken(token);
    this.#meta.set(metaKey, { until: now + lifetime * 1000, ...(options.data !== undefined && { data: options.data }) });
    (this.#issuedKeys ??= new Set()).add(metaKey);
    return token;
  }

  /**
   * Spends a one-time token: resolves to its data (or `true`) the first time, `false` ever after,
   * when expired, or when it belongs to another session. Consumption is one atomic store write,
   * so two parallel requests can't both spend one token.
   */
  async validateSecurityKey(key: unknown): Promise<JsonValue | true | false> {
    await this.load();
    if (typeof key !== 'string' || key.length > 256 || key.length < 16) return false;
    const metaKey = META_ONE_TIME + hashToken(key);
    const entry = this.#meta.get(metaKey);
    if (entry === undefined || entry === null || typeof entry !== 'object' || Array.isArray(entry)) return false;
    const now = this.#engine.options.clock.now();
    const { until, data } = entry as { until?: unknown; data?: JsonValue };
    this.#meta.delete(metaKey);
    if (this.#phase !== 'committed' && this.#issuedKeys?.delete(metaKey)) {
      // Issued in this very request and not saved yet: nothing to race with. (After the commit
      // it is stored, and must be spent there like any other.)
      return typeof until === 'number' && until > now ? (data ?? true) : false;
    }
    this.#metaSnapshot.delete(metaKey);
    // Loaded, so stored: spent there by one guarded write, even after a cycleId (the old record
    // still holds it until this request commits), so parallel requests cannot both spend it.
    // Never spent on a rotated-away record: its copy of the token must stay unspendable.
    const patch: SessionPatch = {
      meta: { unset: [metaKey] },
      guard: { present: [metaKey], absent: [META_MOVED] },
      // The times this request loaded: a parallel request may have moved them on since.
      lastSeenAt: this.#lastSeenAt,
      expiresAt: this.#expiresAt(this.#lastSeenAt),
      keepLater: true,
    };
    if (!this.#stored) {
      const retired = this.#retired.at(-1);
      if (retired === undefined) return false;
      const spentBeforeCycle = await this.#engine.call('update', (store) => store.update(retired.id, patch));
      return spentBeforeCycle && typeof until === 'number' && until > now ? (data ?? true) : false;
    }
    let id = this.#id as string;
    let spent = await this.#engine.call('update', (store) => store.update(id, patch));
    // Rotated by a parallel request: the token (if still unspent) moved with the data.
    for (let hop = 0; !spent && hop < MAX_FORWARD_HOPS && (await this.#relocate()); hop++) {
      id = this.#id as string;
      spent = await this.#engine.call('update', (store) => store.update(id, patch));
    }
    if (!spent || typeof until !== 'number' || until <= now) return false;
    return data ?? true;
  }

  // ---------------------------------------------------------------- flash messages

  /**
   * Queues a message for the next page (appengine-utilities' flash): it survives redirects until
   * `consumeFlashes()` reads it, once.
   */
  flash(message: string, category = 'info'): void {
    this.#writable();
    if (typeof message !== 'string' || typeof category !== 'string') throw new InvalidValueError(META_FLASH, 'flash messages and categories are strings');
    // Often echoes user input: NUL or a lone surrogate would fail the save on some stores only.
    assertJson(META_FLASH, message);
    assertJson(META_FLASH, category);
    // Flashes often echo user input: a huge one fails here, not the whole request at the commit.
    this.#checkValueSize(META_FLASH, { message, category });
    const keys = this.#flashKeys();
    // A runaway loop of flashes must not grow the session without bound: keep the newest.
    for (const key of keys.slice(0, Math.max(0, keys.length - MAX_FLASHES + 1))) this.#meta.delete(key);
    // After the newest message queued so far (by this request or an earlier one), even within the
    // same millisecond or after the clock stepped back; the random part only orders messages
    // queued by parallel requests at the same moment.
    const newest = keys.length > 0 ? /^flash\.(\d{13})\.(\d+)\./.exec(keys[keys.length - 1] as string) : null;
    const newestAt = newest ? Number(newest[1]) : -1;
    const at = Math.max(newestAt, Math.floor(this.#engine.options.clock.now()), 0);
    const seq = at === newestAt ? Number((newest as RegExpExecArray)[2]) + 1 : 0;
    const key = `${META_FLASH_ITEM}${String(at).padStart(13, '0')}.${String(seq).padStart(6, '0')}.${randomBytes(6).toString('base64url')}`;
    this.#meta.set(key, { message, category });
    (this.#queuedFlashes ??= new Set()).add(key);
  }

  /** Returns the queued flash messages and removes them. */
  consumeFlashes(): { message: string; category: string }[] {
    this.#writable();
    const legacy = this.#meta.get(META_FLASH);
    this.#meta.delete(META_FLASH);
    const out = Array.isArray(legacy) ? (legacy as { message: string; category: string }[]) : [];
    for (const key of this.#flashKeys()) {
      out.push(this.#meta.get(key) as { message: string; category: string });
      this.#meta.delete(key);
    }
    return out;
  }

  /**
   * Brings what this request loaded back within the caps on one-time tokens and flash messages.
   * Each request keeps to them when it adds one, but parallel requests add on their own views and
   * the store merges them key by key, so a session can hold more; the next request that commits
   * it drops the extra ones: tokens expiring soonest first (those this request issued last),
   * flashes oldest first. (The store's size bound, `maxDataSize`, holds atomically meanwhile.)
   */
  #trimToCaps(): void {
    const tokens: [string, number][] = [];
    let flashes = 0;
    for (const [key, value] of this.#meta) {
      if (key.startsWith(META_ONE_TIME)) tokens.push([key, this.#issuedKeys?.has(key) ? Infinity : oneTimeUntil(value)]);
      else if (key.startsWith(META_FLASH_ITEM)) flashes++;
    }
    if (tokens.length > MAX_ONE_TIME_TOKENS) {
      tokens.sort((a, b) => a[1] - b[1]);
      for (const [key] of tokens.slice(0, tokens.length - MAX_ONE_TIME_TOKENS)) this.#meta.delete(key);
    }
    if (flashes > MAX_FLASHES) {
      const keys = this.#flashKeys();
      for (const key of keys.slice(0, keys.length - MAX_FLASHES)) this.#meta.delete(key);
    }
  }

  /** This session's flash message keys, oldest first. */
  #flashKeys(): string[] {
    const keys: string[] = [];
    for (const key of this.#meta.keys()) if (key.startsWith(META_FLASH_ITEM)) keys.push(key);
    return keys.sort();
  }

  // ---------------------------------------------------------------- commit

  /**
   * Writes what this request changed and says which cookies to set. Adapters call it exactly
   * once, before the response headers go out. Nothing is written for a 5xx response (Django's
   * rule), and nothing at all happens when the request never used the session.
   */
  commit(status = 200): Promise<CommitResult | null> {
    try {
      return Promise.resolve(this.commitNow(status));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * `commit()` for adapters that can carry on in the same tick: returns the result itself when no
   * store call was needed or the store answered synchronously, and a promise otherwise. Failures
   * found synchronously are thrown, not returned as a rejected promise.
   */
  commitNow(status = 200): Awaitable<CommitResult | null> {
    if (!this.#accessed || this.#closed) {
      // Unused until now: nothing to write, but the response has gone, so later changes must throw.
      this.#closed = true;
      return null;
    }
    if (this.#phase === 'committed') return null;
    if (this.#phase === 'loading') return this.#commitAfterLoad(status);
    if (this.#phase !== 'ready') {
      this.#phase = 'committed';
      return { setCookie: [] };
    }
    this.#phase = 'committed';
    const result: CommitResult = { setCookie: [] };
    if (status >= 500) return result;
    this.#engine.maybeCleanup();
    if (this.#fromPlainHttp) result.setCookie.push(clearedPlainHttpCookie(this.#engine.options.cookie));
    if (this.#ambiguousCookie) result.setCookie.push(...clearedOtherScopeCookies(this.#engine.options.cookie, this.#request().https));
    const engine = this.#engine;
    const now = engine.options.clock.now();
    // Fewer meta keys than the smaller cap: neither can be exceeded (the common case, no walk).
    if (this.#meta.size > MAX_ONE_TIME_TOKENS) this.#trimToCaps();
    const keep = this.#data.size > 0 || this.#userId !== null || (this.#meta.size > 0 && holdsMeta(this.#meta.keys()));
    if (keep && this.#outsidePath) throw this.#outsidePathError();

    if (engine.client !== null) return this.#commitSealed(engine.client, keep, now, result);
    if (!keep && !this.#stored && this.#retired.length === 0) {
      // Never stored and nothing to keep (a guest who only read, or whose logout left nothing):
      // no store call, so the answer is here in this tick (HTTP/2 needs it before its end).
      if (this.#sentSessionCookie()) result.setCookie.push(this.#clearCookie());
      return result;
    }
    if (!keep) return this.#commitEmptied(now, result);
    if (!this.#stored) return this.#commitCreated(now, result);

    const rotation = engine.options.rotation;
    const rotate = this.#rotateRequested || (rotation !== null && this.#rotationDue(now));
    const changes = this.#changes(this.#snapshot, this.#metaSnapshot);
    const { data, meta } = changes;
    const userChanged = this.#userId !== this.#userIdBaseline;
    // Every save is guarded: a record another request already rotated away is never written to.
    const patch: SessionPatch = { lastSeenAt: now, expiresAt: this.#expiresAt(now), guard: SAVE_GUARD, keepLater: keepsExpiryChoice(meta) };
    if (data) patch.data = data;
    if (meta) patch.meta = meta;
    const maxBytes = this.#sizeBound(changes);
    if (maxBytes !== undefined) patch.maxBytes = maxBytes;
    if (userChanged) patch.userId = this.#userId;
    const touchDue = this.#touchDue(now);
    const needsSave = data !== null || meta !== null || userChanged || this.#forceSave;
    if (rotate) return this.#commitRotating(now, patch, result);
    return this.#commitStored(now, patch, needsSave, touchDue, result);
  }



  async #commitAfterLoad(status: number): Promise<CommitResult | null> {
    await this.#loading?.catch(() => undefined);
    return this.commitNow(status);
  }

  /** Nothing left to keep: the record goes, and so does the cookie. */
  async #commitEmptied(now: number, result: CommitResult): Promise<CommitResult> {
    const cycled = this.#stored ? undefined : this.#retired.find((entry) => entry.loaded !== undefined);
    // cycleId() on a view this request emptied: what parallel requests stored meanwhile moves to
    // the new id like any other cycle (found by the model-based test: it used to be deleted).
    if (cycled !== undefined) {
      const retired = await this.#retireEmptied(cycled, now);
      if (retired === 'kept') return this.#commitCreated(now, result);
      if (retired === 'deleted') {
        // Gone already: nothing for #destroyRetired to read or delete.
        this.#retired = this.#retired.filter((entry) => entry !== cycled);
        this.#engine.events.emit('destroyed', { handle: cycled.id, userId: this.#userIdBaseline, reason: 'emptied' });
      }
    }
    if (this.#stored && this.#id !== null) {
      const left = await this.#leftAfterEmptying(now);
      const id = this.#id;
      let kept = left === 'kept';
      if (left === 'deleted') this.#engine.events.emit('destroyed', { handle: id, userId: this.#userIdBaseline, reason: 'emptied' });
      if (left === 'empty') {
        try {
          await this.#engine.call('destroy', (store) => store.destroy(id));
          this.#engine.events.emit('destroyed', { handle: id, userId: this.#userIdBaseline, reason: 'emptied' });
        } catch {
          // The removals are saved already: an empty record left behind is emptied again later.
          kept = true;
        }
      }
      if (kept) {
        await this.#destroyRetired();
        return this.#afterSave(true, now, result, false);
      }
    }
    await this.#destroyRetired();
    if (this.#sentSessionCookie()) result.setCookie.push(this.#clearCookie());
    this.#stored = false;
    return result;
  }

  /**
   * This request's view is empty, but it may be stale: a parallel request may have stored keys
   * since it loaded. So its removals are saved like any change (per key, following a parallel
   * rotation), then the record is deleted if nothing is left in it: 'deleted', or 'kept' when
   * anything is (the record and the cookie stay), 'gone' when it no longer exists. A store with
   * `destroyIfEmpty` judges and deletes in one step; for others the record is re-read ('empty':
   * to be deleted), and a save landing between the re-read and the delete is lost with it.
   */
  async #leftAfterEmptying(now: number): Promise<'kept' | 'empty' | 'deleted' | 'gone'> {
    if (!(await this.#save(this.#savedChanges(this.#snapshot, this.#metaSnapshot, now)))) return 'gone';
    // The removals are saved: from here a failure keeps the record (and the cookie) rather than
    // failing a request whose changes already took effect.
    let outcome: EmptyDestroyResult | null;
    try {
      outcome = await this.#destroyIfEmpty(this.#id as string);
    } catch {
      return 'kept';
    }
    if (outcome !== null) return outcome === 'absent' ? 'gone' : outcome;
    let current: SessionRecord | null;
    try {
      current = await this.#getOrNull(this.#id as string);
    } catch {
      return 'kept';
    }
    if (current === null) return 'gone';
    return Object.keys(current.data).length > 0 || current.userId !== null || holdsMeta(Object.keys(current.meta)) ? 'kept' : 'empty';
  }

  /**
   * The record a `cycleId()` leaves, for a request whose view ended empty: this request's removals
   * are saved to it, then it is deleted if nothing is left, in one step where the store can
   * (`destroyIfEmpty`), so a parallel save either lands first and moves to the new id ('kept': the
   * cycle carries it over) or finds no record. A record rotated away or gone meanwhile, or a store
   * without the one-step delete, is judged by a re-read.
   */
  async #retireEmptied(retired: { id: string; loaded?: { data: Map<string, string>; meta: Map<string, string> } }, now: number): Promise<'kept' | 'deleted' | 'empty'> {
    const loaded = retired.loaded as { data: Map<string, string>; meta: Map<string, string> };
    const patch = this.#savedChanges(loaded.data, loaded.meta, now);
    const id = retired.id;
    if (await this.#engine.call('update', (store) => store.update(id, patch))) {
      const outcome = await this.#destroyIfEmpty(id);
      if (outcome !== null) return outcome === 'absent' ? 'empty' : outcome;
    }
    return (await this.#othersStoredIn(retired)) ? 'kept' : 'empty';
  }

  /** This request's changes against a baseline, as a guarded save at `now`. */
  #savedChanges(dataBaseline: Map<string, string>, metaBaseline: Map<string, string>, now: number): SessionPatch {
    const changes = this.#changes(dataBaseline, metaBaseline);
    const { data, meta } = changes;
    const patch: SessionPatch = { lastSeenAt: now, expiresAt: this.#expiresAt(now), guard: SAVE_GUARD, keepLater: keepsExpiryChoice(meta) };
    if (data) patch.data = data;
    if (meta) patch.meta = meta;
    const maxBytes = this.#sizeBound(changes);
    if (maxBytes !== undefined) patch.maxBytes = maxBytes;
    return patch;
  }

  /** The store's one-step "delete if nothing is left" (null: the store has none). */
  #destroyIfEmpty(id: string): Promise<EmptyDestroyResult | null> {
    return this.#engine.call('destroyIfEmpty', (store) => (store.destroyIfEmpty ? store.destroyIfEmpty(id, BOOKKEEPING_META) : null));
  }

  /**
   * Whether the record a `cycleId()` leaves holds anything this request did not load (keys or
   * engine fields a parallel request stored since), or was rotated meanwhile (the cycle follows).
   */
  async #othersStoredIn(retired: { id: string; loaded?: { data: Map<string, string>; meta: Map<string, string> } }): Promise<boolean> {
    const record = await this.#getOrNull(retired.id);
    if (record === null) return false;
    if (record.meta[META_MOVED] !== undefined) return true;
    const loaded = retired.loaded as { data: Map<string, string>; meta: Map<string, string> };
    if (Object.keys(record.data).some((key) => !loaded.data.has(key))) return true;
    return holdsMeta(Object.keys(record.meta).filter((key) => !loaded.meta.has(key)));
  }

  /** First save of a session (or the first after a reset or id cycle): a new record and cookie. */
  async #commitCreated(now: number, result: CommitResult): Promise<CommitResult> {
    const cycled = this.#retired.find((entry) => entry.loaded !== undefined);
    let token: string;
    if (cycled === undefined) {
      token = await this.#create(now);
      await this.#destroyRetired();
    } else {
      const done = await this.#cycle(cycled, now);
      token = done.token;
      // Claimed already, it leads no cookie anywhere; it stays until it expires (CYCLED_HOLD_MS)
      // so that a logout or revoke racing this commit follows its movedTo to the new record.
      this.#retired = this.#retired.filter((entry) => entry !== cycled);
      this.#engine.events.emit('destroyed', { handle: done.ended, userId: this.#userIdBaseline, reason: 'cycled' });
      await this.#destroyRetired().catch(() => undefined);
    }
    result.setCookie.push(this.#cookie(token, now));
    return result;
  }

  /**
   * Commits a `cycleId()`: the new record is written first, then the old one is claimed (a guarded
   * write, following a parallel rotation's forwarders) with a mark that forwards nowhere, so from
   * then on no parallel request can save to it or spend a token on it, and no old cookie leads to
   * the new session. Then the new record takes on the old one as it is now, with this request's
   * changes on top: keys parallel requests saved stay, tokens they spent stay spent, and a
   * session ended meanwhile (logout, a kill) fails the request instead of coming back.
   */
  async #cycle(retired: { id: string; token: string | null; loaded?: { data: Map<string, string>; meta: Map<string, string> } }, now: number): Promise<{ token: string; ended: string }> {
    const engine = this.#engine;
    const loaded = retired.loaded as { data: Map<string, string>; meta: Map<string, string> };
    const ours = this.#changes(loaded.data, loaded.meta);
    const token = await this.#create(now, undefined, false, true);
    const newId = this.#id as string;
    let target = { id: retired.id, token: retired.token as string };
    try {
      for (let hop = 0; ; hop++) {
        const { id } = target;
        const claimed = await engine.call('update', (store) =>
          store.update(id, {
            meta: { set: { [META_MOVED]: CYCLED_MARK, [META_MOVED_TO]: newId } },
            userId: FORWARDER_USER,
            guard: { absent: [META_MOVED] },
            lastSeenAt: now,
            // Deleted right after this; should that fail, it expires soon and leads nowhere.
            expiresAt: Math.min(now + CYCLED_HOLD_MS, this.#expiresAt(now)),
          }),
        );
        if (claimed) break;
        // Gone, expired, or rotated by a parallel request: follow its forwarder, if any.
        const record = hop < MAX_FORWARD_HOPS ? await this.#getOrNull(id) : null;
        const next = record === null ? null : openForward(record.meta[META_MOVED], target.token);
        if (next === null || !isWellFormedToken(next)) throw new SessionGoneError();
        target = { id: hashToken(next), token: next };
      }
    } catch (error) {
      await this.#discard(newId);
      this.#stored = false;
      throw error;
    }
    let left: SessionRecord;
    try {
      left = await this.#carryOver(target.id, newId, ours, now, true);
    } catch (error) {
      if (!(error instanceof SessionGoneError)) {
        // The store failed after the claim: keep no half-made session (a device no browser
        // holds), and give the old cookie its session back if the store lets us.
        await this.#releaseClaim(target.id, newId, now);
        this.#stored = false;
      }
      throw error;
    }
    engine.events.emit('created', { handle: newId, userId: this.#userId });
    await this.#reduceToStub(target.id, left, now);
    // The record claimed (after a parallel rotation, the one it led to): the session ended here.
    return { token, ended: target.id };
  }

  /**
   * Best effort: undoes a cycleId's claim of `id`, so the old cookie works again after a failed
   * commit, and deletes the new record `newId`. While claimed, the session's only record under its
   * user is the new one, so a kill or revoke racing the commit deleted that: the claim is undone
   * only if the new record is seen alive *after* the release (from then on a kill finds the old
   * record under the user again); otherwise, or when the check fails, the old record is deleted
   * too. A failure never brings back a killed session; at worst it signs the user out.
   */
  async #releaseClaim(id: string, newId: string, now: number): Promise<void> {
    const patch: SessionPatch = {
      meta: { unset: [META_MOVED, META_MOVED_TO] },
      userId: this.#userIdBaseline,
      guard: { present: [META_MOVED] },
      lastSeenAt: now,
      expiresAt: this.#expiresAt(now),
    };
    const released = await this.#engine.call('update', (store) => store.update(id, patch)).catch(() => false);
    // A write, not a read: it answers false for a deleted record, as a read would, and works
    // where only the carry-over's read failed.
    const times = { lastSeenAt: now, expiresAt: this.#expiresAt(now) };
    const alive = released && (await this.#engine.call('touch', (store) => store.touch(newId, times)).catch(() => false));
    // Alive: the old record is back and the new one goes. Otherwise both go (the new record,
    // still under the user, would be a device no browser holds).
    await this.#discard(newId);
    if (!alive) await this.#discard(id);
  }

  /** Rotation due: move to a new id; if another request claimed the rotation, save as usual. */
  async #commitRotating(now: number, patch: SessionPatch, result: CommitResult): Promise<CommitResult> {
    if (await this.#rotate(now)) {
      result.setCookie.push(this.#cookie(this.#token as string, now));
      return result;
    }
    return this.#commitStored(now, patch, true, false, result);
  }

  /**
   * An existing record: write the changed keys, or just refresh its times when a touch is due.
   * A touch is a guarded update too, never the store's unguarded `touch`: a record a parallel
   * request has just rotated away must keep its short grace-window life.
   */
  #commitStored(now: number, patch: SessionPatch, needsSave: boolean, touchDue: boolean, result: CommitResult): Awaitable<CommitResult> {
    if (needsSave || touchDue) {
      const touchOnly = !needsSave;
      const saved = this.#save(patch);
      return isPromiseLike(saved) ? saved.then((ok) => this.#afterSave(ok, now, result, touchOnly)) : this.#afterSave(saved, now, result, touchOnly);
    }
    // No write: the cookie's Max-Age counts to the deadline the record keeps.
    if (this.#cookieChanged) result.setCookie.push(this.#refreshCookie(now, Math.min(this.#expiresAt(this.#lastSeenAt), this.#storedExpiresAt)));
    return result;
  }

  #afterSave(saved: boolean, now: number, result: CommitResult, touchOnly: boolean): CommitResult {
    if (!saved) {
      // Ended elsewhere meanwhile. A touch had nothing of ours to save: just drop the dead cookie.
      if (!touchOnly) throw new SessionGoneError();
      result.setCookie.push(this.#clearCookie());
      return result;
    }
    this.#lastSeenAt = now;
    this.#storedExpiresAt = this.#expiresAt(now); // what this write stored (the getters read it)
    this.#engine.events.emit('saved', { handle: this.#id as string, userId: this.#userId, touch: touchOnly });
    if (this.#persistentCookie()) this.#cookieChanged = true;
    return this.#withRefreshedCookie(now, result);
  }

  #withRefreshedCookie(now: number, result: CommitResult): CommitResult {
    if (this.#cookieChanged) result.setCookie.push(this.#refreshCookie(now));
    return result;
  }

  /** Commit for stateless sessions: re-seal the whole record into the cookie when anything changed. */
  #commitSealed(client: ClientStore, keep: boolean, now: number, result: CommitResult): CommitResult {
    if (!keep) {
      if (this.#sentSessionCookie()) result.setCookie.push(this.#clearCookie());
      return result;
    }
    const { data, meta } = this.#stored ? this.#changes(this.#snapshot, this.#metaSnapshot) : this.#changes(new Map(), new Map());
    const touchDue = this.#touchDue(now);
    const requested = !this.#stored || data !== null || meta !== null || this.#userId !== this.#userIdBaseline || this.#forceSave;
    if (!requested && !this.#cookieChanged && !touchDue) return result;
    const created = !this.#stored;
    const id = this.#id ?? randomToken(32);
    let value: string;
    let header: string;
    try {
      value = this.#seal(client, id, created, now);
      header = this.#cookie(value, now);
    } catch (error) {
      // A re-seal only coatcheck wanted (a touch, a newer key, the client's longer address) that
      // would outgrow the cookie: the browser keeps the one it has, which still opens, rather
      // than every request of the session failing with 413 until it expires.
      if (requested || !(error instanceof CookieTooLargeError || error instanceof SessionTooLargeError)) throw error;
      warnResealTooLarge(error);
      return result;
    }
    result.setCookie.push(header);
    this.#id = id;
    this.#token = value;
    this.#stored = true;
    this.#lastSeenAt = now;
    this.#storedExpiresAt = this.#expiresAt(now); // what this write stored (the getters read it)
    if (created) this.#engine.events.emit('created', { handle: id, userId: this.#userId });
    return result;
  }

  /** The whole session as one sealed cookie value, at `now`. */
  #seal(client: ClientStore, id: string, created: boolean, now: number): string {
    return client.seal(
      {
        id,
        userId: this.#userId,
        data: objectFromEntries(this.#data),
        meta: created ? this.#birthMeta(objectFromEntries(this.#meta)) : objectFromEntries(this.#meta),
        createdAt: this.#createdAt,
        lastSeenAt: now,
        expiresAt: this.#expiresAt(now),
        ip: clipped(this.#request().ip, MAX_STORED_IP),
        userAgent: clipped(this.#request().userAgent, MAX_STORED_USER_AGENT),
      },
      this.#engine.options.cookie.name,
    );
  }

  /**
   * Writes a patch where the session lives now: if another request rotated the id meanwhile, the
   * patch follows the session to its new id (and the new cookie is sent) instead of failing.
   */
  #save(patch: SessionPatch): Awaitable<boolean> {
    const id = this.#id as string;
    const saved = this.#engine.callNow('update', (store) => store.update(id, patch));
    if (isPromiseLike(saved)) return saved.then((ok) => ok || this.#saveElsewhere(patch));
    return saved || this.#saveElsewhere(patch);
  }

  /** The guarded write failed: follow the session to its rotated id, a few hops at most. */
  async #saveElsewhere(patch: SessionPatch): Promise<boolean> {
    for (let hop = 0; hop < MAX_FORWARD_HOPS; hop++) {
      if (!(await this.#relocate())) return false;
      const id = this.#id as string;
      if (await this.#engine.call('update', (store) => store.update(id, patch))) return true;
    }
    return false;
  }

  /** After a failed guarded write: moves this session onto its rotated id if there is one. */
  async #relocate(): Promise<boolean> {
    const id = this.#id as string;
    const record = await this.#getOrNull(id);
    if (!record || record.meta[META_MOVED] === undefined) return false;
    const next = await this.#follow(this.#token as string, record);
    if (!next) return false;
    this.#token = next.token;
    this.#id = next.record.id;
    this.#cookieChanged = true;
    return true;
  }

  /**
   * Rotates the id keeping the data. The new record is written first, so a store failure leaves
   * the old one untouched; then the old record is claimed (a guarded write: only one of several
   * parallel requests can), which leaves it forwarding to the new one for the grace window.
   * Finally whatever parallel requests saved to the old record before the claim is carried over.
   * Resolves false when another request claimed the rotation first.
   */
  async #rotate(now: number): Promise<boolean> {
    const engine = this.#engine;
    const grace = (engine.options.rotation?.grace ?? DEFAULT_GRACE) * 1000;
    const old = { id: this.#id as string, token: this.#token as string, lastSeenAt: this.#lastSeenAt };
    const bookkeeping = { requests: this.#meta.get(META_REQUESTS), rotatedAt: this.#meta.get(META_ROTATED_AT) };
    const oldExpiresAt = this.#expiresAt(now);
    this.#meta.delete(META_REQUESTS);
    this.#meta.set(META_ROTATED_AT, now);
    // This request's own changes, against the record as it loaded it.
    const ours = this.#changes(this.#snapshot, this.#metaSnapshot);
    const undo = (): void => {
      this.#id = old.id;
      this.#token = old.token;
      this.#stored = true;
      this.#lastSeenAt = old.lastSeenAt;
      if (bookkeeping.requests === undefined) this.#meta.delete(META_REQUESTS);
      else this.#meta.set(META_REQUESTS, bookkeeping.requests);
      if (bookkeeping.rotatedAt === undefined) this.#meta.delete(META_ROTATED_AT);
      else this.#meta.set(META_ROTATED_AT, bookkeeping.rotatedAt);
    };
    this.#stored = false;
    let newToken: string;
    try {
      // Without one-time tokens: the claim below makes the new record reachable before the
      // carry-over, and a token spent on the old record meanwhile must not be spendable there.
      // The carry-over adds the ones still unspent; should it fail (the store, after the claim),
      // outstanding tokens are lost: refused, never spendable twice.
      newToken = await this.#create(now, undefined, false, true);
    } catch (error) {
      undo();
      throw error;
    }
    const newId = this.#id as string;
    let claimed: boolean;
    try {
      claimed = await engine.call('update', (store) =>
        store.update(old.id, {
          meta: { set: { [META_MOVED]: sealForward(newToken, old.token), [META_MOVED_TO]: newId } },
          // No device of the user's, and no guest session (see FORWARDER_USER).
          userId: FORWARDER_USER,
          guard: { absent: [META_MOVED] },
          lastSeenAt: now,
          expiresAt: Math.min(now + grace, oldExpiresAt),
        }),
      );
    } catch (error) {
      await this.#discard(newId);
      undo();
      throw error;
    }
    if (!claimed) {
      await this.#discard(newId);
      undo();
      return false;
    }
    engine.events.emit('created', { handle: newId, userId: this.#userId });
    this.#rotateRequested = false;
    engine.events.emit('rotated', { from: old.id, to: newId, userId: this.#userId });
    // Not refused for size: the claim forwards to the new record, so another request may already
    // have followed it, saved there and handed the new cookie to its browser; refusing (or undoing
    // the rotation) would lose what parallel requests saved. The merge of this request's view with
    // what they saved to the old record meanwhile may leave the session over maxDataSize, by at
    // most this request's own changes: later saves that would grow it are refused until it shrinks.
    const left = await this.#carryOver(old.id, newId, ours, now, true, false);
    await this.#reduceToStub(old.id, left, now);
    return true;
  }

  /**
   * After a rotation's claim: the old record is final (every later guarded save follows the
   * forwarder), so re-read it and give the new record what parallel requests saved there since
   * this request loaded it, with this request's own changes on top. Resolves to the old record as
   * read.
   */
  async #carryOver(
    oldId: string,
    newId: string,
    ours: { data: KeyChanges | null; meta: KeyChanges | null },
    now: number,
    createdWithoutOneTime: boolean,
    bounded = true,
  ): Promise<SessionRecord> {
    const current = await this.#getOrNull(oldId);
    if (current === null) {
      // Ended meanwhile (a logout elsewhere): the new record must not outlive it.
      await this.#discard(newId);
      this.#stored = false;
      throw new SessionGoneError();
    }
    const data = { ...current.data };
    applyKeyChanges(data, ours.data ?? undefined);
    const meta = { ...current.meta };
    delete meta[META_MOVED];
    delete meta[META_MOVED_TO];
    applyKeyChanges(meta, ours.meta ?? undefined);
    // The new record holds this request's view: write only where the merged state differs.
    const written = { data: serialized(this.#data), meta: serialized(this.#meta) };
    if (createdWithoutOneTime) for (const key of [...written.meta.keys()]) if (key.startsWith(META_ONE_TIME)) written.meta.delete(key);
    this.#data.clear();
    this.#meta.clear();
    takeOn(data, this.#data, new Map());
    takeOn(meta, this.#meta, new Map());
    // The user is this request's: a record changes user only by being replaced (login, logout).
    // Unbounded (a rotation), the merge is measured against itself: never refused (see #rotate).
    const changes = bounded ? this.#changes(written.data, written.meta) : this.#changes(written.data, written.meta, serialized(this.#data), serialized(this.#meta));
    this.#snapshot = written.data;
    this.#metaSnapshot = written.meta;
    if (changes.data === null && changes.meta === null) return current;
    // keepLater too: a request that followed the rotation may have saved its expiry choice to the
    // new record already, which the old record this merge read does not hold.
    const patch: SessionPatch = { lastSeenAt: now, expiresAt: this.#expiresAt(now), guard: SAVE_GUARD, keepLater: keepsExpiryChoice(changes.meta) };
    if (changes.data) patch.data = changes.data;
    if (changes.meta) patch.meta = changes.meta;
    // Bounded like any save (a cycle): a request that followed it may have saved to the new record.
    const maxBytes = bounded ? this.#sizeBound(changes) : undefined;
    if (maxBytes !== undefined) patch.maxBytes = maxBytes;
    if (!(await this.#save(patch))) throw new SessionGoneError();
    return current;
  }

  /**
   * After a carry-over: the record a rotation or a cycle left behind (claimed, so final: every
   * save is guarded and no request writes to it again) keeps only what following it needs, its
   * `moved` and `movedTo` and its times, not a copy of the session for its grace window or the
   * minute a cycled record is held: the data is in the new record already, and nothing reads it
   * there (a request following it, a logout or revoke ending it, a save or token spend refused
   * by its guard: see forwarding.ts). Best effort: it expires soon anyway.
   */
  async #reduceToStub(id: string, left: SessionRecord, now: number): Promise<void> {
    const data = Object.keys(left.data);
    const meta = Object.keys(left.meta).filter((key) => key !== META_MOVED && key !== META_MOVED_TO);
    if (data.length === 0 && meta.length === 0) return;
    const patch: SessionPatch = {
      // Still the record this request claimed (a claim is never undone once carried over).
      guard: { present: [META_MOVED] },
      // Its times stay as the claim set them.
      lastSeenAt: now,
      expiresAt: left.expiresAt,
      keepLater: true,
    };
    if (data.length > 0) patch.data = { unset: data };
    if (meta.length > 0) patch.meta = { unset: meta };
    await this.#engine.call('update', (store) => store.update(id, patch)).catch(() => undefined);
  }

  /** Best effort: deletes a record this request wrote but must not keep (it expires anyway). */
  async #discard(id: string): Promise<void> {
    await this.#engine.call('destroy', (store) => store.destroy(id)).catch(() => undefined);
  }

  /** Whether `rotation.afterSeconds` has passed since the last rotation (or creation). */
  #rotationTimeDue(now: number): boolean {
    const afterSeconds = this.#engine.options.rotation?.afterSeconds ?? null;
    if (afterSeconds === null) return false;
    const rotatedAt = this.#meta.get(META_ROTATED_AT);
    const since = typeof rotatedAt === 'number' ? rotatedAt : this.#createdAt;
    return now - since >= afterSeconds * 1000;
  }

  /** Whether automatic rotation is due; counts requests when `afterRequests` is set. */
  #rotationDue(now: number): boolean {
    const rotation = this.#engine.options.rotation;
    if (rotation === null) return false;
    if (this.#rotationTimeDue(now)) return true;
    if (rotation.afterRequests !== null) {
      const count = this.#meta.get(META_REQUESTS);
      const next = (typeof count === 'number' ? count : 0) + 1;
      if (next >= rotation.afterRequests) return true;
      this.#meta.set(META_REQUESTS, next);
    }
    return false;
  }

  /** Follows a rotated record to the session it moved to (polling briefly while it is written). */
  async #follow(oldToken: string, moved: SessionRecord): Promise<{ token: string; record: SessionRecord } | null> {
    let token = oldToken;
    let record = moved;
    for (let hop = 0; hop < MAX_FORWARD_HOPS && record.meta[META_MOVED] !== undefined; hop++) {
      const next = openForward(record.meta[META_MOVED], token);
      if (next === null || !isWellFormedToken(next)) return null;
      const nextId = hashToken(next);
      // The rotating request writes the new record before the old one forwards to it: one read.
      const found = await this.#getOrNull(nextId);
      if (found === null) return null;
      token = next;
      record = found;
    }
    return record.meta[META_MOVED] === undefined ? { token, record } : null;
  }

  /**
   * Whether the request carried this response's session cookie: one that came under the
   * plain-HTTP name over HTTPS is cleared by its own header, and the `__Host-` one it never sent
   * is left alone (a parallel response may just have set it).
   */
  #sentSessionCookie(): boolean {
    // Two values of our name: the configured scope's may be the client's own, beside one a
    // sibling subdomain planted with a Domain we never clear. Clearing ours would leave only the
    // planted one, signing the client in to someone else's session on the next request; left
    // alone, the request stays ambiguous (no session) until the other is cleared or expires.
    return this.#cookieSent && !this.#fromPlainHttp && !this.#ambiguousCookie;
  }

  #refreshCookie(now: number, expiresAt?: number): string {
    return this.#token === null ? this.#clearCookie() : this.#cookie(this.#token, now, expiresAt);
  }

  async #create(now: number, presetToken?: string, announce = true, withoutOneTime = false): Promise<string> {
    const data = this.#changes(new Map(), new Map(), this.#snapshot, this.#metaSnapshot).data?.set ?? {};
    const meta = this.#birthMeta(objectFromEntries(this.#meta));
    if (withoutOneTime) for (const key of Object.keys(meta)) if (key.startsWith(META_ONE_TIME)) delete meta[key];
    const engine = this.#engine;
    // A collision of 256-bit ids is not going to happen; one retry keeps the contract honest.
    for (let attempt = 0; ; attempt++) {
      const token = attempt === 0 && presetToken !== undefined ? presetToken : generateToken();
      const id = hashToken(token);
      const record: SessionRecord = {
        id,
        userId: this.#userId,
        data,
        meta,
        createdAt: this.#createdAt,
        lastSeenAt: now,
        expiresAt: this.#expiresAt(now),
        ip: clipped(this.#request().ip, MAX_STORED_IP),
        userAgent: clipped(this.#request().userAgent, MAX_STORED_USER_AGENT),
      };
      try {
        await engine.call('create', (store) => store.create(record));
      } catch (error) {
        if (error instanceof StoreConflictError && attempt === 0) continue;
        throw error;
      }
      this.#token = token;
      this.#id = id;
      this.#stored = true;
      this.#lastSeenAt = now;
      this.#storedExpiresAt = this.#expiresAt(now); // what this write stored (the getters read it)
      if (announce) engine.events.emit('created', { handle: id, userId: this.#userId });
      return token;
    }
  }

  async #destroyRetired(): Promise<void> {
    const retired = this.#retired;
    this.#retired = [];
    for (const { id, token } of retired) await this.#destroyChain(id, token, this.#userIdBaseline, 'cycled');
  }

  /**
   * Ends a record and the records a parallel rotation or cycle made of it (see `endChain`). Never
   * follows into this request's own record: a record it cycled away leads to it (kept), and a
   * logout ends it on its own.
   */
  async #destroyChain(id: string, token: string | null, userId: string | null, reason: DestroyReason): Promise<void> {
    const engine = this.#engine;
    await endChain(engine, id, token, this.#id, (handle) =>
      // The user is the session's (a forwarder's own is the reserved `__moved__`).
      engine.events.emit('destroyed', { handle, userId, reason }),
    );
  }

  /** A store read where a corrupt record counts as none. */
  #getOrNull(id: string): Promise<SessionRecord | null> {
    return this.#engine.call('get', (store) => store.get(id)).catch((error: unknown) => {
      if (error instanceof CorruptRecordError) return null;
      throw error;
    });
  }

  /**
   * What changed in data and meta since their baselines, after checking the whole session against
   * `maxDataSize` (UTF-8 bytes of keys and serialized values, engine meta such as flash messages
   * included), so no request makes a session oversize. A session that arrived oversize (parallel
   * requests' keys merged in the store, each within the limit alone) still commits changes that
   * do not make it larger, so a read-only request or one that removes keys is never refused.
   */
  #changes(
    dataBaseline: Map<string, string>,
    metaBaseline: Map<string, string>,
    // What the size is judged against, when not the diff's baseline (a rotation writes the whole
    // session to a new record, but does not make it larger than it was loaded).
    loadedData = dataBaseline,
    loadedMeta = metaBaseline,
  ): SessionChanges {
    const data = this.#diff(this.#data, dataBaseline, true);
    const meta = this.#diff(this.#meta, metaBaseline, false);
    const bytes = data.bytes + meta.bytes;
    const limit = this.#engine.options.maxDataSize;
    if (bytes > limit && this.#grew(bytes, loadedData, loadedMeta)) throw new SessionTooLargeError(bytes, limit);
    return { data: data.changes, meta: meta.changes, bytes };
  }

  /**
   * The size bound a save that sets keys carries (SessionPatch.maxBytes), for the store to check
   * atomically with the write: parallel requests on one session each pass the check above on
   * their own view, and the store merges their keys, so only the store can see their sum.
   * `maxDataSize`, or this view's own size when it is over that already (a session that arrived
   * oversize and that this request did not make larger), so that a save whose record is what this
   * request sees is never refused by the store. undefined for a save that sets nothing.
   */
  #sizeBound(changes: SessionChanges): number | undefined {
    if (changes.data?.set === undefined && changes.meta?.set === undefined) return undefined;
    return Math.max(this.#engine.options.maxDataSize, changes.bytes);
  }

  /**
   * Whether this request made the session larger than it loaded it, not counting the engine's
   * own rotation bookkeeping (a request counter that gains a digit must not fail a read-only
   * request to an oversize session).
   */
  #grew(bytes: number, dataBaseline: Map<string, string>, metaBaseline: Map<string, string>): boolean {
    let before = serializedBytes(dataBaseline) + serializedBytes(metaBaseline);
    let now = bytes;
    for (const key of BOOKKEEPING_META) {
      const was = metaBaseline.get(key);
      if (was !== undefined) before -= Buffer.byteLength(key) + Buffer.byteLength(was);
      if (this.#meta.has(key)) now -= Buffer.byteLength(key) + Buffer.byteLength(JSON.stringify(this.#meta.get(key)));
    }
    return now > before;
  }

  /**
   * Per-key changes between the live values and their serialized baseline. In-place mutation of
   * nested values shows up here because the comparison is on the serialized form.
   */
  #diff(values: Map<string, JsonValue>, baseline: Map<string, string>, checkValues: boolean): { changes: KeyChanges | null; bytes: number } {
    let set: Record<string, JsonValue> | undefined;
    let unset: string[] | undefined;
    let bytes = 0;
    for (const [key, value] of values) {
      let json: string;
      try {
        json = JSON.stringify(value);
      } catch {
        assertJson(key, value);
        throw new InvalidValueError(key, 'it cannot be serialized');
      }
      bytes += Buffer.byteLength(key) + Buffer.byteLength(json);
      if (baseline.get(key) !== json) {
        if (checkValues) assertJson(key, value);
        set ??= {};
        setOwn(set, key, value);
      }
    }
    for (const key of baseline.keys()) if (!values.has(key)) (unset ??= []).push(key);
    let changes: KeyChanges | null = null;
    if (set || unset) {
      changes = {};
      if (set) changes.set = set;
      if (unset) changes.unset = unset;
    }
    return { changes, bytes };
  }

  #persistentCookie(): boolean {
    return !this.getExpireAtBrowserClose();
  }

  #cookie(value: string, now: number, expiresAt = this.#expiresAt(now)): string {
    // Rounded up: a cookie that dies before its session (Max-Age=0 for 0.4 s left) signs the user
    // out early; one that outlives it by less than a second is refused by the server.
    const maxAge = this.#persistentCookie() ? Math.max(0, Math.ceil((expiresAt - now) / 1000)) : undefined;
    return sessionCookie(this.#engine.options.cookie, this.#request().https, value, maxAge);
  }

  #clearCookie(): string {
    return clearedSessionCookie(this.#engine.options.cookie, this.#request().https);
  }
}

let warnedResealTooLarge = false;

/** Once per process: a cookie-store session kept its old cookie because a re-seal would not fit. */
function warnResealTooLarge(error: Error): void {
  if (warnedResealTooLarge) return;
  warnedResealTooLarge = true;
  process.emitWarning(
    `coatcheck: a cookie-store session kept its cookie unchanged: re-sealing it (a touch, a newer key, a longer client address) would not fit (${error.message}). ` +
      'It still opens until it expires; keep sessions further below the limit (docs/stores/cookie.md). Said once per process.',
    { code: 'COATCHECK_RESEAL_TOO_LARGE' },
  );
}

/** UTF-8 bytes of keys and serialized values, as `maxDataSize` counts them. */
function serializedBytes(values: Map<string, string>): number {
  let bytes = 0;
  for (const [key, json] of values) bytes += Buffer.byteLength(key) + Buffer.byteLength(json);
  return bytes;
}

/** Each value's JSON form: the baseline a record written from these values compares against. */
function serialized(values: Map<string, JsonValue>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [key, value] of values) out.set(key, JSON.stringify(value));
  return out;
}

/** Copies a record's object into a live map and its serialized baseline (own keys, `__proto__` included). */
function takeOn(object: Record<string, JsonValue>, live: Map<string, JsonValue>, baseline: Map<string, string>): void {
  for (const key of Object.keys(object)) {
    const value = object[key] as JsonValue;
    live.set(key, value);
    baseline.set(key, JSON.stringify(value));
  }
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidValueError(String(key), 'keys must be non-empty strings');
  assertJson(key, key); // same string rules for keys as for values
}
