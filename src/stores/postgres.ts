/**
 * PostgreSQL store: one row per session in a table with jsonb `data`/`meta` columns.
 *
 * Saves are per-key and run as ONE `UPDATE` (`data = (data - unset) || set`), so concurrent
 * requests that change different keys of one session never overwrite each other, even across
 * processes. Every query carries a timeout, so a dead server makes calls reject (the engine
 * answers 503) instead of hanging or looking like "no session".
 *
 * Requires the optional peer dependency `pg` (8.x).
 *
 * @example
 * ```ts
 * import { createSessions } from 'coatcheck';
 * import { postgresStore } from 'coatcheck/stores/postgres';
 *
 * const store = postgresStore({ connectionString: process.env.DATABASE_URL });
 * const sessions = createSessions({ store });
 * ```
 * @module coatcheck/stores/postgres
 */
import pg from 'pg';
import { type Clock, systemClock } from '../core/clock.js';
import { parseJsonObject } from '../core/json.js';
import { checkFactoryOptions } from '../core/known-options.js';
import { FORWARDER_USER } from '../core/reserved-users.js';
import { ConfigError, CorruptRecordError, InvalidValueError, SessionTooLargeError, StoreConflictError, StoreError } from '../errors.js';
import type { JsonValue } from '../types.js';
import {
  topUsersLimit,
  type EmptyDestroyResult,
  type ExpiredSweep,
  foreignTableMessage,
  type KeyChanges,
  type SessionPatch,
  type SessionRecord,
  type SessionSummary,
  type SchemaMigration,
  type Store,
  type StoreStats,
  type SweepResult,
} from './types.js';
import { MAX_TIMER_MS } from '../core/timer.js';
import { MAX_NAME_LENGTH } from './from-url.js';

export interface PostgresStoreOptions {
  /**
   * A pool the app owns (and ends). `close()` leaves it open. Give it `connectionTimeoutMillis`
   * yourself: the store can only bound the queries it sends, not the wait for a connection.
   * Exactly one of `pool` and `connectionString` is required.
   */
  pool?: pg.Pool | undefined;
  /** `postgres://user@host:5432/db`: the store creates a pool from it, and `close()` ends it. */
  connectionString?: string | undefined;
  /** Table name (letters, digits, `_`; at most 50 chars; used quoted). Default `coatcheck_sessions`. */
  table?: string | undefined;
  /** Schema holding the table (it must exist). Default: the connection's `search_path`. */
  schema?: string | undefined;
  /**
   * Create or migrate the table on first use. Default true. Set false when a deploy step runs
   * `migrate()` (e.g. the CLI) and the app's role may not run DDL.
   */
  createTable?: boolean | undefined;
  /**
   * Milliseconds after which a query rejects. Default 5 000. Applied per query on every pool, and
   * (a tenth shorter, at most 250 ms) as the server-side `statement_timeout` on a pool the store
   * creates, so the server cancels a stuck statement before the client stops waiting for it.
   */
  queryTimeout?: number | undefined;
  /** Milliseconds to wait for a connection, on a pool the store creates. Default: `queryTimeout`. */
  connectTimeout?: number | undefined;
  /** Connections in a pool the store creates. Default 10. */
  maxConnections?: number | undefined;
  /** Time source for "not expired yet" in `listByUser`; pass the same clock as `createSessions`. */
  clock?: Clock | undefined;
}

/** A {@link Store} that can also create or upgrade its table on demand. */
export interface PostgresStore extends Store {
  /**
   * Creates the table and indexes, or upgrades them to this version's schema. Idempotent and safe
   * to run from several processes at once (serialized by an advisory lock). The CLI calls it.
   * @throws {ConfigError} when the schema it should create the table in does not exist (pg's
   * error, code 3F000, is the `cause`): the store creates tables, never schemas. (The migration a
   * first use runs with `createTable` fails that call with a `StoreError` saying the same.)
   */
  migrate(): Promise<void>;
}

/** What a `migrate()` call found (version 0: no table) and left, see {@link postgresMigrationOf}. @internal */
export type PostgresMigration = SchemaMigration;

// Kept beside the store rather than on it: migrate() keeps its Promise<void> type.
const MIGRATIONS_RUN = new WeakMap<PostgresStore, PostgresMigration>();

/**
 * What the last `migrate()` call on `store` found and left, read under the migration lock (or by
 * the lock-free check that found the table current), or undefined before one succeeded. For
 * `coatcheck migrate`: a state read before the call cannot tell which of several processes
 * migrating at once created the table.
 * @internal
 */
export function postgresMigrationOf(store: PostgresStore): PostgresMigration | undefined {
  return MIGRATIONS_RUN.get(store);
}

/**
 * `maxDataSize`'s measure (SessionPatch.maxBytes) of one jsonb value, from its text: a jsonb value
 * prints with a space after each `:` and `,` and with numbers in plain notation (1e+21 prints 22
 * digits), where `JSON.stringify` writes neither. This pattern matches a string whole (kept as
 * it is), a separator with its space (the space dropped), or a number `JSON.stringify` would write
 * with an exponent, 1e21 or more (22 digits or more) or below 1e-6 (dropped, as if 0 bytes), so
 * the measure is never more than `JSON.stringify`'s and equals it for any value without such
 * numbers (a run of 22 digits in a long fraction is dropped too: less, never more).
 */
