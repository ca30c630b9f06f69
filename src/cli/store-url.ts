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
 * Only `migrate` creates or upgrades anything: other commands refuse a missing SQLite file or
 * table, or an old schema, and never create PostgreSQL tables, so a mistyped URL fails instead
 * of reporting an empty store.
 *
 * URLs are parsed by the library's `parseStoreUrl` (the parser behind `storeFromUrl`), but the
 * stores are constructed here: `storeFromUrl` cannot pass `createTable: false`.
 */
import { existsSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { DEFAULT_STORE_URL, parseStoreUrl as parseUrl, type StoreUrl } from '../stores/from-url.js';
import type { Store } from '../stores/types.js';
import { CliError, UsageError } from './exit.js';
import { sqliteSchemaState } from './schema-state.js';
import { isDirectory } from '../stores/is-directory.js';
import { importStoreModule } from '../stores/missing-peer.js';

/** Where a `--store` URL points, with the CLI's parameters split off. */
export interface StoreTarget extends StoreUrl {
  kind: 'sqlite' | 'postgres' | 'redis';
}

/** A store opened by the CLI; PostgreSQL's also migrates on demand. */
export type CliStore = Store & { migrate?: () => Promise<void> };

/**
 * `--store`, else `COATCHECK_STORE`, else the embedded default. An empty value is refused with a
 * {@link UsageError}, never read as "unset": `--store "$DATABASE_URL"` (or
 * `COATCHECK_STORE="$DATABASE_URL"`) with the variable unset must not fall through to another
 * store, least of all for `kill --all`. Only an absent flag or variable selects the next source.
 */
export function resolveStoreUrl(flag: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  if (flag !== undefined) {
    if (flag === '') throw new UsageError('--store needs a store URL, got an empty value (is the variable you passed unset?)');
    return flag;
  }
  const fromEnv = env.COATCHECK_STORE;
  if (fromEnv === undefined) return DEFAULT_STORE_URL;
  if (fromEnv === '') throw new UsageError('COATCHECK_STORE is set but empty: set it to a store URL, or unset it to use the default');
  return fromEnv;
}

/** Parses a `--store` URL; throws {@link UsageError} for anything the CLI cannot use. */
export function parseStoreUrl(url: string): StoreTarget {
  let target: StoreUrl;
  try {
    // The library's parser: the CLI reads a URL exactly as storeFromUrl does.
    target = parseUrl(url);
  } catch (error) {
    // The library lists memory: and cookie: too, which the CLI refuses (below): not offered here.
    if (error instanceof ConfigError) throw new UsageError(error.message.replace(/^coatcheck: /, '').replace(', redis://…, memory: or cookie:', ' or redis://…'));
    throw error;
  }
  if (target.kind === 'memory' || target.kind === 'cookie') {
    throw new UsageError(`--store ${target.kind}: holds no sessions another process can reach; use sqlite:PATH, postgres://… or redis://…`);
  }
  // SQLite would open a directory and fail with "disk I/O error", migrate included: refuse it
  // here, before any command looks at the path.
  const path = target.location;
  if (target.kind === 'sqlite' && path !== ':memory:' && isDirectory(path)) {
    throw new UsageError(`sqlite:${path} is a directory: sqlite:PATH names the database file, e.g. sqlite:${path.replace(/\/+$/, '')}/sessions.db`);
  }
  return target as StoreTarget;
}

/** The default table of the SQL stores (see sqlite.ts / postgres.ts). */
export const DEFAULT_TABLE = 'coatcheck_sessions';

/**
 * Opens the store a target names. `create: false` (every command but `migrate`) changes no
 * schema: it refuses a missing SQLite file, table or an old schema version (which the store
 * would otherwise create or upgrade), and leaves PostgreSQL's schema alone. A missing `pg` or
 * `ioredis` is a ConfigError naming the package to install (`npm install ioredis`).
 */
export async function openStore(target: StoreTarget, options: { create: boolean }): Promise<CliStore> {
  switch (target.kind) {
    case 'sqlite': {
      const path = target.location;
      const { SQLITE_SCHEMA_VERSION, sqliteStore } = await import('../stores/sqlite.js');
      const remedy = `coatcheck migrate --store ${target.display}`;
      if (!options.create && path !== ':memory:' && !existsSync(path)) throw new CliError(`no SQLite database at ${path} (create it with: ${remedy})`);
      // A read-only look first, for a message that says what to run (the store checks again), and
      // for the table's own spelling: `?table=` in another case names the same SQLite table, but
      // the store looks its version up by exact name, and would otherwise see none and "upgrade"
      // (rewrite) a table that is current. migrate (create: true) needs the spelling as much.
      const table = target.table ?? DEFAULT_TABLE;
      const state = await sqliteSchemaState(path, table);
      if (!options.create) {
        if (!state.exists) throw new CliError(`no table ${table} in ${path} (check ?table=, or create it with: ${remedy})`);
        if (state.version === null || state.version < SQLITE_SCHEMA_VERSION) {
          throw new CliError(
            `table ${state.name} in ${path} is at schema version ${state.version ?? 'unknown'}, this coatcheck needs ${SQLITE_SCHEMA_VERSION} (upgrade it with: ${remedy})`,
          );
        }
      }
      return sqliteStore({ path, createTable: options.create, table: state.name });
    }
    case 'postgres': {
      const { postgresStore } = await importStoreModule('postgres', () => import('../stores/postgres.js'));
      // createTable: false: only `migrate` (which calls migrate() itself) may run DDL.
      return postgresStore({
        connectionString: target.location,
        createTable: false,
        ...(target.table && { table: target.table }),
        ...(target.schema && { schema: target.schema }),
      });
    }
    case 'redis': {
      const { redisStore } = await importStoreModule('redis', () => import('../stores/redis.js'));
      return redisStore({ url: target.location, ...(target.prefix && { prefix: target.prefix }) });
    }
  }
}
