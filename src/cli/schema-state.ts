/**
 * What a SQL store's schema looks like before and after `migrate`, read straight from the
 * database, so the command can say what it did (created, upgraded, nothing) rather than guess.
 */
import { existsSync } from 'node:fs';
import { unbuiltSqliteError } from '../stores/missing-peer.js';

export interface SchemaState {
  /** The session table exists. */
  exists: boolean;
  /** Its version in the `coatcheck_schema` table, or null when not recorded. */
  version: number | null;
}

/** A SQLite table's state, and the spelling of its name the store must be given. */
export interface SqliteSchemaState extends SchemaState {
  /**
   * The table's name as the store must be given it. SQLite matches table names without regard to
   * case, but `coatcheck_schema` rows are looked up by exact name: a `?table=` in another case
   * names the same table, yet would find no version row (and `migrate` would rewrite every row
   * to "upgrade" it). So this is the name of the table's version row when there is one (the one
   * with the highest version, if rows were written under several spellings), else its name in
   * `sqlite_master`, else the name as given (no such table).
   */
  name: string;
}

/** Read-only look at a SQLite file; a missing file (or `:memory:`) has no table. */
export async function sqliteSchemaState(path: string, table: string): Promise<SqliteSchemaState> {
  if (path === ':memory:' || !existsSync(path)) return { exists: false, version: null, name: table };
  const { default: Database } = await import('better-sqlite3');
  let db: InstanceType<typeof Database>;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw unbuiltSqliteError(error) ?? error;
  }
  try {
    // SQLite table names are case-insensitive: both lookups ignore case (see SqliteSchemaState.name).
    const stored = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE").pluck().get(table) as string | undefined;
    const versions = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'coatcheck_schema' COLLATE NOCASE").get() !== undefined;
    const rows = versions
      ? (db.prepare('SELECT name, version FROM coatcheck_schema WHERE name = ? COLLATE NOCASE').all(table) as Array<{ name: string; version: number }>)
      : [];
    // Highest version first; among equals, the spelling in sqlite_master, then the one given.
    const rank = (name: string) => (name === stored ? 0 : name === table ? 1 : 2);
    const row = rows.sort((a, b) => b.version - a.version || rank(a.name) - rank(b.name) || (a.name < b.name ? -1 : 1))[0];
    return { exists: stored !== undefined, version: row?.version ?? null, name: row?.name ?? stored ?? table };
  } finally {
    db.close();
  }
}

/** One short connection to PostgreSQL; `schema` absent means the connection's search_path. */
export async function postgresSchemaState(url: string, schema: string | undefined, table: string): Promise<SchemaState> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, query_timeout: 5_000 });
  // A dropped connection must reject the query in flight, not crash the process.
  client.on('error', () => {});
  await client.connect();
  try {
    // Names were checked to be plain identifiers (store-url.ts), so quoting them is safe.
    const qualify = (name: string) => (schema ? `"${schema}"."${name}"` : `"${name}"`);
    const found = await client.query<{ sessions: boolean; versions: boolean }>(
      'SELECT to_regclass($1) IS NOT NULL AS sessions, to_regclass($2) IS NOT NULL AS versions',
      [qualify(table), qualify('coatcheck_schema')],
    );
    const { sessions = false, versions = false } = found.rows[0] ?? {};
    if (!versions) return { exists: sessions, version: null };
    const row = await client.query<{ version: number }>(`SELECT version FROM ${qualify('coatcheck_schema')} WHERE table_name = $1`, [table]);
    return { exists: sessions, version: row.rows[0]?.version ?? null };
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Tables whose schema and name differ from the ones given only in letter case. coatcheck quotes
 * PostgreSQL names, so they are case-sensitive: `?table=Coatcheck_Sessions` names a table other
 * than `coatcheck_sessions`, and is not found (nor would the app find it) until `migrate` creates
 * it, empty, next to the real one. Each as `schema.table`; without `schema`, the schemas on the
 * connection's search_path are searched.
 */
export async function postgresCaseVariants(url: string, schema: string | undefined, table: string): Promise<string[]> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, query_timeout: 5_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    const found = await client.query<{ name: string }>(
      `SELECT n.nspname || '.' || c.relname AS name
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND lower(c.relname) = lower($1)
          AND CASE WHEN $2::text IS NULL THEN n.nspname = ANY (current_schemas(false)) ELSE lower(n.nspname) = lower($2::text) END
          AND NOT (c.relname = $1 AND n.nspname = coalesce($2::text, n.nspname))
        ORDER BY 1 LIMIT 5`,
      [table, schema ?? null],
    );
    return found.rows.map((row) => row.name);
  } finally {
    await client.end().catch(() => {});
  }
}
