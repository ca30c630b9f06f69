/**
 * `createSessions` options, their defaults, and the checks that make misconfiguration throw at
 * setup instead of failing per request.
 */
import { ConfigError } from '../errors.js';
import { refuseUnknownOptions } from './known-options.js';
import { isValidAttributeValue, isValidCookieName } from '../cookie/serialize.js';
import { type AnyStore, isClientStore } from '../stores/types.js';
import { type Clock, systemClock } from './clock.js';
import { MAX_TIMER_MS } from './timer.js';

export interface CookieOptions {
  /** Cookie name. Default `sid` (generic: it does not fingerprint the library). */
  name?: string | undefined;
  /**
   * `true`: always Secure. `false`: never (local development only). `'auto'` (default): Secure
   * when the request arrived over HTTPS (adapters consult `trustProxy` for X-Forwarded-Proto).
   */
  secure?: boolean | 'auto' | undefined;
  /** Default `lax`. `none` requires `secure: true`. */
  sameSite?: 'lax' | 'strict' | 'none' | undefined;
  /** Default `/`. */
  path?: string | undefined;
  /** Default: none (host-only cookie, the narrowest scope). */
  domain?: string | undefined;
  /** Default true. */
  httpOnly?: boolean | undefined;
  /** CHIPS partitioned cookie. Default false. */
  partitioned?: boolean | undefined;
  /**
   * false (default): a browser-session cookie, gone when the browser closes (ViUR's
   * `use_session_cookie`). true: the cookie carries Max-Age up to the session's expiry
   * (appengine-utilities' `set_cookie_expires`). The server enforces expiry either way.
   */
  persistent?: boolean | undefined;
  /**
   * Prefix the name with `__Host-` on Secure cookies (or `__Secure-` when a domain is set), so
   * subdomains and plain-HTTP pages cannot plant or overwrite it. Default true.
   */
  prefix?: boolean | undefined;
  /**
   * Scopes this cookie had before a change of `domain` or `path`. The browser keeps the old cookie
   * beside the new one, and a request carrying both has no session (which one is ours is
   * unknown); its response then clears the cookie in each of these scopes, and in the default
   * scope (host-only, `/`), so the next sign-in sticks. Only needed when the old scope was not the
   * default one (docs/operations.md). Default: none.
   */
  previousScopes?: readonly { domain?: string | undefined; path?: string | undefined }[] | undefined;
}