const JSONB_TEXT_PATTERN = String.raw`("(?:[^"\\]|\\.)*")|([,:]) |-?[0-9]{22,}|(?<![0-9])-?0\.0{6,}[0-9]+`;
const JSONB_TEXT_REPLACEMENT = String.raw`\1\2`;

/** Current schema version, recorded per table in `coatcheck_schema`. */
const SCHEMA_VERSION = 1;

/** The columns and types (as `format_type` spells them) a hand-made table must have to be adopted. */
const POSTGRES_COLUMN_TYPES = {
  id: 'text', user_id: 'text', data: 'jsonb', meta: 'jsonb', created_at: 'bigint', last_seen_at: 'bigint', expires_at: 'bigint', ip: 'text', user_agent: 'text',
};
/** Advisory lock taken while migrating: "coat" and 1. One lock per database is plenty. */
const MIGRATION_LOCK: [number, number] = [0x636f6174, 1];
/** Rows per statement when destroying many sessions, so no statement runs long or holds many locks. */
const DELETE_BATCH = 5_000;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Longest table name whose derived index names still fit PostgreSQL's 63-byte limit. */
// The longest names taken (from-url.ts checks URLs against the same numbers).
const MAX_TABLE_NAME = MAX_NAME_LENGTH.postgres.table;
const MAX_IDENTIFIER = MAX_NAME_LENGTH.postgres.schema;
/** Returned while a sweep deleted a full batch; the next call simply starts at the oldest again. */
const SWEEP_CURSOR = 'more';

/** The names one store uses, already quoted for SQL. */
interface Names {
  table: string;
  versions: string;
  userIndex: string;
  expiryIndex: string;
}

/**
 * Schema steps: entry `i` upgrades a table from version `i` to `i + 1`. Append only: a deployed
 * step never changes. Each step runs inside the migration transaction.
 */
const MIGRATIONS: ReadonlyArray<(n: Names) => string[]> = [
  (n) => [
    `CREATE TABLE IF NOT EXISTS ${n.table} (
      id text PRIMARY KEY,
      user_id text,
      data jsonb NOT NULL DEFAULT '{}'::jsonb,
      meta jsonb NOT NULL DEFAULT '{}'::jsonb,
      created_at bigint NOT NULL,
      last_seen_at bigint NOT NULL,
      expires_at bigint NOT NULL,
      ip text,
      user_agent text
    )`,
    // listByUser (ordered by creation) and destroyByUser, guests (user_id IS NULL) included.
    `CREATE INDEX IF NOT EXISTS ${n.userIndex} ON ${n.table} (user_id, created_at)`,
    // deleteExpired walks this from the oldest expiry.
    `CREATE INDEX IF NOT EXISTS ${n.expiryIndex} ON ${n.table} (expires_at)`,
  ],
];

/**
 * Hands every column back as the server's text. The app may have installed global type parsers
 * (int8 as BigInt, jsonb through a reviver...); the store parses its own columns instead.
 */
const RAW_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

const SUMMARY_COLUMNS = 'id, user_id, created_at, last_seen_at, expires_at, ip, user_agent';

interface SummaryRow {
  id: string;
  user_id: string | null;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
  ip: string | null;
  user_agent: string | null;
}
interface RecordRow extends SummaryRow {
  data: string | null;
  meta: string | null;
}

const UNSTORABLE_REASON =
  'strings containing U+0000 or unpaired surrogates cannot be stored in PostgreSQL (jsonb and text refuse them)';
/** How JSON.stringify writes U+0000 and lone surrogates (always lowercase hex). */
const UNSTORABLE_ESCAPE = /\\u(?:0000|d[89a-f])/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function unstorableText(text: string): boolean {
  return text.includes('\u0000') || LONE_SURROGATE.test(text);
}

function unstorableValue(value: JsonValue): boolean {
  if (typeof value === 'string') return unstorableText(value);
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some(unstorableValue);
  return Object.keys(value).some((key) => unstorableText(key) || unstorableValue(value[key] as JsonValue));
}

/**
 * Refuses values PostgreSQL would reject (so the error names the key instead of being a bare
 * SQL error). `json` is `object` serialized: only when it contains a suspicious escape is the
 * object walked, so ordinary saves pay one regex test.
 */
function assertStorable(object: Record<string, JsonValue>, json: string): void {
  if (!UNSTORABLE_ESCAPE.test(json)) return;
  for (const key of Object.keys(object)) {
    if (unstorableText(key) || unstorableValue(object[key] as JsonValue)) throw new InvalidValueError(key, UNSTORABLE_REASON);
  }
}

function assertStorableText(field: string, text: string | null | undefined): void {
  if (typeof text === 'string' && unstorableText(text)) throw new InvalidValueError(field, UNSTORABLE_REASON);
}

function checkIdentifier(option: string, value: string, max: number): void {
  if (typeof value !== 'string' || !IDENTIFIER.test(value) || value.length > max) {
    throw new ConfigError(
      `postgresStore: ${option} must be letters, digits and _ (not starting with a digit), at most ${max} characters; got ${JSON.stringify(value)}`,
    );
  }
}

