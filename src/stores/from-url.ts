/**
 * Opens a store from a URL, for configuration by environment (the demo's `STORE`, the CLI's
 * `--store`). Each store's client library is imported only when its scheme is used.
 *
 * | URL | store |
 * | --- | --- |
 * | `sqlite:./data/sessions.db`, `sqlite::memory:`, `sqlite:PATH?table=NAME` | SQLite (the embedded default) |
 * | `postgres://user@host:5432/db[?table=NAME&schema=NAME]` (`postgresql://` too) | PostgreSQL |
 * | `redis://host:6379/0[?prefix=PREFIX]`, `rediss://…` | Redis |
 * | `memory:` | in-process memory |
 * | `cookie:` | stateless cookie store (needs `secrets`) |
 *
 * `?table=`, `?schema=` and `?prefix=` become the store's options; other parameters of a
 * `postgres://` or `redis://` URL go to the driver (`?sslmode=require`). Anything else (another
 * parameter, a missing host, text after `memory:`) is refused with a {@link ConfigError} rather
 * than quietly opening something other than what was written.
 * @module coatcheck/stores/from-url
 */
import { checkFactoryOptions } from '../core/known-options.js';
import { ConfigError } from '../errors.js';
import { importStoreModule } from './missing-peer.js';
import type { AnyStore, Store } from './types.js';

export const DEFAULT_STORE_URL = 'sqlite:./data/sessions.db';

export interface StoreFromUrlOptions {
  /** Secrets for `cookie:` (each ≥ 32 bytes). */
  secrets?: readonly string[] | undefined;
  /** Store for the cookie store's revocation watermarks. */
  revocations?: Store | undefined;
}

const FROM_URL_OPTIONS = Object.keys({ secrets: true, revocations: true } satisfies Record<keyof StoreFromUrlOptions, true>);

/** What kind of store a URL names, without opening anything. */
export function storeKind(url: string): 'sqlite' | 'postgres' | 'redis' | 'memory' | 'cookie' {
  const scheme = url.slice(0, url.indexOf(':') + 1).toLowerCase();
  switch (scheme) {
    case 'sqlite:':
      return 'sqlite';
    case 'postgres:':
    case 'postgresql:':
      return 'postgres';
    case 'redis:':
    case 'rediss:':
      return 'redis';
    case 'memory:':
      return 'memory';
    case 'cookie:':
      return 'cookie';
    default:
      throw new ConfigError(`unknown store URL ${JSON.stringify(safeDisplay(url))}: use sqlite:PATH, postgres://…, redis://…, memory: or cookie:`);
  }
}

/** What a store URL names, with the store's own parameters split off (see {@link parseStoreUrl}). */
export interface StoreUrl {
  kind: ReturnType<typeof storeKind>;
  /** The URL with any password (in the userinfo or a `?password=`-like parameter) replaced by `***`: safe to print. */
  display: string;
  /** For sqlite the file path; for postgres and redis the URL the driver gets (without the parameters below). */
  location: string;
  /** SQL table (`?table=`); absent: the store's default, `coatcheck_sessions`. */
  table?: string;
  /** PostgreSQL schema (`?schema=`); absent: the connection's search_path. */
  schema?: string;
  /** Redis key prefix (`?prefix=`); absent: the store's default, `coatcheck:`. */
  prefix?: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The longest names the stores accept: the stores check them, and so does the URL parser, so a URL
 * fails as written (a usage error in the CLI) rather than when a store opens. A SQLite table of
 * 63 characters; a PostgreSQL table of at most 50 (its index names add a suffix and must fit
 * PostgreSQL's 63-byte limit) and a schema of 63.
 */
export const MAX_NAME_LENGTH = {
  sqlite: { table: 63 },
  postgres: { table: 50, schema: 63 },
} as const;

/** `?table=` / `?schema=`: a plain identifier of at most `max` characters (`what` names whose limit it is). */
function identifier(param: string, value: string | null | undefined, max: number, what: string): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (!IDENTIFIER.test(value) || value.length > max) {
    const length = value.length > max ? ` (${value.length} characters)` : '';
    throw new ConfigError(
      `?${param}= must be letters, digits and _ (not starting with a digit), at most ${max} characters for ${what}, got ${JSON.stringify(value)}${length}`,
    );
  }
  return value;
}

/**
 * Query parameters that carry a secret: both drivers copy query parameters into their options, so
 * `?password=` authenticates (as do pg's `sslpassword` and ioredis' `sentinelPassword`). Matched
 * loosely, by name, on purpose: hiding a harmless parameter costs nothing.
 */
const SECRET_PARAM = /pass|secret|token/i;

/**
 * `url` with the values of secret-looking query parameters replaced by `***`, the rest as written.
 * The query is everything after the first `?` (as ioredis reads it), split on `&` only, so no
 * value escapes the mask whatever it holds.
 */
function maskQuery(url: string): string {
  const mark = url.indexOf('?');
  if (mark < 0) return url;
  const pieces = url
    .slice(mark + 1)
    .split('&')
    .map((piece) => {
      const equals = piece.indexOf('=');
      if (equals < 0) return piece;
      const name = [...new URLSearchParams(piece).keys()][0] ?? '';
      return SECRET_PARAM.test(name) ? `${piece.slice(0, equals + 1)}***` : piece;
    });
  return `${url.slice(0, mark + 1)}${pieces.join('&')}`;
}

/**
 * The URL with every credential replaced by `***`: the userinfo password and secret query
 * parameters. For a URL that does not parse (`parsed` null), everything from `//` to the last `@`.
 */
function redact(url: string, parsed: URL | null): string {
  if (parsed === null) return maskQuery(url.replace(/\/\/.*@/s, '//***@'));
  const masked = maskQuery(url);
  if (!parsed.password) return masked;
  // The userinfo ends before the first `?` of a URL that parsed, so the query stays as masked.
  const mark = masked.indexOf('?');
  const base = new URL(mark < 0 ? masked : masked.slice(0, mark));
  base.password = '***';
  return base.toString() + (mark < 0 ? '' : masked.slice(mark));
}

/** `redact` for a URL that may or may not parse: safe to put in any message. */
function safeDisplay(url: string): string {
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    // redact's fallback masks the whole userinfo
  }
  return parsed !== null && !misreadUserinfo(parsed) ? redact(url, parsed) : redact(url, null);
}

