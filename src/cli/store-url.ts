/**
 * `--store` URLs for the CLI: the URLs `storeFromUrl` takes, plus query parameters naming where
 * in that store the sessions live, since an app may have configured a non-default table or prefix:
 *
 * | URL | opens |
 * | --- | --- |
 * | `sqlite:PATH` or `sqlite:PATH?table=NAME` | SQLite file (`?` always starts the parameters) |
 * | `postgres://…?table=NAME&schema=NAME` | PostgreSQL (other parameters go to `pg`, e.g. `sslmode`) |
 * | `redis://…?prefix=PREFIX` | Redis (other parameters go to `ioredis`) |
 *
 * `memory:` and `cookie:` are refused: neither keeps sessions anywhere another process can reach.
 * Only `migrate` creates anything: other commands refuse a missing SQLite file and never create
 * PostgreSQL tables, so a mistyped URL fails instead of reporting an empty store.
 *
 * The URL schemes are `storeFromUrl`'s (its `storeKind` classifies them), but the stores are
 * constructed here: `storeFromUrl` cannot pass a table, schema or prefix, nor `createTable: false`.
 */
import { existsSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { DEFAULT_STORE_URL, storeKind } from '../stores/from-url.js';
import type { Store } from '../stores/types.js';
import { CliError, UsageError } from './exit.js';

/** Where a `--store` URL points, with the CLI's parameters split off. */
export interface StoreTarget {
  kind: 'sqlite' | 'postgres' | 'redis';
  /** The URL with any password replaced by `***`: safe to print. */
  display: string;
  /** For sqlite the file path; otherwise the URL the driver gets (without the CLI's parameters). */
  location: string;
  /** SQL table (`?table=`); absent: the store's default, `coatcheck_sessions`. */
  table?: string;
  /** PostgreSQL schema (`?schema=`); absent: the connection's search_path. */
  schema?: string;
  /** Redis key prefix (`?prefix=`); absent: the store's default, `coatcheck:`. */
  prefix?: string;
}

/** A store opened by the CLI; PostgreSQL's also migrates on demand. */
export type CliStore = Store & { migrate?: () => Promise<void> };

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `--store`, else `COATCHECK_STORE`, else the embedded default. Empty values count as unset. */
export function resolveStoreUrl(flag: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  return flag || env.COATCHECK_STORE || DEFAULT_STORE_URL;
}

function identifier(param: string, value: string | null): string | undefined {
  if (value === null) return undefined;
  if (!IDENTIFIER.test(value)) {
    throw new UsageError(`?${param}= must be letters, digits and _ (not starting with a digit), got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Removes the named parameters from a URL; the original string is kept when there were none. */
function splitParams(url: string, names: readonly string[]): { location: string; display: string; params: Map<string, string> } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--store ${JSON.stringify(url)} is not a valid URL`);
  }
  let display = url;
  if (parsed.password) {
    const redacted = new URL(url);
    redacted.password = '***';
    display = redacted.toString();
  }
  const params = new Map<string, string>();
  for (const name of names) {
    const value = parsed.searchParams.get(name);
    if (value !== null) params.set(name, value);
    parsed.searchParams.delete(name);
  }
  return { location: params.size === 0 ? url : parsed.toString(), display, params };
}

/** Parses a `--store` URL; throws {@link UsageError} for anything the CLI cannot use. */
export function parseStoreUrl(url: string): StoreTarget {
  let kind: ReturnType<typeof storeKind>;
  try {
    kind = storeKind(url);
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message.replace(/^coatcheck: /, ''));
    throw error;
  }
  switch (kind) {
    case 'memory':
    case 'cookie':
      throw new UsageError(`--store ${kind}: holds no sessions another process can reach; use sqlite:PATH, postgres://… or redis://…`);
    case 'sqlite': {
      const rest = url.slice('sqlite:'.length);
      const mark = rest.indexOf('?');
      const path = mark < 0 ? rest : rest.slice(0, mark);
      const params = new URLSearchParams(mark < 0 ? '' : rest.slice(mark + 1));
      for (const name of params.keys()) if (name !== 'table') throw new UsageError(`sqlite: URLs take only ?table=, not ?${name}=`);
      if (path.length === 0) throw new UsageError('sqlite: URL needs a path, e.g. sqlite:./data/sessions.db');
      const table = identifier('table', params.get('table'));
      return { kind, display: url, location: path, ...(table && { table }) };
    }
    case 'postgres': {
      const { location, display, params } = splitParams(url, ['table', 'schema']);
      const table = identifier('table', params.get('table') ?? null);
      const schema = identifier('schema', params.get('schema') ?? null);
      return { kind, display, location, ...(table && { table }), ...(schema && { schema }) };
    }
    case 'redis': {
      const { location, display, params } = splitParams(url, ['prefix']);
      const prefix = params.get('prefix');
      if (prefix !== undefined && (prefix === '' || /[{}]/.test(prefix))) throw new UsageError('?prefix= must be non-empty and contain no { or }');
      return { kind, display, location, ...(prefix !== undefined && { prefix }) };
    }
  }
}

/**
 * Opens the store a target names. `create: false` (every command but `migrate`) refuses a
 * missing SQLite file and leaves PostgreSQL's schema alone.
 */
export async function openStore(target: StoreTarget, options: { create: boolean }): Promise<CliStore> {
  switch (target.kind) {
    case 'sqlite': {
      const path = target.location;
      if (!options.create && path !== ':memory:' && !existsSync(path)) {
        throw new CliError(`no SQLite database at ${path} (create it with: coatcheck migrate --store ${target.display})`);
      }
      const { sqliteStore } = await import('../stores/sqlite.js');
      return sqliteStore({ path, ...(target.table && { table: target.table }) });
    }
    case 'postgres': {
      const { postgresStore } = await import('../stores/postgres.js');
      // createTable: false: only `migrate` (which calls migrate() itself) may run DDL.
      return postgresStore({
        connectionString: target.location,
        createTable: false,
        ...(target.table && { table: target.table }),
        ...(target.schema && { schema: target.schema }),
      });
    }
    case 'redis': {
      const { redisStore } = await import('../stores/redis.js');
      return redisStore({ url: target.location, ...(target.prefix && { prefix: target.prefix }) });
    }
  }
}