export interface SessionsOptions {
  /** Where sessions are kept: a server store, or `cookieStore()` for stateless sessions. */
  store: AnyStore;
  cookie?: CookieOptions | undefined;
  /** Seconds without a request after which a session ends (server-side). Default 3600 (ViUR). */
  idleTimeout?: number | undefined;
  /** Seconds after creation after which a session ends however active it is. Default 7 days. */
  absoluteTimeout?: number | undefined;
  /**
   * Seconds between writes that only refresh the idle timer (requests that change no data).
   * Default: the smaller of 300 (ViUR's 5 minutes) and half the idle timeout.
   */
  touchInterval?: number | undefined;
  /** Keys copied into the new session on `login()`. Default `['language']` (ViUR). */
  persistentFieldsOnLogin?: readonly string[] | undefined;
  /** Keys copied into the new session on `logout()`. Default `['language']` (ViUR). */
  persistentFieldsOnLogout?: readonly string[] | undefined;
  /** Milliseconds a store call may take before it fails with a timeout. Default 5000. */
  storeTimeout?: number | undefined;
  /** Largest serialized session data accepted at save, in bytes. Default 64 KiB. */
  maxDataSize?: number | undefined;
  /** Trust X-Forwarded-For / X-Forwarded-Proto from a proxy in front of the app. Default false. */
  trustProxy?: boolean | undefined;
  /**
   * Make each request's session reachable anywhere inside it with `currentSession()` /
   * `useSession()` (AsyncLocalStorage). Default true. `false` skips AsyncLocalStorage: on Node 20
   * its async hooks add a cost to every promise of the process (measured: about a fifth of the
   * throughput of a minimal node:http app, see docs/benchmarks.md); the session is then reached
   * through the adapter only (`getSession(req)`, `req.session`, `ctx.session`, `c.get('session')`).
   */
  context?: boolean | undefined;
  /**
   * End a session when the client's IP and/or User-Agent differ from the ones it was created
   * with (appengine-utilities' check_ip / check_user_agent). Off by default: NAT, mobile networks
   * and browser updates change these legitimately. Behind a proxy set `trustProxy`.
   */
  binding?: { ip?: boolean | undefined; userAgent?: boolean | undefined } | undefined;
  /**
   * ViUR's rule for a session created over plain HTTP that later arrives over HTTPS: its id is
   * always replaced, and its data is dropped unless this is true. Default false. Its user (a
   * login over plain HTTP), CSRF tokens and flash messages are never kept: a plain cookie can be
   * planted by anyone on the path or on a sibling domain.
   */
  keepDataOnHttpsUpgrade?: boolean | undefined;
  /**
   * Automatic id rotation (appengine-utilities' session_token_ttl), keeping the data. The old id
   * keeps resolving to the new session for `grace` seconds so parallel in-flight requests are not
   * logged out or forked. `afterSeconds`: rotate when the id is this old. `afterRequests`: rotate
   * after this many requests (costs a small write on every request to count them).
   */
  rotation?: { afterSeconds?: number | undefined; afterRequests?: number | undefined; grace?: number | undefined } | undefined;
  /**
   * At most this many sessions per user (checked at `login()`). `evict-oldest` (default) ends the
   * user's oldest sessions to make room; `refuse-new` makes `login()` throw TooManySessionsError.
   */
  maxSessionsPerUser?: number | { limit: number; strategy?: 'evict-oldest' | 'refuse-new' | undefined } | undefined;
  /**
   * Fraction of session-using requests (0–1) that also sweep one batch of expired sessions in the
   * background (appengine-utilities' clean_check_percent). Default 0: run `clearExpired()` on a
   * schedule or the CLI instead.
   */
  cleanupProbability?: number | undefined;
  /** Time source (ms since epoch). Tests pass a controllable clock. */
  clock?: Clock | undefined;
}

export interface ResolvedRotation {
  afterSeconds: number | null;
  afterRequests: number | null;
  grace: number;
}

export interface ResolvedCookie {
  name: string;
  secure: boolean | 'auto';
  sameSite: 'lax' | 'strict' | 'none';
  path: string;
  domain: string | undefined;
  httpOnly: boolean;
  partitioned: boolean;
  persistent: boolean;
  prefix: boolean;
  previousScopes: readonly { domain: string | undefined; path: string }[];
}

export interface ResolvedOptions {
  store: AnyStore;
  cookie: ResolvedCookie;
  idleTimeout: number;
  absoluteTimeout: number;
  touchInterval: number;
  persistentFieldsOnLogin: readonly string[];
  persistentFieldsOnLogout: readonly string[];
  storeTimeout: number;
  maxDataSize: number;
  trustProxy: boolean;
  /** Whether adapters run requests inside AsyncLocalStorage (`currentSession()`). */
  context: boolean;
  binding: { ip: boolean; userAgent: boolean };
  keepDataOnHttpsUpgrade: boolean;
  /** null when automatic rotation is off; forwarders are still followed within their grace. */
  rotation: ResolvedRotation | null;
  maxSessionsPerUser: { limit: number; strategy: 'evict-oldest' | 'refuse-new' } | null;
  cleanupProbability: number;
  clock: Clock;
}