/**
 * A `/`, `?` or `#` left unencoded in a user name or password ends the authority early: the
 * parser takes the text before it for a host (and port) and the rest of the password for the
 * path, query or fragment. The `@` that was meant to end the userinfo is then found there.
 */
function misreadUserinfo(parsed: URL): boolean {
  if (parsed.pathname.includes('@')) return true;
  return parsed.username === '' && parsed.password === '' && `${parsed.search}${parsed.hash}`.includes('@');
}

/**
 * libpq's Unix-socket form with a user and no host, `postgres://user@/db?host=/run/postgresql`:
 * WHATWG URLs refuse credentials without a host, so it is parsed with a stand-in host, which
 * `?host=` overrides in pg as it would the empty one.
 */
const USER_WITHOUT_HOST = /^(postgres(?:ql)?:\/\/[^/?#]*@)(?=[/?#]|$)/i;

/** Removes the named parameters from a URL; the original string is kept when there were none. */
function splitParams(url: string, names: readonly string[]): { parsed: URL; location: string; display: string; params: Map<string, string> } {
  let parsed: URL;
  let standIn = false;
  try {
    parsed = new URL(url);
  } catch {
    const socketForm = USER_WITHOUT_HOST.test(url) ? url.replace(USER_WITHOUT_HOST, '$1localhost') : null;
    const reparsed = socketForm === null ? null : URL.canParse(socketForm) ? new URL(socketForm) : null;
    if (reparsed === null || !reparsed.searchParams.has('host')) {
      throw new ConfigError(`store URL ${JSON.stringify(redact(url, null))} is not a valid URL`);
    }
    parsed = reparsed;
    standIn = true;
  }
  if (misreadUserinfo(parsed)) {
    throw new ConfigError(
      `store URL ${JSON.stringify(redact(url, null))} has an @ after its host: percent-encode any /, ? or # in the user name or password (%2F, %3F, %23)`,
    );
  }
  const display = standIn ? redact(url, null) : redact(url, parsed);
  const params = new Map<string, string>();
  for (const name of names) {
    if (parsed.searchParams.getAll(name).length > 1) throw new ConfigError(`?${name}= given more than once in ${JSON.stringify(display)}`);
    const value = parsed.searchParams.get(name);
    if (value !== null) params.set(name, value);
  }
  const stripped = new URL(parsed.href);
  for (const name of names) stripped.searchParams.delete(name);
  return { parsed, location: params.size === 0 ? url : stripped.toString(), display, params };
}

/**
 * Parses a store URL without opening anything: the kind, where it points and the store's own
 * parameters (`?table=`, `?schema=`, `?prefix=`). The one parser behind {@link storeFromUrl} and
 * the CLI's `--store`, so both read a URL the same way.
 * @throws {ConfigError} for an unknown scheme, a malformed URL or a parameter the store does not take.
 */
export function parseStoreUrl(url: string): StoreUrl {
  if (typeof url !== 'string') throw new ConfigError('store URL must be a string');
  const kind = storeKind(url);
  switch (kind) {
    case 'memory':
    case 'cookie':
      // Nothing to configure by URL: `memory://host` or `cookie:x` is a mistake, not a store.
      if (url.length !== kind.length + 1) throw new ConfigError(`${kind}: URLs take nothing after the scheme, got ${JSON.stringify(safeDisplay(url))}`);
      return { kind, display: url, location: '' };
    case 'sqlite': {
      // Not a URL parser: a path may hold characters a URL would reinterpret. `?` always starts
      // the parameters, so `sqlite:./x.db?table=t` is the file ./x.db, never "x.db?table=t".
      const rest = url.slice('sqlite:'.length);
      const mark = rest.indexOf('?');
      const path = mark < 0 ? rest : rest.slice(0, mark);
      const params = new URLSearchParams(mark < 0 ? '' : rest.slice(mark + 1));
      for (const name of params.keys()) if (name !== 'table') throw new ConfigError(`sqlite: URLs take only ?table=, not ?${name}=`);
      if (params.getAll('table').length > 1) throw new ConfigError('?table= given more than once');
      if (path.length === 0) throw new ConfigError('sqlite: URL needs a path, e.g. sqlite:./data/sessions.db or sqlite::memory:');
      const table = identifier('table', params.get('table'), MAX_NAME_LENGTH.sqlite.table, 'a SQLite table');
      return { kind, display: url, location: path, ...(table && { table }) };
    }
    case 'postgres': {
      const { parsed, location, display, params } = splitParams(url, ['table', 'schema']);
      // pg takes the host from the URL or from ?host= (a Unix socket directory).
      if (!url.includes('//') || (parsed.hostname === '' && !parsed.searchParams.has('host'))) {
        throw new ConfigError(`postgres: URL needs a host, e.g. postgres://user@localhost:5432/db; got ${JSON.stringify(display)}`);
      }
      const table = identifier('table', params.get('table'), MAX_NAME_LENGTH.postgres.table, 'a PostgreSQL table');
      const schema = identifier('schema', params.get('schema'), MAX_NAME_LENGTH.postgres.schema, 'a PostgreSQL schema');
      return { kind, display, location, ...(table && { table }), ...(schema && { schema }) };
    }
    case 'redis': {
      const { parsed, location, display, params } = splitParams(url, ['prefix']);
      if (!url.includes('//') || parsed.hostname === '') {
        throw new ConfigError(`redis: URL needs a host, e.g. redis://127.0.0.1:6379/0; got ${JSON.stringify(display)}`);
      }
      if (!/^(\/\d*)?$/.test(parsed.pathname)) throw new ConfigError(`redis: the path of the URL is a database number (e.g. /0); got ${JSON.stringify(display)}`);
      // ioredis would apply it to the connection, under the store's back (see redisStore).
      if (parsed.searchParams.has('keyPrefix')) throw new ConfigError('redis: use ?prefix= (the store\'s prefix option), not ?keyPrefix=');
      const prefix = params.get('prefix');
      if (prefix !== undefined && (prefix === '' || /[{}]/.test(prefix))) throw new ConfigError('?prefix= must be non-empty and contain no { or }');
      return { kind, display, location, ...(prefix !== undefined && { prefix }) };
    }
  }
}

/**
 * Opens the store a URL names (see the table above). The store opens its own connection or file,
 * and creates or migrates its table as it does by default.
 * @throws {ConfigError} for a missing URL (`undefined`), a URL {@link parseStoreUrl} refuses, options the store refuses, or a
 * missing client library (`pg`, `ioredis`: optional peer dependencies), naming the package to install.
 */
export async function storeFromUrl(url: string, options: StoreFromUrlOptions = {}): Promise<AnyStore> {
  // No default: an unset variable (`storeFromUrl(process.env.SESSION_STORE)`) would otherwise
  // give every instance of a deployment a local SQLite file of its own, without a word.
  if (url === undefined) {
    throw new ConfigError(`storeFromUrl(url): the URL is missing (an unset environment variable?); pass one, e.g. ${JSON.stringify(DEFAULT_STORE_URL)}`);
  }
  checkFactoryOptions('storeFromUrl', options, FROM_URL_OPTIONS, { usage: "storeFromUrl(url) or storeFromUrl('cookie:', { secrets: [secret] })", hints: { secret: 'use secrets: [secret]' } });
  const target = parseStoreUrl(url);
  switch (target.kind) {
    case 'sqlite': {
      const { sqliteStore } = await import('./sqlite.js');
      return sqliteStore({ path: target.location, ...(target.table && { table: target.table }) });
    }
    case 'postgres': {
      const { postgresStore } = await importStoreModule('postgres', () => import('./postgres.js'));
      return postgresStore({
        connectionString: target.location,
        ...(target.table && { table: target.table }),
        ...(target.schema && { schema: target.schema }),
      });
    }
    case 'redis': {
      const { redisStore } = await importStoreModule('redis', () => import('./redis.js'));
      return redisStore({ url: target.location, ...(target.prefix && { prefix: target.prefix }) });
    }
    case 'memory': {
      const { memoryStore } = await import('./memory.js');
      return memoryStore();
    }
    case 'cookie': {
      const { cookieStore } = await import('./cookie.js');
      if (!options.secrets?.length) throw new ConfigError("cookie: store needs secrets: storeFromUrl('cookie:', { secrets: [secret] }), each at least 32 bytes");
      return cookieStore({ secrets: options.secrets, ...(options.revocations && { revocations: options.revocations }) });
    }
  }
}
