/**
 * What a SQL store's schema looks like before and after `migrate`, read straight from the
 * database, so the command can say what it did (created, upgraded, nothing) rather than guess.
 */
import { existsSync } from 'node:fs';

export interface SchemaState {
  /** The session table exists. */
  exists: boolean;
  /** Its version in the `coatcheck_schema` table, or null when not recorded. */
  version: number | null;
}

/** Read-only look at a SQLite file; a missing file (or `:memory:`) has no table. */
export async function sqliteSchemaState(path: string, table: string): Promise<SchemaState> {
  if (path === ':memory:' || !existsSync(path)) return { exists: false, version: null };
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    // SQLite table names are case-insensitive.
    const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE").get(table) !== undefined;
    const versions = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'coatcheck_schema'").get() !== undefined;
    const row = versions ? (db.prepare('SELECT version FROM coatcheck_schema WHERE name = ?').get(table) as { version: number } | undefined) : undefined;
    return { exists, version: row?.version ?? null };
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