/** A host name (a leading dot, as some apps still write it, is allowed). */
const DOMAIN = /^\.?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/** Boolean options must be booleans: the string "false" (an environment variable) would read as true. */
function flag(name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(value)}`);
}

/** Every option name, checked against the interfaces by the compiler (`satisfies`). */
const SESSIONS_OPTIONS = Object.keys({
  store: true, cookie: true, idleTimeout: true, absoluteTimeout: true, touchInterval: true, persistentFieldsOnLogin: true,
  persistentFieldsOnLogout: true, storeTimeout: true, maxDataSize: true, trustProxy: true, context: true, binding: true,
  keepDataOnHttpsUpgrade: true, rotation: true, maxSessionsPerUser: true, cleanupProbability: true, clock: true,
} satisfies Record<keyof SessionsOptions, true>);
const COOKIE_OPTIONS = Object.keys({
  name: true, secure: true, sameSite: true, path: true, domain: true, httpOnly: true, partitioned: true, persistent: true, prefix: true, previousScopes: true,
} satisfies Record<keyof CookieOptions, true>);
const BINDING_OPTIONS = Object.keys({ ip: true, userAgent: true } satisfies Record<keyof NonNullable<SessionsOptions['binding']>, true>);
const ROTATION_OPTIONS = Object.keys({ afterSeconds: true, afterRequests: true, grace: true } satisfies Record<keyof NonNullable<SessionsOptions['rotation']>, true>);
const SESSION_LIMIT_OPTIONS = Object.keys({ limit: true, strategy: true } satisfies Record<keyof Exclude<NonNullable<SessionsOptions['maxSessionsPerUser']>, number>, true>);

/**
 * Longest duration any option takes: 100 years. Past about 2.7e5 years a deadline leaves the
 * range of a JavaScript Date (getExpiryDate() answered Invalid Date, SQL stores refused the
 * value as a store error on every request); the cap keeps every deadline a plain number.
 */
export const MAX_DURATION_SECONDS = 100 * 365 * 86_400;

function positive(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    // JSON: a string from an environment variable ("1800") shows as one.
    throw new ConfigError(`${name} must be a positive number of seconds, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
  }
  if (value > MAX_DURATION_SECONDS) {
    throw new ConfigError(`${name} must be at most ${MAX_DURATION_SECONDS} seconds (100 years), got ${value}`);
  }
  return value;
}

/** Options whose own check already says what to give instead of null. */
const OWN_NULL_MESSAGE = new Set(['store', 'cookie', 'binding', 'rotation', 'maxSessionsPerUser', 'clock']);

/**
 * `null` is not "the default": only a left-out (undefined) option is. Several options read null
 * as their default and others refused it; now all refuse it. ViUR's `same_site=None` (no
 * attribute at all) gets its own message, since coatcheck always sends SameSite.
 */
function refuseNulls(prefix: string, options: object): void {
  for (const [key, value] of Object.entries(options)) {
    const name = `${prefix}${key}`;
    if (value !== null || OWN_NULL_MESSAGE.has(name)) continue;
    if (name === 'cookie.sameSite') {
      throw new ConfigError("cookie.sameSite is null: coatcheck always sends the SameSite attribute; use 'lax' (the default, leave it out), 'strict' or 'none'");
    }
    throw new ConfigError(`${name} is null: leave it out (undefined) for its default`);
  }
}

/** The methods the Store contract requires (src/stores/types.ts); the first three are checked at setup. */
const STORE_METHODS = ['get', 'create', 'update', 'touch', 'destroy', 'destroyByUser', 'destroyAll', 'listByUser', 'deleteExpired', 'close'] as const;
const CLIENT_STORE_METHODS = ['seal', 'unseal', 'close'] as const;

/** "a(), b() and c()" */
function methodList(names: readonly string[]): string {
  const calls = names.map((name) => `${name}()`);
  return calls.length < 2 ? calls.join('') : `${calls.slice(0, -1).join(', ')} and ${calls.at(-1)}`;
}

/**
 * Refuses a missing store, or one without the methods every request needs (`get`, `create`,
 * `update`; a cookie store's `seal` and `unseal`). The message names every required method the
 * object lacks, so a hand-written store is fixed in one go.
 */
function checkStore(store: unknown): void {
  const examples = 'e.g. memoryStore(), sqliteStore() or cookieStore({ secrets })';
  if (typeof store === 'function') {
    const name = store.name || 'the factory';
    throw new ConfigError(`\`store\` must be a store object, got the function ${name}: call it (store: ${name}(…)), ${examples}`);
  }
  if (store === null || typeof store !== 'object') throw new ConfigError(`\`store\` is required: a store implementing the Store contract, ${examples}`);
  const client = isClientStore(store as AnyStore);
  const methods: readonly string[] = client ? CLIENT_STORE_METHODS : STORE_METHODS;
  const missing = methods.filter((method) => typeof (store as Record<string, unknown>)[method] !== 'function');
  const checked = client ? ['seal', 'unseal'] : ['get', 'create', 'update'];
  if (!missing.some((method) => checked.includes(method))) return;
  const contract = client ? 'ClientStore' : 'Store';
  throw new ConfigError(
    `\`store\` does not implement the ${contract} contract: it has no ${methodList(missing)} (see the ${contract} interface exported from coatcheck${client ? '' : ', and check a store with testStore() from coatcheck/testing'})`,
  );
}

