/**
 * Every error coatcheck throws is a {@link CoatcheckError} with a stable `code`.
 * Misuse (bad options, bad values) throws; bad client input never does.
 * @module coatcheck/errors
 */

/** The stable codes, one per kind of failure. */
export type CoatcheckErrorCode =
  | 'ERR_CONFIG'
  | 'ERR_INVALID_VALUE'
  | 'ERR_MISSING_KEY'
  | 'ERR_NOT_LOADED'
  | 'ERR_SESSION_GONE'
  | 'ERR_STORE'
  | 'ERR_STORE_TIMEOUT'
  | 'ERR_STORE_CONFLICT'
  | 'ERR_CORRUPT_RECORD'
  | 'ERR_COOKIE_TOO_LARGE'
  | 'ERR_TOO_LARGE'
  | 'ERR_TOO_MANY_SESSIONS'
  | 'ERR_HEADERS_SENT'
  | 'ERR_NO_CONTEXT'
  | 'ERR_REAUTH_REQUIRED';

/** Base class: check `err instanceof CoatcheckError` and switch on `err.code`. */
export class CoatcheckError extends Error {
  readonly code: CoatcheckErrorCode;
  /** HTTP status an adapter answers with when this error ends a request. */
  readonly status: number;

  constructor(code: CoatcheckErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(`coatcheck: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options?.status ?? 500;
  }
}

/** Options given to `createSessions`, a store or an adapter are wrong. Thrown at setup. */
export class ConfigError extends CoatcheckError {
  constructor(message: string) {
    super('ERR_CONFIG', message);
  }
}

/** A value that is not plain JSON was given to the session (function, Date, cycle, ...). */
export class InvalidValueError extends CoatcheckError {
  readonly key: string;
  constructor(key: string, reason: string) {
    super('ERR_INVALID_VALUE', `session value for key ${JSON.stringify(key)} is not JSON: ${reason}`);
    this.key = key;
  }
}

/** `require(key)` or `delete(key)` on a key the session does not hold. */
export class MissingKeyError extends CoatcheckError {
  readonly key: string;
  constructor(key: string) {
    super('ERR_MISSING_KEY', `session has no key ${JSON.stringify(key)}`);
    this.key = key;
  }
}

/** The session's data was used before `await session.load()` on a request that carries a cookie. */
export class NotLoadedError extends CoatcheckError {
  constructor() {
    super(
      'ERR_NOT_LOADED',
      'session data used before it was loaded: `await session.load()` first (adapters: `await getSession(req)`)',
    );
  }
}

/**
 * The session was destroyed by another request (logout elsewhere, revoked) while this request
 * held a copy. Saving the copy would resurrect it, so the save is refused.
 */
export class SessionGoneError extends CoatcheckError {
  constructor() {
    super('ERR_SESSION_GONE', 'session was ended by another request; this request\'s changes were not saved', {
      status: 409,
    });
  }
}

/** The store failed or is unreachable. Adapters answer 503 and leave the client's cookie alone. */
export class StoreError extends CoatcheckError {
  readonly store: string;
  constructor(store: string, operation: string, cause: unknown, code: 'ERR_STORE' | 'ERR_STORE_TIMEOUT' = 'ERR_STORE') {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(code, `store ${store} failed during ${operation}: ${detail}`, { cause, status: 503 });
    this.store = store;
  }
}

/** A store call did not settle within `storeTimeout`. */
export class StoreTimeoutError extends StoreError {
  constructor(store: string, operation: string, ms: number) {
    super(store, operation, new Error(`no answer within ${ms} ms`), 'ERR_STORE_TIMEOUT');
  }
}

/** `create` was asked to write a record whose id already exists. */
export class StoreConflictError extends CoatcheckError {
  constructor(store: string) {
    super('ERR_STORE_CONFLICT', `store ${store} already holds a session with this id`);
  }
}

/**
 * A stored record could not be decoded (corrupt row, foreign data under the key prefix).
 * Stores reject `get` with it; the engine treats the session as absent and reports an event.
 */
export class CorruptRecordError extends CoatcheckError {
  constructor(store: string, detail: string) {
    super('ERR_CORRUPT_RECORD', `store ${store} holds a record that cannot be decoded: ${detail}`);
  }
}

/**
 * The Set-Cookie header would exceed the browser's 4096-byte limit (the cookie store's whole
 * session, sealed): 413, as for a server-side session over `maxDataSize`. Nothing was saved.
 */
export class CookieTooLargeError extends CoatcheckError {
  readonly size: number;
  constructor(size: number, limit: number) {
    super('ERR_COOKIE_TOO_LARGE', `cookie would be ${size} bytes; browsers drop cookies over ${limit} bytes`, { status: 413 });
    this.size = size;
  }
}

/** The session's serialized data exceeds `maxDataSize`; nothing was written. */
export class SessionTooLargeError extends CoatcheckError {
  readonly size: number;
  constructor(size: number, limit: number) {
    super('ERR_TOO_LARGE', `session data is ${size} bytes serialized, over the maxDataSize limit of ${limit}`, { status: 413 });
    this.size = size;
  }
}

/** `login()` with `maxSessionsPerUser: { strategy: 'refuse-new' }` and the user at the limit. */
export class TooManySessionsError extends CoatcheckError {
  readonly limit: number;
  constructor(limit: number) {
    super('ERR_TOO_MANY_SESSIONS', `the user already has ${limit} sessions (maxSessionsPerUser)`, { status: 409 });
    this.limit = limit;
  }
}

/**
 * The session was changed after its response was committed (the headers, and with them the
 * cookie, have gone), so the change could not be saved. Reading it stays allowed.
 */
export class HeadersSentError extends CoatcheckError {
  constructor() {
    super('ERR_HEADERS_SENT', 'the session was changed after its response was committed (headers sent): the change could not be saved');
  }
}

/** `currentSession()` was called outside a request handled by a coatcheck adapter. */
export class NoContextError extends CoatcheckError {
  constructor() {
    super('ERR_NO_CONTEXT', 'no session in this context: call it inside a request handled by a coatcheck adapter (and without createSessions({ context: false }))');
  }
}

/**
 * `requireFreshAuth(seconds)`: the user last authenticated longer ago than that (or nobody is
 * signed in). 401: ask for the password (or second factor) again, then `markAuthenticated()`.
 */
export class ReauthenticationRequiredError extends CoatcheckError {
  /** When the user last authenticated; null for a guest. */
  readonly authenticatedAt: Date | null;
  constructor(authenticatedAt: Date | null, maxAgeSeconds: number) {
    super(
      'ERR_REAUTH_REQUIRED',
      authenticatedAt === null ? 'this needs a signed-in user' : `this needs an authentication less than ${maxAgeSeconds} s old; the last was at ${authenticatedAt.toISOString()}`,
      { status: 401 },
    );
    this.authenticatedAt = authenticatedAt;
  }
}