function checkPositiveInteger(option: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) throw new ConfigError(`postgresStore: ${option} must be a positive integer`);
}

function ignoreClientError(): void {}

/** A wait for a pool connection shorter than this leaves a statement its whole queryTimeout. */
const QUEUE_WAIT_IGNORED_MS = 50;

/**
 * The server-side `statement_timeout` for a call given `ms`: a little shorter than the client's
 * own timeout, so PostgreSQL cancels a stuck statement (a lock wait) before the client stops
 * waiting for it. With equal timeouts the client usually gave up first, and a statement still
 * waiting on a lock could run once the lock was freed: a write the engine had answered 503 for.
 */
export function serverStatementTimeout(ms: number): number {
  return Math.max(1, ms - Math.min(250, Math.ceil(ms / 10)));
}

/** How often a backend checks, while it runs a statement, that its client is still connected (ms). */
const CONNECTION_CHECK_MS = 500;

/**
 * Turns `client_connection_check_interval` on for a connection of the store's own pool. Without
 * it, a statement whose connection was lost (its save already reported as failed) keeps waiting
 * for a row lock until statement_timeout and applies if the lock is freed first. PostgreSQL 14+
 * only, so not a startup parameter (`options: '-c ...'`), which an older server refuses with a
 * FATAL error, failing every connection: set only where pg_settings knows it, else nothing.
 */
const CONNECTION_CHECK_SQL = `SELECT set_config(name, '${CONNECTION_CHECK_MS}', false) FROM pg_settings WHERE name = 'client_connection_check_interval'`;

/** A timeout pg hands to setTimeout (and PostgreSQL to its int `statement_timeout`). */
function checkTimeout(option: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1 || value > MAX_TIMER_MS) {
    throw new ConfigError(`postgresStore: ${option} must be an integer number of milliseconds from 1 to ${MAX_TIMER_MS}, got ${String(value)}`);
  }
}

/**
 * Times as the bigint columns hold them (a bigint parameter refuses fractions): the past rounded
 * down, the expiry up, as the Redis store's times to live are. Comparisons floor their "now",
 * which against integer columns is the exact test, so the stored expiry is the one every query
 * goes by.
 */
const pastTime = Math.floor;
const expiryTime = Math.ceil;

function quote(identifier: string): string {
  // Identifiers were validated against IDENTIFIER, so quoting cannot be escaped out of.
  return `"${identifier}"`;
}

function decodeObject(text: string | null, column: string): Record<string, JsonValue> {
  const value = text === null ? null : parseJsonObject(text);
  if (value === null) throw new CorruptRecordError('postgres', `column ${column} is not a JSON object`);
  return value;
}

function toSummary(row: SummaryRow): SessionSummary {
  return {
    id: row.id,
    userId: row.user_id,
    createdAt: Number(row.created_at),
    lastSeenAt: Number(row.last_seen_at),
    expiresAt: Number(row.expires_at),
    ip: row.ip,
    userAgent: row.user_agent,
  };
}

const POSTGRES_OPTIONS = Object.keys({
  pool: true, connectionString: true, table: true, schema: true, createTable: true, queryTimeout: true, connectTimeout: true, maxConnections: true, clock: true,
} satisfies Record<keyof PostgresStoreOptions, true>);

/** connect-pg-simple's and pg's names for what these options do. */
const POSTGRES_HINTS: Readonly<Record<string, string>> = {
  conString: 'use connectionString',
  url: 'use connectionString',
  conObject: 'use pool (a pg.Pool the app owns) or connectionString',
  pgPromise: 'use pool (a pg.Pool the app owns)',
  tableName: 'use table',
  schemaName: 'use schema',
  createTableIfMissing: 'use createTable',
  pruneSessionInterval: 'expired sessions are deleted by createSessions (cleanupProbability) or sessions.clearExpired()',
  max: 'use maxConnections',
  connectionTimeoutMillis: 'use connectTimeout (ms)',
  query_timeout: 'use queryTimeout (ms)',
  statement_timeout: 'use queryTimeout (ms)',
};

/**
 * Creates a PostgreSQL-backed session store.
 *
 * @example
 * <!-- snippet: with stores, app-values -->
 * ```ts
 * // Sharing the app's pool: close() leaves it open.
 * import pg from 'pg';
 * const pool = new pg.Pool({ connectionString, connectionTimeoutMillis: 5_000 });
 * const store = postgresStore({ pool, table: 'sessions', createTable: false });
 * await store.migrate(); // or `coatcheck migrate` in the deploy step
 * ```
 * @throws {ConfigError} when the options are inconsistent or a table/schema name is not a plain identifier.
 */