export function resolveOptions(options: SessionsOptions): ResolvedOptions {
  if (!options || typeof options !== 'object') throw new ConfigError('createSessions needs an options object');
  checkStore(options.store);
  const store = options.store;
  refuseUnknownOptions('', options, SESSIONS_OPTIONS);
  if (options.cookie !== undefined && (options.cookie === null || typeof options.cookie !== 'object')) throw new ConfigError('cookie must be an object of cookie options');
  if (options.cookie) refuseUnknownOptions('cookie', options.cookie, COOKIE_OPTIONS);
  refuseNulls('', options);
  if (options.cookie) refuseNulls('cookie.', options.cookie);
  if (options.rotation && typeof options.rotation === 'object') refuseNulls('rotation.', options.rotation);
  if (options.binding && typeof options.binding === 'object') refuseUnknownOptions('binding', options.binding, BINDING_OPTIONS);
  if (options.rotation && typeof options.rotation === 'object') refuseUnknownOptions('rotation', options.rotation, ROTATION_OPTIONS);
  if (options.maxSessionsPerUser && typeof options.maxSessionsPerUser === 'object') refuseUnknownOptions('maxSessionsPerUser', options.maxSessionsPerUser, SESSION_LIMIT_OPTIONS);
  if (isClientStore(store) && options.maxSessionsPerUser !== undefined) {
    throw new ConfigError('maxSessionsPerUser needs a server-side store: stateless sessions cannot be counted');
  }
  const unsupported = (store as { unsupported?: readonly string[] }).unsupported ?? [];
  if (options.maxSessionsPerUser !== undefined && unsupported.includes('listByUser')) {
    throw new ConfigError(`maxSessionsPerUser needs a store that lists a user's sessions, and the store ${store.name} cannot as configured (store.unsupported: ${unsupported.join(', ')})`);
  }
  if (options.cleanupProbability !== undefined && options.cleanupProbability !== 0 && unsupported.includes('deleteExpired')) {
    throw new ConfigError(`cleanupProbability needs a store that can find expired sessions, and the store ${store.name} cannot as configured (store.unsupported: ${unsupported.join(', ')})`);
  }
  if (isClientStore(store) && options.rotation !== undefined) {
    throw new ConfigError('rotation needs a server-side store: a cookie-store session is re-sealed on every change and cannot forward old ids');
  }
  const c = options.cookie ?? {};
  const cookie: ResolvedCookie = {
    name: c.name ?? 'sid',
    secure: c.secure ?? 'auto',
    sameSite: c.sameSite ?? 'lax',
    path: c.path ?? '/',
    domain: c.domain,
    httpOnly: c.httpOnly ?? true,
    partitioned: c.partitioned ?? false,
    persistent: c.persistent ?? false,
    prefix: c.prefix ?? true,
    previousScopes: [],
  };
  if (!isValidCookieName(cookie.name)) throw new ConfigError(`cookie.name ${JSON.stringify(cookie.name)} is not a valid cookie name`);
  if (!['lax', 'strict', 'none'].includes(cookie.sameSite)) throw new ConfigError(`cookie.sameSite must be 'lax', 'strict' or 'none'`);
  if (cookie.secure !== true && cookie.secure !== false && cookie.secure !== 'auto') throw new ConfigError(`cookie.secure must be true, false or 'auto'`);
  if (cookie.sameSite === 'none' && cookie.secure !== true) {
    throw new ConfigError("cookie.sameSite 'none' requires cookie.secure: true (browsers reject SameSite=None without Secure)");
  }
  if (cookie.partitioned && cookie.secure !== true) throw new ConfigError('cookie.partitioned requires cookie.secure: true');
  if (typeof cookie.path !== 'string' || !cookie.path.startsWith('/') || !isValidAttributeValue(cookie.path)) {
    throw new ConfigError(`cookie.path must start with / and hold no ';' or control characters, got ${JSON.stringify(cookie.path)}`);
  }
  if (cookie.domain !== undefined && (typeof cookie.domain !== 'string' || !DOMAIN.test(cookie.domain))) {
    throw new ConfigError(`cookie.domain must be a host name such as "example.com", got ${JSON.stringify(cookie.domain)}`);
  }
  for (const name of ['httpOnly', 'partitioned', 'persistent', 'prefix'] as const) flag(`cookie.${name}`, cookie[name]);
  if (c.previousScopes !== undefined) {
    if (!Array.isArray(c.previousScopes)) throw new ConfigError('cookie.previousScopes must be an array of { domain?, path? }');
    cookie.previousScopes = c.previousScopes.map((scope: unknown, i: number) => {
      if (!scope || typeof scope !== 'object' || Object.keys(scope).some((key) => key !== 'domain' && key !== 'path')) {
        throw new ConfigError(`cookie.previousScopes[${i}] must be an object with only domain and/or path, got ${JSON.stringify(scope)}`);
      }
      const { domain: given, path = '/' } = scope as { domain?: unknown; path?: unknown };
      // Browsers ignore a leading dot and compare domains without regard to case.
      const domain = typeof given === 'string' ? given.replace(/^\./, '').toLowerCase() : given;
      if (domain !== undefined && (typeof domain !== 'string' || !DOMAIN.test(domain))) {
        throw new ConfigError(`cookie.previousScopes[${i}].domain must be a host name such as "example.com", got ${JSON.stringify(domain)}`);
      }
      if (typeof path !== 'string' || !path.startsWith('/') || !isValidAttributeValue(path)) {
        throw new ConfigError(`cookie.previousScopes[${i}].path must start with / and hold no ';' or control characters, got ${JSON.stringify(path)}`);
      }
      return { domain: domain as string | undefined, path };
    });
  }
  const lower = cookie.name.toLowerCase();
  if (lower.startsWith('__host-')) {
    if (cookie.secure !== true || cookie.path !== '/' || cookie.domain !== undefined) {
      throw new ConfigError('a __Host- cookie needs secure: true, path "/" and no domain');
    }
    cookie.prefix = false;
  } else if (lower.startsWith('__secure-')) {
    if (cookie.secure !== true) throw new ConfigError('a __Secure- cookie needs secure: true');
    cookie.prefix = false;
  }
  const idleTimeout = positive('idleTimeout', options.idleTimeout ?? 3600);
  const absoluteTimeout = positive('absoluteTimeout', options.absoluteTimeout ?? 7 * 86_400);
  const touchInterval = options.touchInterval === undefined ? Math.min(300, idleTimeout / 2) : positive('touchInterval', options.touchInterval);
  // A user active every r seconds keeps the session only while r <= idleTimeout - touchInterval:
  // past half, users clearly active (a request every few minutes) would be signed out.
  if (touchInterval > idleTimeout / 2) {
    throw new ConfigError(`touchInterval must be at most half of idleTimeout (${idleTimeout / 2} s here), got ${touchInterval}: a user active every ${idleTimeout - touchInterval} s could be signed out`);
  }
  if (options.context !== undefined && typeof options.context !== 'boolean') throw new ConfigError('context must be true or false');
  if (options.clock !== undefined && typeof (options.clock as Partial<Clock> | null)?.now !== 'function') {
    throw new ConfigError('clock must be an object with a now() method returning milliseconds since the epoch, e.g. { now: () => Date.now() }');
  }
  const storeTimeout = options.storeTimeout ?? 5000;
  // A string from an environment variable would turn every deadline into string concatenation.
  if (typeof storeTimeout !== 'number' || !(storeTimeout > 0 && storeTimeout <= MAX_TIMER_MS)) {
    throw new ConfigError(`storeTimeout must be a number of milliseconds between 1 and ${MAX_TIMER_MS}, got ${JSON.stringify(storeTimeout)}`);
  }
  const maxDataSize = options.maxDataSize ?? 65_536;
  if (typeof maxDataSize !== 'number' || !(maxDataSize > 0 && Number.isFinite(maxDataSize))) {
    throw new ConfigError(`maxDataSize must be a positive number of bytes, got ${JSON.stringify(maxDataSize)}`);
  }
  flag('trustProxy', options.trustProxy);
  flag('keepDataOnHttpsUpgrade', options.keepDataOnHttpsUpgrade);
  if (options.binding !== undefined && (options.binding === null || typeof options.binding !== 'object')) {
    throw new ConfigError('binding must be an object like { ip: true, userAgent: true }');
  }
  flag('binding.ip', options.binding?.ip);
  flag('binding.userAgent', options.binding?.userAgent);
  for (const name of ['persistentFieldsOnLogin', 'persistentFieldsOnLogout'] as const) {
    const list = options[name];
    if (list !== undefined && (!Array.isArray(list) || list.some((k) => typeof k !== 'string'))) {
      throw new ConfigError(`${name} must be an array of key names`);
    }
  }
  return {
    store,
    cookie,
    idleTimeout,
    absoluteTimeout,
    touchInterval,
    persistentFieldsOnLogin: options.persistentFieldsOnLogin ?? ['language'],
    persistentFieldsOnLogout: options.persistentFieldsOnLogout ?? ['language'],
    storeTimeout,
    maxDataSize,
    trustProxy: options.trustProxy ?? false,
    context: options.context ?? true,
    binding: { ip: options.binding?.ip ?? false, userAgent: options.binding?.userAgent ?? false },
    keepDataOnHttpsUpgrade: options.keepDataOnHttpsUpgrade ?? false,
    rotation: resolveRotation(options.rotation),
    maxSessionsPerUser: resolveSessionLimit(options.maxSessionsPerUser),
    cleanupProbability: resolveProbability(options.cleanupProbability),
    clock: options.clock ?? systemClock,
  };
}

