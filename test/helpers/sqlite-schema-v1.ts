/**
 * A SQLite file as coatcheck's schema 1 left it (before the sweep hint), for migration tests.
 * The DDL is frozen here on purpose: it must not follow the store's current schema.
 */
import Database from 'better-sqlite3';

export interface V1Row {
  id: string;
  userId: string | null;
  data: string;
  createdAt: number;
  expiresAt: number;
}

export function writeSchemaV1(path: string, rows: V1Row[] = [], table = 'coatcheck_sessions'): void {
  const raw = new Database(path);
  try {
    raw.exec(`
      CREATE TABLE coatcheck_schema (name TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL);
      INSERT INTO coatcheck_schema VALUES ('${table}', 1);
      CREATE TABLE "${table}" (id TEXT NOT NULL PRIMARY KEY, user_id TEXT, data TEXT NOT NULL, meta TEXT NOT NULL,
        created_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, ip TEXT, user_agent TEXT) STRICT;
      CREATE INDEX "${table}_user" ON "${table}" (user_id, created_at);
      CREATE INDEX "${table}_expires" ON "${table}" (expires_at, user_id);
    `);
    const insert = raw.prepare(`INSERT INTO "${table}" VALUES (?, ?, ?, '{}', ?, ?, ?, NULL, NULL)`);
    for (const row of rows) insert.run(row.id, row.userId, row.data, row.createdAt, row.createdAt, row.expiresAt);
  } finally {
    raw.close();
  }
}