export function postgresStore(options: PostgresStoreOptions): PostgresStore {
  checkFactoryOptions('postgresStore', options, POSTGRES_OPTIONS, {
    required: true,
    usage: 'postgresStore({ connectionString }) or postgresStore({ pool })',
    hints: POSTGRES_HINTS,
  });
  const { pool: appPool, connectionString } = options;
  if ((appPool === undefined) === (connectionString === undefined)) {
    // `connectionString: process.env.DATABASE_URL` with the variable unset arrives as undefined.
    const unset = appPool === undefined && 'connectionString' in options ? ' (connectionString is undefined: is the environment variable you passed unset?)' : '';
    throw new ConfigError(`postgresStore: pass exactly one of \`pool\` and \`connectionString\`${unset}`);
  }
  if (connectionString !== undefined && (typeof connectionString !== 'string' || connectionString === '')) {
    throw new ConfigError('postgresStore: connectionString must be a non-empty string');
  }
  const tableName = options.table ?? 'coatcheck_sessions';
  checkIdentifier('table', tableName, MAX_TABLE_NAME);
  if (options.schema !== undefined) checkIdentifier('schema', options.schema, MAX_IDENTIFIER);
  const queryTimeout = options.queryTimeout ?? 5_000;
  checkTimeout('queryTimeout', queryTimeout);
  const connectTimeout = options.connectTimeout ?? queryTimeout;
  checkTimeout('connectTimeout', connectTimeout);
  const maxConnections = options.maxConnections ?? 10;
  checkPositiveInteger('maxConnections', maxConnections);
  const createTable = options.createTable ?? true;
  // A string such as 'false' from the environment would otherwise count as true and run DDL.
  if (typeof createTable !== 'boolean') throw new ConfigError('postgresStore: createTable must be a boolean');
  const clock = options.clock ?? systemClock;

  const prefix = options.schema === undefined ? '' : `${quote(options.schema)}.`;
  const names: Names = {
    table: prefix + quote(tableName),
    versions: `${prefix}"coatcheck_schema"`,
    // CREATE INDEX puts the index in the table's schema; its name cannot be qualified.
    userIndex: quote(`${tableName}_user_idx`),
    expiryIndex: quote(`${tableName}_expires_idx`),
  };
  const t = names.table;

  const ownsPool = appPool === undefined;
  const pool =
    appPool ??
    new pg.Pool({
      connectionString,
      max: maxConnections,
      connectionTimeoutMillis: connectTimeout,
      // Server side: a stuck statement (lock wait, huge scan) is cancelled and its connection kept,
      // before the client's own timeout below gives up on it.
      statement_timeout: serverStatementTimeout(queryTimeout),
      // Client side: also covers a server or network that stopped answering altogether.
      query_timeout: queryTimeout,
      // Idle connections must not keep a CLI or test process alive.
      allowExitOnIdle: true,
      application_name: 'coatcheck',
    });
  if (ownsPool) {
    // An idle connection dropped by the server emits 'error' on the pool; unhandled, that would
    // crash the process. The pool already discards the client; the next query reconnects.
    pool.on('error', () => {});
  }
  // Connections of the store's own pool that had CONNECTION_CHECK_SQL sent (see run).
  const checkedClients = new WeakSet<pg.PoolClient>();

  function config(text: string, values: unknown[] = []): pg.QueryConfig {
    // query_timeout per query bounds calls on an app-owned pool too (pg honours it per query).
    return { text, values, types: RAW_TYPES, query_timeout: queryTimeout } as pg.QueryConfig;
  }

  let schemaReady: Promise<void> | undefined;
  function ensureSchema(): Promise<void> {
    if (!createTable) return Promise.resolve();
    // Shared by concurrent first calls; forgotten on failure so a later call retries.
    schemaReady ??= migrateTable().then(() => undefined, (error: unknown) => {
      schemaReady = undefined;
      // During a request a missing schema fails that call like an outage (503, StoreError), with
      // the same advice as migrate()'s ConfigError and pg's error at the end of the cause chain.
      const text = missingSchema(error);
      throw text === null ? error : new StoreError('postgres', 'migrate', new Error(text, { cause: error }));
    });
    return schemaReady;
  }

  /**
   * One statement on a pool connection. `queryTimeout` bounds the whole call, the wait for a
   * connection included: PostgreSQL's `statement_timeout` and pg's `query_timeout` only start once
   * the statement is sent, so a call that queued behind a busy pool could otherwise run (and
   * apply: a spent token, a saved key) after the engine had answered 503. A call that waited at
   * all is given only what is left (server side too on the store's own pool); one that waited it
   * all out is not sent.
   */
  async function run<R extends object>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    await ensureSchema();
    const asked = performance.now();
    const client = await pool.connect();
    const waited = performance.now() - asked;
    const left = Math.floor(queryTimeout - waited);
    if (waited >= QUEUE_WAIT_IGNORED_MS && left < 1) {
      // Never sent: the connection goes back as it came, for the next call.
      client.release();
      throw new Error(`no connection within queryTimeout (${queryTimeout} ms): waited ${Math.round(waited)} ms`);
    }
    // A checked-out client reports a lost connection as an 'error' event too (pool.query listens
    // for it itself): the query's rejection carries it; unheard, the event would crash the process.
    client.on('error', ignoreClientError);
    // Server side only on the store's own pool: an app's pool keeps its connections' settings
    // (the client-side query_timeout below still bounds the call there).
    const shorten = waited >= QUEUE_WAIT_IGNORED_MS && ownsPool;
    let shortened = false;
    // As pool.query does: a client whose query failed is not reused (its state is unknown).
    let failed: Error | boolean = false;
    try {
      // Once per connection, before its first statement. Awaited, not queued from the pool's
      // 'connect' event: pg 8.23 deprecates a query sent while another runs. A server refusing
      // the value (a platform that cannot check) leaves the check off; a lost or silent
      // connection fails the call as the statement itself would.
      if (ownsPool && !checkedClients.has(client)) {
        checkedClients.add(client);
        await client.query(config(CONNECTION_CHECK_SQL)).catch((error: unknown) => {
          if ((error as { severity?: unknown } | null)?.severity === undefined) throw error;
        });
      }
      if (waited < QUEUE_WAIT_IGNORED_MS) return await client.query<R>(config(text, values));
      if (shorten) {
        await client.query(config(`SELECT set_config('statement_timeout', $1, false)`, [String(serverStatementTimeout(left))]));
        shortened = true;
      }
      return await client.query<R>({ ...config(text, values), query_timeout: left } as pg.QueryConfig);
    } catch (error) {
      failed = error instanceof Error ? error : true;
      throw error;
    } finally {
      // Back to the pool's default (its connections start with the statement_timeout set above).
      if (shortened && failed === false) await client.query(config('RESET statement_timeout')).catch((error: unknown) => (failed = error instanceof Error ? error : true));
      client.off('error', ignoreClientError);
      client.release(failed === false ? undefined : failed);
    }
  }


  /**
   * The recorded schema version, or 0 when there is none or the session table itself is missing
   * (dropped, or left out of a restore, while its version row stayed): then every step reruns.
   */
  async function installedVersion(query: (c: pg.QueryConfig) => Promise<pg.QueryResult<{ version: string; present: string }>>): Promise<number> {
    const result = await query(
      config(`SELECT version, to_regclass($2::text) IS NOT NULL AS present FROM ${names.versions} WHERE table_name = $1`, [tableName, t]),
    );
    const row = result.rows[0];
    return row && row.present === 't' ? Number(row.version) : 0;
  }

  /**
   * `migrate()`. A missing schema (3F000) is the options' mistake, not an outage, and the store
   * never creates schemas: a {@link ConfigError} saying what to create, pg's error as its `cause`.
   * Any other failure is passed on as it is.
   */
  async function migrate(): Promise<void> {
    try {
      MIGRATIONS_RUN.set(store, await migrateTable());
    } catch (error) {
      const text = missingSchema(error);
      if (text === null) throw error;
      const failure = new ConfigError(`postgresStore: ${text}`);
      // ConfigError takes no cause; set it as Error's constructor does (own, not enumerable).
      Object.defineProperty(failure, 'cause', { value: error, writable: true, configurable: true, enumerable: false });
      throw failure;
    }
  }

  /** What to do about a migration that failed for want of a schema (pg's 3F000), or null for any other failure. */
  function missingSchema(error: unknown): string | null {
    if (!(error instanceof Error) || (error as { code?: unknown }).code !== '3F000') return null;
    const schema = options.schema;
    return schema === undefined
      ? `cannot create table ${tableName}: no schema on the connection's search_path exists; give the schema option, or create a schema on the search_path; PostgreSQL says: ${error.message}`
      : `cannot create table ${schema}.${tableName}: create the schema first (CREATE SCHEMA "${schema}"; the store creates tables, never schemas) or correct its name; PostgreSQL says: ${error.message}`;
  }

  async function migrateTable(): Promise<PostgresMigration> {
    // Fast path without lock or DDL: an app role without CREATE rights can start once migrated.
    // A newer version (written by a newer coatcheck during a rolling deploy) is left alone.
    try {
      const installed = await installedVersion((c) => pool.query(c));
      if (installed >= SCHEMA_VERSION) return { fromVersion: installed, version: installed };
    } catch (error) {
      if ((error as { code?: unknown }).code !== '42P01') throw error; // undefined_table: never migrated
    }
    const client = await pool.connect();
    let failure: unknown;
    const onError = (error: Error): void => {
      failure = error;
    };
    // A checked-out client with no 'error' listener would crash the process if the link drops.
    client.on('error', onError);
    try {
      await client.query(config('BEGIN'));
      // Serializes racing processes: CREATE ... IF NOT EXISTS alone can still fail with a
      // duplicate-key error when two sessions create the same table at the same moment.
      await client.query(config('SELECT pg_advisory_xact_lock($1::int, $2::int)', MIGRATION_LOCK));
      await client.query(
        config(`CREATE TABLE IF NOT EXISTS ${names.versions} (
          table_name text PRIMARY KEY,
          version integer NOT NULL,
          migrated_at bigint NOT NULL
        )`),
      );
      const from = await installedVersion((c) => client.query(c));
      let adopted = false;
      if (from === 0) {
        // No version row: the documented DDL run by hand is adopted; another library's table
        // (connect-pg-simple's, say) is refused, never altered.
        // In the schema CREATE TABLE would use (the option's, or the first on the search_path),
        // not anywhere on the search_path, as to_regclass would look.
        const relation = await client.query<{ oid: string; kind: string }>(
          config(
            `SELECT c.oid, c.relkind AS kind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relname = $1 AND n.nspname = COALESCE($2::text, current_schema())`,
            [tableName, options.schema ?? null],
          ),
        );
        const found = relation.rows[0];
        if (found !== undefined) {
          adopted = true;
          const described = await client.query<{ name: string; type: string; not_null: string; has_default: string; id_key: string }>(
            config(
              `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null, a.atthasdef AS has_default,
                 EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indpred IS NULL
                   AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum) AS id_key
               FROM pg_attribute a WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
              [found.oid],
            ),
          );
          const columns = described.rows.map((row) => ({ name: row.name, type: row.type, notNull: row.not_null === 't', hasDefault: row.has_default === 't' }));
          const idIsKey = described.rows.some((row) => row.name === 'id' && row.id_key === 't');
          const notTable = found.kind === 'r' || found.kind === 'p' ? null : 'it is not a plain table (a view, say)';
          const foreign = foreignTableMessage('postgresStore', tableName, columns, POSTGRES_COLUMN_TYPES, idIsKey, notTable);
          if (foreign !== null) throw new ConfigError(foreign);
        }
      }
      for (let version = from; version < MIGRATIONS.length; version++) {
        for (const statement of MIGRATIONS[version]?.(names) ?? []) await client.query(config(statement));
      }
      if (from < SCHEMA_VERSION) {
        await client.query(
          config(
            `INSERT INTO ${names.versions} (table_name, version, migrated_at) VALUES ($1, $2, $3)
             ON CONFLICT (table_name) DO UPDATE SET version = EXCLUDED.version, migrated_at = EXCLUDED.migrated_at`,
            [tableName, SCHEMA_VERSION, Date.now()],
          ),
        );
      }
      await client.query(config('COMMIT'));
      return { fromVersion: from, version: Math.max(from, SCHEMA_VERSION), ...(adopted && { adopted }) };
    } catch (error) {
      failure ??= error;
      throw error;
    } finally {
      client.off('error', onError);
      // After a failure the connection's state is unknown (open transaction, timed-out query):
      // destroy it rather than return it; the server then rolls the transaction back.
      client.release(failure !== undefined);
    }
  }

  /**
   * Deletes every row matching `where` in batches of DELETE_BATCH, so deleting a million guest
   * sessions neither hits the statement timeout nor holds a million row locks. Batches continue
   * while one found a full batch (not while it deleted one: rows deleted concurrently elsewhere
   * must not end the loop early). `ARRAY(...)` makes the delete an index lookup by id. By id,
   * not ctid: these rows are not locked first, and a row touched meanwhile gets a new ctid, which
   * the delete's re-check would then miss, leaving that session alive. `where` is repeated in the
   * DELETE: a row whose owner changed while the delete waited for its lock is re-checked against
   * its new version (READ COMMITTED) and kept.
   */
  async function deleteInBatches(where: string, values: unknown[]): Promise<number> {
    const limit = `$${values.length + 1}`;
    const text = `WITH picked AS (SELECT ARRAY(SELECT id FROM ${t} WHERE ${where} LIMIT ${limit}) AS ids),
      gone AS (DELETE FROM ${t} WHERE id = ANY((SELECT ids FROM picked)::text[]) AND ${where} RETURNING 1)
      SELECT (SELECT cardinality(ids) FROM picked) AS picked, (SELECT count(*) FROM gone) AS deleted`;
    let total = 0;
    for (;;) {
      const result = await run<{ picked: string; deleted: string }>(text, [...values, DELETE_BATCH]);
      const row = result.rows[0];
      total += Number(row?.deleted ?? 0);
      if (Number(row?.picked ?? 0) < DELETE_BATCH) return total;
    }
  }

  /** `(column - unset) || set`: the column as the changes leave it (the column itself when they are empty). */
  function keyChangesSql(column: 'data' | 'meta', changes: KeyChanges | undefined, param: (value: unknown) => string): string {
    let expression: string = column;
    if (!changes) return expression;
    const unset = changes.unset ?? [];
    if (unset.length > 0) {
      for (const key of unset) assertStorableText(key, key);
      expression = `(${expression} - ${param(unset)}::text[])`;
    }
    const set = changes.set;
    if (set && Object.keys(set).length > 0) {
      const json = JSON.stringify(set);
      assertStorable(set, json);
      expression = `${expression} || ${param(json)}::jsonb`;
    }
    return expression;
  }

  /**
   * An update's statement and its parameters. `size` says how a patch's size bound is checked, in
   * the WHERE clause, so on the row as locked: 'none' (no bound); 'text', the jsonb text of the
   * record the patch leaves within the bound (that text, with its quotes, spaces and braces, is
   * never less than the measure, so it settles any record well within the bound); 'exact', the
   * measure of what the patch leaves within the bound or no larger than the row's now (see
   * JSONB_TEXT_PATTERN); 'check', no update but a SELECT of that test (`fits`) and the measure
   * (`bytes`) for a row the other conditions still match.
   */
  function updateStatement(id: string, patch: SessionPatch, size: 'none' | 'text' | 'exact' | 'check'): [string, unknown[]] {
    const values: unknown[] = [id];
    const param = (value: unknown): string => {
      values.push(value);
      return `$${values.length}`;
    };
    const data = keyChangesSql('data', patch.data, param);
    const meta = keyChangesSql('meta', patch.meta, param);
    // A guard is part of the WHERE clause: after waiting for a row lock, PostgreSQL re-checks it
    // against the newest row version, so of N concurrent guarded updates only the valid ones apply.
    // Live rows only: a row past its expiry awaits the sweep, and a save must not revive it.
    // The save's lastSeenAt is the engine's "now"; floored for the bigint comparison, which
    // for integer expiries is the same test.
    let where = `id = $1 AND expires_at > ${param(Math.floor(patch.lastSeenAt))}`;
    if (patch.guard?.present?.length) where += ` AND meta ?& ${param(patch.guard.present)}::text[]`;
    if (patch.guard?.absent?.length) where += ` AND NOT (meta ?| ${param(patch.guard.absent)}::text[])`;
    if (size !== 'none') {
      const bound = `${param(Math.floor(patch.maxBytes as number))}::bigint`;
      if (size === 'text') {
        where += ` AND octet_length((${data})::text) + octet_length((${meta})::text) <= ${bound}`;
      } else {
        const pattern = `${param(JSONB_TEXT_PATTERN)}::text`;
        const replacement = `${param(JSONB_TEXT_REPLACEMENT)}::text`;
        const measure = (d: string, m: string): string =>
          `(SELECT coalesce(sum(octet_length(key) + octet_length(regexp_replace(value::text, ${pattern}, ${replacement}, 'g'))), 0) FROM (SELECT key, value FROM jsonb_each(${d}) UNION ALL SELECT key, value FROM jsonb_each(${m})) AS entries)`;
        // CASE: the record as it stands is measured only when the new one is over the bound.
        const fits = `(CASE WHEN ${measure(data, meta)} <= ${bound} THEN true ELSE ${measure(data, meta)} <= ${measure('data', 'meta')} END)`;
        if (size === 'check') return [`SELECT ${fits} AS fits, ${measure(data, meta)} AS bytes FROM ${t} WHERE ${where}`, values];
        where += ` AND ${fits}`;
      }
    }
    const assignments: string[] = [];
    if (data !== 'data') assignments.push(`data = ${data}`);
    if (meta !== 'meta') assignments.push(`meta = ${meta}`);
    if (patch.userId !== undefined) {
      assertStorableText('userId', patch.userId);
      assignments.push(`user_id = ${param(patch.userId)}`);
    }
    if (patch.keepLater) {
      // Computed against the row as locked, so a later time a parallel save wrote stays.
      assignments.push(`last_seen_at = GREATEST(last_seen_at, ${param(pastTime(patch.lastSeenAt))})`, `expires_at = GREATEST(expires_at, ${param(expiryTime(patch.expiresAt))})`);
    } else {
      assignments.push(`last_seen_at = ${param(pastTime(patch.lastSeenAt))}`, `expires_at = ${param(expiryTime(patch.expiresAt))}`);
    }
    return [`UPDATE ${t} SET ${assignments.join(', ')} WHERE ${where}`, values];
  }

  const store: PostgresStore = {
    name: 'postgres',
    migrate,

    async get(id) {
      const result = await run<RecordRow>(`SELECT ${SUMMARY_COLUMNS}, data, meta FROM ${t} WHERE id = $1`, [id]);
      const row = result.rows[0];
      if (!row) return null;
      const record: SessionRecord = {
        ...toSummary(row),
        data: decodeObject(row.data, 'data'),
        meta: decodeObject(row.meta, 'meta'),
      };
      return record;
    },

    async create(record) {
      const data = JSON.stringify(record.data);
      const meta = JSON.stringify(record.meta);
      assertStorable(record.data, data);
      assertStorable(record.meta, meta);
      assertStorableText('userId', record.userId);
      assertStorableText('ip', record.ip);
      assertStorableText('userAgent', record.userAgent);
      // ON CONFLICT DO NOTHING rather than catching 23505: same result, no ERROR in the server log.
      const result = await run(
        `INSERT INTO ${t} (id, user_id, data, meta, created_at, last_seen_at, expires_at, ip, user_agent)
         VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO NOTHING`,
        [record.id, record.userId, data, meta, pastTime(record.createdAt), pastTime(record.lastSeenAt), expiryTime(record.expiresAt), record.ip, record.userAgent],
      );
      if (result.rowCount !== 1) throw new StoreConflictError('postgres');
    },

    async update(id, patch: SessionPatch) {
      // One statement: the row lock orders concurrent saves, and each re-reads the latest data,
      // so saves that change different keys all survive.
      const sized = patch.maxBytes !== undefined && (patch.data !== undefined || patch.meta !== undefined);
      if (!sized) return (await run(...updateStatement(id, patch, 'none'))).rowCount === 1;
      // With a size bound: first the cheap test of the record's jsonb text, enough for any
      // record well within the bound; if no row was written, the exact one, key by key.
      if ((await run(...updateStatement(id, patch, 'text'))).rowCount === 1) return true;
      for (let attempt = 0; attempt < 3; attempt++) {
        // No row written: gone, expired, guarded off, or its text over the bound (jsonb's text
        // is longer than the measure: near the bound, a record that fits fails that test).
        // Written with the exact test, key by key, on the row as locked.
        if ((await run(...updateStatement(id, patch, 'exact'))).rowCount === 1) return true;
        // Still nothing: read the row against the same conditions. None matches (false), or it
        // is too large; fits only if a parallel save changed it in between (then once more).
        const row = (await run<{ fits: string; bytes: string }>(...updateStatement(id, patch, 'check'))).rows[0];
        if (row === undefined) return false;
        if (row.fits !== 't') throw new SessionTooLargeError(Number(row.bytes), patch.maxBytes as number);
      }
      // Only reachable if parallel saves keep changing the row between the read and the write.
      throw new Error('postgres store: the session kept changing during a size-bounded update');
    },

    async touch(id, times) {
      // Live rows only, as in update.
      const result = await run(`UPDATE ${t} SET last_seen_at = $2, expires_at = $3 WHERE id = $1 AND expires_at > $4`, [
        id,
        pastTime(times.lastSeenAt),
        expiryTime(times.expiresAt),
        Math.floor(times.lastSeenAt),
      ]);
      return result.rowCount === 1;
    },

    async destroy(id) {
      await run(`DELETE FROM ${t} WHERE id = $1`, [id]);
    },

    async destroyIfEmpty(id, ignoredMeta): Promise<EmptyDestroyResult> {
      // The test is part of the DELETE: a parallel save either commits first (and the row is
      // kept) or waits for the row lock and finds no row (its request gets "session gone").
      const deleted = await run(`DELETE FROM ${t} WHERE id = $1 AND user_id IS NULL AND data = '{}'::jsonb AND (meta - $2::text[]) = '{}'::jsonb`, [
        id,
        [...ignoredMeta],
      ]);
      if (deleted.rowCount === 1) return 'deleted';
      const found = await run(`SELECT 1 FROM ${t} WHERE id = $1`, [id]);
      return found.rowCount === 1 ? 'kept' : 'absent';
    },

    async destroyByUser(userId, except = []) {
      const keep = [...except];
      if (userId === null) return deleteInBatches('user_id IS NULL AND NOT (id = ANY($1::text[]))', [keep]);
      return deleteInBatches('user_id = $1 AND NOT (id = ANY($2::text[]))', [userId, keep]);
    },

    async destroyAll() {
      return deleteInBatches('true', []);
    },

    async listByUser(userId) {
      const result = await run<SummaryRow>(
        `SELECT ${SUMMARY_COLUMNS} FROM ${t} WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at, id`,
        // Floored: a bigint parameter refuses fractions, and for integer times `> floor(now)` equals `> now`.
        [userId, Math.floor(clock.now())],
      );
      return result.rows.map(toSummary);
    },

    async deleteExpired(sweep: ExpiredSweep): Promise<SweepResult> {
      const limit = Math.floor(sweep.limit);
      if (!(limit >= 1)) throw new RangeError('postgresStore: deleteExpired limit must be at least 1');
      // Oldest first through the expiry index; SKIP LOCKED so a sweep never waits on (or blocks)
      // a request saving a session, and two sweepers split the work instead of queueing. A session
      // extended concurrently is re-checked under the lock and kept.
      // Deleting by ctid skips a primary-key lookup per row (about 40% faster on 1M rows); it is
      // safe only because FOR UPDATE locks those very tuples in this statement, so none can move.
      // The cursor carries no position: deleted rows are gone, so each call starts at the oldest.
      const result = await run(
        `DELETE FROM ${t} WHERE ctid = ANY(ARRAY(
           SELECT ctid FROM ${t} WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
         ))`,
        [Math.floor(sweep.before), limit],
      );
      const deleted = result.rowCount ?? 0;
      return { deleted, cursor: deleted === limit ? SWEEP_CURSOR : null };
    },

    async stats(now, options): Promise<StoreStats> {
      const limit = topUsersLimit(options);
      const at = Math.floor(now);
      // Two full scans of the table (counts, then the per-user ranking): an admin command, not a
      // dashboard to poll. COLLATE "C" ranks ties in code-point order whatever the database's locale.
      // Rotation forwarders ($2) are no one's sessions; expired ones still count as awaiting the sweep.
      const totals = await run<{ sessions: string; expired: string; users: string; guests: string }>(
        `SELECT count(*) FILTER (WHERE expires_at > $1 AND user_id IS DISTINCT FROM $2) AS sessions,
                count(*) FILTER (WHERE expires_at <= $1) AS expired,
                count(DISTINCT user_id) FILTER (WHERE expires_at > $1 AND user_id <> $2) AS users,
                count(*) FILTER (WHERE expires_at > $1 AND user_id IS NULL) AS guests
         FROM ${t}`,
        [at, FORWARDER_USER],
      );
      const top =
        limit === 0
          ? []
          : (
              await run<{ user_id: string; sessions: string }>(
                `SELECT user_id, count(*) AS sessions FROM ${t}
                 WHERE expires_at > $1 AND user_id IS NOT NULL AND user_id <> $3
                 GROUP BY user_id ORDER BY count(*) DESC, user_id COLLATE "C" LIMIT $2`,
                [at, limit, FORWARDER_USER],
              )
            ).rows.map((row) => ({ userId: row.user_id, sessions: Number(row.sessions) }));
      const row = totals.rows[0];
      return {
        sessions: Number(row?.sessions ?? 0),
        expired: Number(row?.expired ?? 0),
        users: Number(row?.users ?? 0),
        guests: Number(row?.guests ?? 0),
        topUsers: top,
      };
    },

    async close() {
      if (ownsPool && !pool.ended && !pool.ending) await pool.end();
    },
  };
  return store;
}