function resolveSessionLimit(value: SessionsOptions['maxSessionsPerUser']): ResolvedOptions['maxSessionsPerUser'] {
  if (value === undefined) return null;
  if (typeof value !== 'number' && (value === null || typeof value !== 'object')) {
    throw new ConfigError('maxSessionsPerUser must be a number or { limit, strategy }, or left out');
  }
  const { limit, strategy = 'evict-oldest' } = typeof value === 'number' ? { limit: value } : value;
  if (!Number.isInteger(limit) || limit < 1) throw new ConfigError('maxSessionsPerUser must be a whole number >= 1');
  if (strategy !== 'evict-oldest' && strategy !== 'refuse-new') throw new ConfigError("maxSessionsPerUser.strategy must be 'evict-oldest' or 'refuse-new'");
  return { limit, strategy };
}

function resolveProbability(value: number | undefined): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) throw new ConfigError('cleanupProbability must be between 0 and 1');
  return value;
}

function resolveRotation(rotation: SessionsOptions['rotation']): ResolvedRotation | null {
  if (rotation === undefined) return null;
  if (rotation === null || typeof rotation !== 'object') throw new ConfigError('rotation must be an object like { afterSeconds: 900 }, or left out');
  const afterSeconds = rotation.afterSeconds === undefined ? null : positive('rotation.afterSeconds', rotation.afterSeconds);
  // A count, not a duration: no 100-year cap (Number.MAX_SAFE_INTEGER reads as "practically never").
  const afterRequests = rotation.afterRequests === undefined ? null : rotation.afterRequests;
  if (afterRequests !== null && (typeof afterRequests !== 'number' || !Number.isSafeInteger(afterRequests) || afterRequests < 1)) {
    throw new ConfigError(`rotation.afterRequests must be a whole number of requests (1 or more), got ${JSON.stringify(afterRequests)}`);
  }
  if (afterSeconds === null && afterRequests === null) throw new ConfigError('rotation needs afterSeconds and/or afterRequests');
  const grace = positive('rotation.grace', rotation.grace ?? 30);
  return { afterSeconds, afterRequests, grace };
}

/** The cookie name used on a request: prefixed when the cookie is Secure on that request. */
export function cookieNameFor(cookie: ResolvedCookie, secure: boolean): string {
  if (!cookie.prefix || !secure) return cookie.name;
  return cookie.domain === undefined && cookie.path === '/' ? `__Host-${cookie.name}` : `__Secure-${cookie.name}`;
}

/** Whether the cookie gets the Secure attribute on a request that arrived over `https`. */
export function isSecureFor(cookie: ResolvedCookie, https: boolean): boolean {
  return cookie.secure === 'auto' ? https : cookie.secure;
}
