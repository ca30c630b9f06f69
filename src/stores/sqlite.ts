/**
 * SQLite store (better-sqlite3): the embedded default. One file, no server, safe to share between
 * processes on one machine (WAL mode, `IMMEDIATE` write transactions, a busy timeout).
 *
 * The driver is synchronous, and so are the per-request methods (`get`, `update`, `touch`: the
 * value itself, a driver error thrown), which lets the engine load and save in the same tick; the
 * others return promises, like a networked store's. The heavy work, `deleteExpired`
 * and WAL checkpoints, runs in a worker thread for a file the store opened (see
 * `./sqlite-sweeper.ts` and docs/stores/sqlite.md); `:memory:` and app-owned connections do it
 * inline.
 *
 * @module coatcheck/stores/sqlite
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { ConfigError, CorruptRecordError, StoreConflictError } from '../errors.js';
import { type Clock, systemClock } from '../core/clock.js';
import { parseJsonObject } from '../core/json.js';
import { FORWARDER_USER } from '../core/reserved-users.js';
import type { JsonValue } from '../types.js';
import {
  applyKeyChanges,
  checkMaxBytes,
  foreignTableMessage,
  guardHolds,
  topUsersLimit,
  type EmptyDestroyResult,
  type ExpiredSweep,
  type SessionPatch,
  type SessionRecord,
  type SessionSummary,
  type SchemaMigration,
  type Store,
  type StoreStats,
  type SweepResult,
} from './types.js';
import { SWEEP_SLACK_MAX_MS, liveRowsCte, sweepBatchSql, sweepHint, sweepHintHolds, sweepSlack } from './sqlite-sweep-hint.js';
import { retryWhileBusy } from './sqlite-busy.js';
import {
  DEFAULT_SWEEPER_TUNING,
  SIGNAL_SLOTS,
  SIGNAL_STOP,
  SIGNAL_WORKER,
  SIGNAL_WRITERS,
  SWEEPER_KIND,
  WORKER_CHECKPOINTING,
  WORKER_IDLE,
  refusedWorkerFlags,
  workerExecArgv,
  type SweeperData,
  type SweeperReply,
  type SweeperRequest,
  type SweepReport,
} from './sqlite-sweeper.js';
import { isDirectory } from './is-directory.js';
import { unbuiltSqliteError } from './missing-peer.js';
import { MAX_NAME_LENGTH } from './from-url.js';
import { checkFactoryOptions } from '../core/known-options.js';

/** Options of {@link sqliteStore}. Give `path` or `database`, not both. */
export interface SqliteStoreOptions {
  /**
   * Database file, or `':memory:'` (one connection, gone on close). Default `'./data/sessions.db'`.
   * A missing parent directory is created. The store opens the connection and `close()` closes it.
   */
  path?: string | undefined;
  /**
   * A connection the app already opened and owns (e.g. to keep sessions in the app's database).
   * The store only creates its table and statements on it: it leaves the connection's pragmas
   * alone (the app should use WAL and a busy timeout itself) and `close()` does not close it.
   */
  database?: Database.Database | undefined;
  /** Table name, a plain identifier (`/^[A-Za-z_][A-Za-z0-9_]{0,62}$/`). Default `'coatcheck_sessions'`. */
  table?: string | undefined;
  /**
   * Create the table, or migrate it to this version's schema, on open. Default `true`. With
   * `false` the store changes no schema and creates no file: it opens only an existing file
   * whose table is at this version's schema, else throws {@link ConfigError} (run
   * `coatcheck migrate`, or open it once with the default). For tools that must not change what
   * they look at, like the CLI.
   */
  createTable?: boolean | undefined;
  /**
   * How long a write waits for another connection's write lock before failing with SQLITE_BUSY,
   * in ms. Default 5 000. Applies only to a connection the store opens (`path`). The wait blocks
   * the event loop (the driver is synchronous), so keep it modest.
   */
  busyTimeout?: number | undefined;
  /**
   * Run `deleteExpired` in a worker thread with its own connection (default `true`), so sweeping
   * never blocks the event loop. Only possible for a file the store opens (`path`); `':memory:'`
   * and an app-owned `database` always sweep on the calling thread. `false` sweeps inline too.
   */
  sweepInWorker?: boolean | undefined;
  /**
   * Copy the WAL back into the database file (checkpoint) in that same worker thread, about
   * every {@link BACKGROUND_CHECKPOINT_MS} ms while the app writes (default `true`), instead of
   * inside whichever request's commit crosses SQLite's 1 000-page auto-checkpoint. Same
   * conditions as `sweepInWorker`; `false` leaves checkpoints to SQLite.
   */
  checkpointInWorker?: boolean | undefined;
  /** Time source for "not expired yet" in `listByUser`; pass the same clock as `createSessions`. */
  clock?: Clock | undefined;
}

/** Default location of the database file, relative to the working directory. */
export const DEFAULT_SQLITE_PATH = './data/sessions.db';

// At most MAX_NAME_LENGTH.sqlite.table characters (from-url.ts checks URLs against the same number).
const TABLE_NAME = new RegExp(`^[A-Za-z_][A-Za-z0-9_]{0,${MAX_NAME_LENGTH.sqlite.table - 1}}$`);

/**
 * Times as the STRICT INTEGER columns hold them (a fractional value is refused, not stored):
 * the past rounded down, the expiry up, as the PostgreSQL store does. Comparisons floor their
 * "now", which against integer columns is the exact test.
 */
const pastTime = Math.floor;
const expiryTime = Math.ceil;

/** Records which schema version each coatcheck table is at (one row per table name). */
const SCHEMA_TABLE = 'coatcheck_schema';

/**
 * Schema migrations: entry `n` moves a table from version `n` to `n + 1`, so the current version
 * is the list's length. Append new steps; never edit a released one.
 */
const MIGRATIONS: ReadonlyArray<(db: Database.Database, table: string) => void> = [
  // 0 → 1: the table and its two indexes. STRICT makes SQLite refuse wrongly typed values
  // instead of silently storing them. A rowid table (not WITHOUT ROWID): rows carry JSON blobs
  // of a few KB, which WITHOUT ROWID tables handle poorly, and the sweep can delete by rowid
  // straight from the expires_at index. user_id rides along in that index (free: every touch
  // rewrites the entry anyway) so `stats` counts from the index instead of reading every row.
  // (Step 1 → 2 replaces that index with one on the sweep hint.)
  (db, table) => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS "${table}" (
        id TEXT NOT NULL PRIMARY KEY,
        user_id TEXT,
        data TEXT NOT NULL,
        meta TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        ip TEXT,
        user_agent TEXT
      ) STRICT;
      CREATE INDEX IF NOT EXISTS "${table}_user" ON "${table}" (user_id, created_at);
      CREATE INDEX IF NOT EXISTS "${table}_expires" ON "${table}" (expires_at, user_id);
    `);
  },
  // 1 → 2: the sweep index moves from expires_at, which every save changes, to sweep_at, a
  // coarse hint that most saves leave alone (./sqlite-sweep-hint.ts). Existing rows get the
  // exact expiry as their hint, which keeps the invariant. The column check makes the step safe
  // to repeat on a table that has it already (created from the documented DDL, say).
  (db, table) => {
    const columns = db.prepare(`SELECT name FROM pragma_table_info(?)`).pluck().all(table) as string[];
    if (!columns.includes('sweep_at')) db.exec(`ALTER TABLE "${table}" ADD COLUMN sweep_at INTEGER NOT NULL DEFAULT 0`);
    db.exec(`
      UPDATE "${table}" SET sweep_at = expires_at;
      CREATE INDEX IF NOT EXISTS "${table}_sweep" ON "${table}" (sweep_at, user_id);
      DROP INDEX IF EXISTS "${table}_expires";
    `);
  },
];

/** The schema version this code reads and writes. */
export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

/** The version-1 columns and their declared types, which a hand-made table must have to be adopted. */
const SQLITE_COLUMN_TYPES = {
  id: 'text', user_id: 'text', data: 'text', meta: 'text', created_at: 'integer', last_seen_at: 'integer', expires_at: 'integer', ip: 'text', user_agent: 'text',
};

interface Row {
  id: string;
  user_id: string | null;
  data: unknown;
  meta: unknown;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  ip: string | null;
  user_agent: string | null;
}

type SummaryRow = Omit<Row, 'data' | 'meta'>;

/** A full row as the raw `get` statement returns it: {@link Row}'s columns, in that order. */
type RawRow = [Row['id'], Row['user_id'], unknown, unknown, number, number, number, Row['ip'], Row['user_agent']];

function decode(text: unknown, column: string): Record<string, JsonValue> {
  const value = typeof text === 'string' ? parseJsonObject(text) : null;
  // The id is deliberately left out of the message: error reports should not carry session keys.
  if (value === null) throw new CorruptRecordError('sqlite', `the ${column} column is not a JSON object`);
  return value;
}

/** A data or meta column as the JSON text checkMaxBytes reads (anything else holds no key). */
function jsonText(value: unknown): string {
  return typeof value === 'string' ? value : '{}';
}

function toSummary(row: SummaryRow): SessionSummary {
  return {
    id: row.id,
    userId: row.user_id,
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
    expiresAt: row.expires_at,
    ip: row.ip,
    userAgent: row.user_agent,
  };
}

/** How long opening a store waits for the write lock to create or migrate its table (ms). */
const STARTUP_LOCK_WAIT_MS = 60_000;

/** A table's recorded schema version, its name matched as SQLite matches table names (0: none). */
function schemaVersion(db: Database.Database, table: string): number {
  const row = db.prepare(`SELECT max(version) AS version FROM ${SCHEMA_TABLE} WHERE name = ? COLLATE NOCASE`).get(table) as { version: number | null } | undefined;
  return row?.version ?? 0;
}

/** True when the table exists at this version's schema: nothing to create or migrate (read only, no lock). */
function isCurrent(db: Database.Database, table: string): boolean {
  const exists = (name: string): boolean =>
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE").get(name) !== undefined;
  return exists(table) && exists(SCHEMA_TABLE) && schemaVersion(db, table) === SQLITE_SCHEMA_VERSION;
}

/**
 * Creates or migrates the table. Runs in one IMMEDIATE transaction so two processes starting
 * together take turns. Returns the version it found under that lock (0: no table), so a caller
 * racing another migrator learns which one created the table.
 */
function migrate(db: Database.Database, table: string): SqliteMigration {
  return db.transaction((): SqliteMigration => {
    db.exec(`CREATE TABLE IF NOT EXISTS ${SCHEMA_TABLE} (name TEXT NOT NULL PRIMARY KEY, version INTEGER NOT NULL)`);
    // A table of its own rather than PRAGMA user_version: that is one number per file, which
    // several coatcheck tables, or the app's own migration tool, would overwrite.
    // SQLite compares table names without regard to case, the version rows by their text: look a
    // row up as SQLite finds the table, and keep the table's own spelling (a `table` option in
    // another case must not re-run migrations nor add a second row).
    const found = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE").get(table) as { name: string } | undefined;
    // A version row whose table is gone (dropped, or left out of a restore) records nothing: the
    // table starts again from version 0, as PostgreSQL's does. Deleting it (in any case) keeps
    // one row per table once the steps rewrite it below.
    if (found === undefined) db.prepare(`DELETE FROM ${SCHEMA_TABLE} WHERE name = ? COLLATE NOCASE`).run(table);
    const spelling = found?.name ?? table;
    const version = schemaVersion(db, spelling);
    const adopted = found !== undefined && version === 0;
    if (adopted) {
      // No version row: the documented DDL run by hand is adopted; another library's table is refused, never altered.
      const info = db.prepare(`SELECT name, type, "notnull" AS not_null, dflt_value AS dflt, pk FROM pragma_table_info(?)`).all(spelling) as {
        name: string;
        type: string;
        not_null: number;
        dflt: unknown;
        pk: number;
      }[];
      const columns = info.map((c) => ({ name: c.name, type: c.type.toLowerCase(), notNull: c.not_null === 1, hasDefault: c.dflt !== null }));
      const idIsKey = info.some((c) => c.name === 'id' && c.pk === 1) && info.filter((c) => c.pk > 0).length === 1;
      const ddl = String(db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?").pluck().get(spelling) ?? '');
      const withoutRowid = /\bWITHOUT\s+ROWID\b/i.test(ddl) ? 'it is a WITHOUT ROWID table' : null;
      const foreign = foreignTableMessage('sqliteStore', spelling, columns, SQLITE_COLUMN_TYPES, idIsKey, withoutRowid);
      if (foreign !== null) throw new ConfigError(foreign);
    }
    if (version > SQLITE_SCHEMA_VERSION) {
      throw new ConfigError(
        `sqliteStore: table ${table} is at schema version ${version}, newer than this coatcheck (${SQLITE_SCHEMA_VERSION}); upgrade coatcheck`,
      );
    }
    for (let step = version; step < SQLITE_SCHEMA_VERSION; step++) MIGRATIONS[step]?.(db, table);
    if (version !== SQLITE_SCHEMA_VERSION) {
      db.prepare(`INSERT INTO ${SCHEMA_TABLE} (name, version) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET version = excluded.version`).run(
        spelling,
        SQLITE_SCHEMA_VERSION,
      );
    }
    return { fromVersion: version, version: SQLITE_SCHEMA_VERSION, ...(adopted && { adopted }) };
  }).immediate();
}

/**
 * For `createTable: false`: throws unless the table exists at this version's schema, changing
 * nothing. Checked before any statement is prepared, which would fail cryptically on an old table.
 */
function checkSchema(db: Database.Database, table: string, where: string): void {
  const exists = (name: string): boolean =>
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE").get(name) !== undefined;
  if (!exists(table)) throw new ConfigError(`sqliteStore: no table ${table} in ${where} (createTable is false: migrate it first)`);
  const version = exists(SCHEMA_TABLE) ? schemaVersion(db, table) : 0;
  if (version > SQLITE_SCHEMA_VERSION) {
    throw new ConfigError(`sqliteStore: table ${table} is at schema version ${version}, newer than this coatcheck (${SQLITE_SCHEMA_VERSION}); upgrade coatcheck`);
  }
  if (version < SQLITE_SCHEMA_VERSION) {
    throw new ConfigError(
      `sqliteStore: table ${table} in ${where} is at schema version ${version || 'unknown'}, this coatcheck needs ${SQLITE_SCHEMA_VERSION} (createTable is false: migrate it first)`,
    );
  }
}

/**
 * Boots the sweeper from the TypeScript sources. On Node 20 a worker does not inherit tsx's
 * loader hooks (it does get `--import tsx` in its execArgv, but `.ts` still fails with "Unknown
 * file extension"), so this script loads the entry through tsx's own API instead. Only dynamic
 * `import()`, so it runs as CommonJS or as ESM (`--input-type=module` used to make eval code ESM,
 * where `require` does not exist; workerExecArgv now drops that flag, this stays robust anyway).
 */
const TSX_BOOT = `import('node:worker_threads').then(({ workerData }) =>
  import(workerData.boot.api).then((api) => api.tsImport(workerData.boot.entry, workerData.boot.parent)));`;

/**
 * Starts the sweeper worker: `./sqlite-sweeper.js` next to this file when running the built
 * JavaScript; from the `.ts` sources (tests, `tsx`) through tsx's API, or, without tsx, directly
 * (a runtime that runs TypeScript natively). If none of that works the worker fails to start and
 * the store sweeps inline.
 */
function spawnSweeper(data: SweeperData): Worker {
  const execArgv = workerExecArgv(process.execArgv);
  try {
    return spawnSweeperWith(data, execArgv);
  } catch (error) {
    // V8 and per-process options (`--max-old-space-size`, `--expose-gc`, `--stack-size`) belong
    // to the process; Node refuses them for a worker. Start it without the ones it named.
    const refused = refusedWorkerFlags(error);
    if (refused === null) throw error;
    return spawnSweeperWith(data, execArgv.filter((arg) => !refused.has(arg)));
  }
}

/** One attempt at starting the worker with these options. */
function spawnSweeperWith(data: SweeperData, execArgv: string[]): Worker {
  const here = import.meta.url;
  if (!/\.[cm]?ts$/.test(new URL(here).pathname)) {
    return new Worker(new URL('./sqlite-sweeper.js', here), { workerData: data, execArgv });
  }
  const entry = new URL('./sqlite-sweeper.ts', here);
  let api: string | null = null;
  try {
    api = import.meta.resolve('tsx/esm/api');
  } catch {
    // no tsx: try the .ts entry as it is
  }
  if (api === null) return new Worker(entry, { workerData: data, execArgv });
  return new Worker(TSX_BOOT, { eval: true, execArgv, workerData: { ...data, boot: { api, entry: entry.href, parent: here } } });
}

interface SweeperClient {
  /** One sweep call in the worker, or null when the worker cannot run (the caller sweeps inline). */
  sweep(before: number, limit: number): Promise<SweepReport | null>;
  /** After a main-thread commit: schedule a background checkpoint (when enabled). */
  wrote(): void;
  /** Stops the worker (after its current transaction) and waits for it to exit. */
  close(): Promise<void>;
}

/**
 * The main-thread side of the sweeper worker: started on the first sweep or the first background
 * checkpoint, `unref()`ed while idle (so it never keeps the process alive) and `ref()`ed while a
 * sweep call is pending (so a process awaiting one does not exit under it).
 *
 * Checkpoints: with `backgroundCheckpoints`, the first main-thread write arms a timer; when it
 * fires the worker checkpoints, and from then on the main connection's auto-checkpoint stays off
 * (until the worker exits; the next write starts a new one). Without, the auto-checkpoint is off
 * only while sweeps are running: it comes back on once the worker has checkpointed at the end of
 * a sweep (or after {@link CHECKPOINT_HANDBACK_MS} without a follow-up call, e.g. `maxBatches`
 * stopped early).
 */
function sweeperClient(db: Database.Database, data: SweeperData, backgroundCheckpoints: boolean): SweeperClient {
  const signal = new Int32Array(data.shared);
  const mainAutoCheckpoint = Number(db.pragma('wal_autocheckpoint', { simple: true }));
  let worker: Worker | null = null;
  let starting: Promise<Worker | null> | null = null;
  let unavailable = false;
  let closed = false;
  let nextId = 1;
  const pending = new Map<number, { resolve: (reply: SweeperReply) => void; reject: (error: unknown) => void }>();
  let sweepsInFlight = 0;
  let handedOff = false;
  let handback: NodeJS.Timeout | undefined;
  // Background checkpoints: while on, the main connection's auto-checkpoint stays handed off.
  let background = false;
  let checkpointTimer: NodeJS.Timeout | undefined;
  let checkpointInFlight = false;
  let writesSinceCheckpoint = 0;
  // Set when the worker answered a checkpoint with an error: SQLite's own checkpoints take over.
  let backgroundFailed = false;
  // The worker while it boots (null once ready): a sweep arriving meanwhile references it.
  let spawning: Worker | null = null;

  const handOff = (): void => {
    clearTimeout(handback);
    if (handedOff) return;
    db.pragma('wal_autocheckpoint = 0');
    handedOff = true;
  };
  const takeBack = (): void => {
    clearTimeout(handback);
    if (!handedOff || sweepsInFlight > 0 || background || !db.open) return;
    db.pragma(`wal_autocheckpoint = ${mainAutoCheckpoint}`);
    handedOff = false;
  };

  /** `keepAlive`: referenced until ready, so a process awaiting the first sweep does not exit meanwhile. */
  const start = (keepAlive: boolean): Promise<Worker | null> => {
    starting ??= new Promise<Worker | null>((resolveStart) => {
      let started = false;
      let spawned: Worker;
      try {
        spawned = spawnSweeper(data);
      } catch (error) {
        unavailable = true;
        process.emitWarning(`sqliteStore: cannot start the sweeper worker, sweeping on the main thread and leaving checkpoints to SQLite (${String(error)})`);
        resolveStart(null);
        return;
      }
      // A background checkpoint's worker never holds the process open, not even while it boots.
      spawning = spawned;
      if (!keepAlive) spawned.unref();
      spawned.on('message', (reply: SweeperReply) => {
        if (reply.type === 'ready') {
          started = true;
          worker = spawned;
          spawning = null;
          if (sweepsInFlight === 0) spawned.unref();
          resolveStart(spawned);
          return;
        }
        const call = pending.get(reply.id);
        if (!call) return;
        pending.delete(reply.id);
        call.resolve(reply);
      });
      spawned.on('error', (error) => {
        if (!started) {
          unavailable = true;
          process.emitWarning(`sqliteStore: the sweeper worker failed to start, sweeping on the main thread and leaving checkpoints to SQLite (${String(error)})`);
          resolveStart(null);
        }
        for (const call of pending.values()) call.reject(error);
        pending.clear();
      });
      spawned.on('exit', () => {
        if (!started) {
          unavailable = true;
          resolveStart(null);
        }
        // A worker that died after starting is started again by the next sweep.
        Atomics.store(signal, SIGNAL_WORKER, WORKER_IDLE);
        Atomics.notify(signal, SIGNAL_WORKER);
        worker = null;
        spawning = null;
        starting = null;
        for (const call of pending.values()) call.reject(new Error('sqliteStore: the sweeper worker exited'));
        pending.clear();
        sweepsInFlight = 0;
        // Until a later write starts a new worker, SQLite checkpoints on the main connection again.
        background = false;
        takeBack();
      });
    });
    return starting;
  };

  const request = (target: Worker, make: (id: number) => SweeperRequest): Promise<SweeperReply> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      target.postMessage(make(id));
    });

  /**
   * One background checkpoint, at most one in flight. The worker's checkpoint never takes the
   * write lock; only its last round holds main-thread writes back, for at most checkpointHoldMs
   * (see checkpoint in ./sqlite-sweeper.ts).
   */
  const backgroundCheckpoint = async (): Promise<void> => {
    checkpointTimer = undefined;
    if (closed || unavailable || backgroundFailed) return;
    // Busy (a checkpoint, or a sweep, which checkpoints as it goes): writes made after that
    // one's last round still need theirs, so try again on the next tick instead of dropping it.
    if (checkpointInFlight || sweepsInFlight > 0) {
      arm();
      return;
    }
    checkpointInFlight = true;
    writesSinceCheckpoint = 0;
    try {
      const target = worker ?? (await start(false));
      if (target === null || closed) return;
      if (!background) {
        background = true;
        handOff();
      }
      const reply = await request(target, (id) => ({ type: 'checkpoint', id, background: true }));
      if (reply.type === 'failed') {
        // E.g. an I/O error: stop handing checkpoints to the worker, so the WAL cannot grow
        // without anyone checkpointing it; SQLite's auto-checkpoint reports such errors itself.
        backgroundFailed = true;
        background = false;
        takeBack();
        process.emitWarning(`sqliteStore: a checkpoint in the sweeper worker failed, leaving checkpoints to SQLite (${reply.message})`);
      }
    } catch {
      // The worker exited (its exit handler took the checkpoints back); the next write retries.
    } finally {
      checkpointInFlight = false;
    }
  };
  const arm = (): void => {
    if (!backgroundCheckpoints || checkpointTimer !== undefined || closed || unavailable || backgroundFailed) return;
    checkpointTimer = setTimeout(() => void backgroundCheckpoint(), BACKGROUND_CHECKPOINT_MS);
    checkpointTimer.unref();
  };

  return {
    wrote() {
      arm();
      // A fast writer does not wait for the timer: the WAL would grow by ~100 ms of writes.
      if (++writesSinceCheckpoint >= BACKGROUND_CHECKPOINT_WRITES && !checkpointInFlight && background && checkpointTimer !== undefined) {
        clearTimeout(checkpointTimer);
        void backgroundCheckpoint();
      }
    },
    async sweep(before, limit) {
      if (unavailable || closed) return null;
      spawning?.ref(); // booting for a background checkpoint: this call must keep the process alive
      const target = worker ?? (await start(true));
      if (target === null || closed) return null;
      handOff();
      if (sweepsInFlight++ === 0) target.ref();
      let exhausted = false;
      try {
        const reply = await request(target, (id) => ({ type: 'sweep', id, before, limit }));
        if (reply.type === 'failed') {
          throw Object.assign(new Error(reply.message), reply.code === undefined ? {} : { code: reply.code });
        }
        if (reply.type !== 'swept') throw new Error(`sqliteStore: unexpected sweeper reply ${reply.type}`);
        exhausted = reply.deleted < limit && !reply.more;
        const { type: _type, id: _id, ...report } = reply;
        return report;
      } finally {
        if (sweepsInFlight > 0 && --sweepsInFlight === 0) {
          target.unref();
          // The worker checkpointed at the end of a finished sweep; otherwise give the engine a
          // moment to call again before asking for that checkpoint.
          if (exhausted) takeBack();
          else if (!closed) {
            handback = setTimeout(() => {
              const current = worker;
              if (current === null || sweepsInFlight > 0) return takeBack();
              request(current, (id) => ({ type: 'checkpoint', id })).then(takeBack, takeBack);
            }, CHECKPOINT_HANDBACK_MS);
            handback.unref();
          }
        }
      }
    },
    async close() {
      closed = true;
      clearTimeout(handback);
      clearTimeout(checkpointTimer);
      const target = worker ?? (starting === null ? null : await starting);
      if (target === null) return;
      Atomics.store(signal, SIGNAL_STOP, 1);
      const exited = new Promise<void>((resolve) => target.once('exit', () => resolve()));
      target.ref(); // otherwise a process awaiting close() could exit before the worker closed its connection
      target.postMessage({ type: 'close' } satisfies SweeperRequest);
      const kill = setTimeout(() => void target.terminate(), 2_000);
      await exited;
      clearTimeout(kill);
    },
  };
}

/** How long after a sweep call without a follow-up the worker runs the checkpoint it deferred, ms. */
const CHECKPOINT_HANDBACK_MS = 100;

/**
 * The worker checkpoints at most this often while the app writes, ms. Measured with
 * `npm run bench -- ab` on node:http + SQLite (write on every request): +19 % req/s and -11 %
 * process CPU against SQLite's own auto-checkpoints, which copy the WAL back (and fsync) inside
 * whichever commit crosses 1 000 pages, blocking the event loop meanwhile.
 */
export const BACKGROUND_CHECKPOINT_MS = 100;

/** ...or after this many main-thread writes, whichever comes first (about 3 000 WAL frames). */
const BACKGROUND_CHECKPOINT_WRITES = 1_000;

/**
 * A session store in a SQLite database: the embedded default.
 *
 * Creates its table (and a `coatcheck_schema` table recording the schema version) on first use
 * and migrates it when a newer coatcheck needs a newer schema (`createTable: false`: neither, it
 * only checks). Setup is synchronous: bad options
 * throw {@link ConfigError} here, not on the first request.
 *
 * Expired rows are not removed by the store itself; the engine's sweep calls `deleteExpired`.
 * For a file the store opened, that runs in a worker thread with its own connection (started on
 * the first sweep or write, never keeping the process alive, stopped by `close()`), so a sweep
 * does not block the event loop; the same worker copies the WAL back into the file
 * (checkpoints), so no request's commit has to.
 *
 * @example
 * ```ts
 * import { createSessions } from 'coatcheck';
 * import { sqliteStore } from 'coatcheck/stores/sqlite';
 *
 * const sessions = createSessions({ store: sqliteStore({ path: './data/sessions.db' }) });
 * // Expired rows stay until swept: run the engine's batched sweep now and then.
 * setInterval(() => void sessions.clearExpired(), 10 * 60_000).unref();
 * ```
 */
const SQLITE_OPTIONS = Object.keys({
  path: true, database: true, table: true, createTable: true, busyTimeout: true, sweepInWorker: true, checkpointInWorker: true, clock: true,
} satisfies Record<keyof SqliteStoreOptions, true>);

export function sqliteStore(options: SqliteStoreOptions = {}): Store {
  // A misspelled option would leave the store on its default: `filename` would open ./data/sessions.db.
  checkFactoryOptions('sqliteStore', options, SQLITE_OPTIONS, {
    usage: "sqliteStore({ path: './data/sessions.db' })",
    // better-sqlite3's, connect-sqlite3's and other SQLite session stores' names.
    hints: {
      filename: 'use path (the database file)',
      file: 'use path (the database file)',
      db: 'use path (the database file), or database for a better-sqlite3 connection the app owns',
      dir: 'use path, the database file with its directory (e.g. ./var/db/sessions.db)',
      client: 'use database (a better-sqlite3 Database the app owns)',
      tableName: 'use table',
      timeout: 'use busyTimeout (ms)',
    },
  });
  const table = options.table ?? 'coatcheck_sessions';
  if (typeof table !== 'string' || !TABLE_NAME.test(table)) {
    throw new ConfigError(`sqliteStore: table must be a plain identifier matching ${TABLE_NAME}, got ${JSON.stringify(table)}`);
  }
  if (options.path !== undefined && options.database !== undefined) {
    throw new ConfigError('sqliteStore: give either path or database, not both');
  }
  const busyTimeout = options.busyTimeout ?? 5_000;
  const clock = options.clock ?? systemClock;
  if (!Number.isInteger(busyTimeout) || busyTimeout < 0) {
    throw new ConfigError('sqliteStore: busyTimeout must be an integer >= 0 (ms)');
  }
  if (options.database !== undefined && typeof (options.database as { prepare?: unknown } | null)?.prepare !== 'function') {
    throw new ConfigError('sqliteStore: database must be a better-sqlite3 Database');
  }

  if (options.checkpointInWorker !== undefined && typeof options.checkpointInWorker !== 'boolean') {
    throw new ConfigError('sqliteStore: checkpointInWorker must be a boolean');
  }
  if (options.sweepInWorker !== undefined && typeof options.sweepInWorker !== 'boolean') {
    throw new ConfigError('sqliteStore: sweepInWorker must be a boolean');
  }
  const createTable = options.createTable ?? true;
  if (typeof createTable !== 'boolean') throw new ConfigError('sqliteStore: createTable must be a boolean');

  const owned = options.database === undefined;
  let db: Database.Database;
  let filePath: string | null = null;
  if (options.database !== undefined) {
    db = options.database;
  } else {
    const path = options.path ?? DEFAULT_SQLITE_PATH;
    if (typeof path !== 'string') throw new ConfigError('sqliteStore: path must be a string');
    const inMemory = path === ':memory:' || path === '';
    if (!inMemory) {
      // SQLite opens a directory and fails later with "disk I/O error".
      if (isDirectory(path)) {
        throw new ConfigError(`sqliteStore: ${path} is a directory; path names the database file, e.g. ${path.replace(/\/+$/, '')}/sessions.db`);
      }
      if (createTable) mkdirSync(dirname(path), { recursive: true });
      filePath = resolvePath(path); // the worker must find the same file even if the cwd changes
    }
    // Without createTable, a missing file is an error, not a new empty database.
    const mustExist = !createTable && !inMemory;
    if (mustExist && !existsSync(path)) throw new ConfigError(`sqliteStore: no database file at ${path} (createTable is false: migrate it first)`);
    try {
      db = new Database(path, { timeout: busyTimeout, fileMustExist: mustExist });
    } catch (error) {
      throw unbuiltSqliteError(error) ?? error;
    }
  }

  try {
    return storeOn(db, {
      owned,
      filePath,
      table,
      busyTimeout,
      createTable,
      clock,
      sweepInWorker: options.sweepInWorker !== false,
      checkpointInWorker: options.checkpointInWorker !== false,
    });
  } catch (error) {
    // Anything failing once the connection is open (the schema check, a statement that does not
    // compile against the table found, the sweeper's setup) must not leave the store's own
    // connection, and its file descriptors, open until garbage collection.
    if (owned) db.close();
    throw error;
  }
}

/** What {@link storeOn} needs to know about the connection and the options, already checked. */
interface StoreSetup {
  /** The store opened the connection (`path`), so it sets its pragmas and polls for locks. */
  owned: boolean;
  /** The absolute path of a file the store opened; null for `:memory:` and an app's handle. */
  filePath: string | null;
  table: string;
  busyTimeout: number;
  createTable: boolean;
  sweepInWorker: boolean;
  checkpointInWorker: boolean;
  clock: Clock;
}

/**
 * The store on an open connection: pragmas, schema, statements, sweeper. On failure it throws and
 * leaves closing `db` to the caller.
 */
function storeOn(db: Database.Database, setup: StoreSetup): Store {
  const { owned, filePath, table, busyTimeout, createTable, clock } = setup;
  // On a connection the store owns, its statements wait for locks by polling (./sqlite-busy.ts)
  // instead of in SQLite's busy handler; an app's own handle keeps the app's busy handling.
  const retrying = owned ? <R>(run: () => R): R => retryWhileBusy(busyTimeout, run) : <R>(run: () => R): R => run();
  if (owned) db.pragma('busy_timeout = 0');
  // WAL lets readers run alongside the single writer (and other processes). Switching needs an
  // exclusive lock, which processes opening a new file at once contend for (SQLite does not wait
  // for it in its busy handler): only switch when needed, retrying. Only with createTable: a
  // read-only look (the CLI's stats, list...) must not change the app's file for good.
  const journalMode = (): string => String(db.pragma('journal_mode', { simple: true }));
  if (owned && createTable && db.memory === false) retrying(() => journalMode() === 'wal' || db.pragma('journal_mode = WAL'));
  const wal = owned && db.memory === false && retrying(journalMode) === 'wal';
  // In WAL mode NORMAL is durable against application crashes and only risks the last commits on
  // power loss; with a rollback journal a power loss can (rarely) corrupt the file: keep FULL there.
  if (wal || (owned && db.memory)) db.pragma('synchronous = NORMAL');
  let migration: SqliteMigration | null = null;
  if (!createTable) retrying(() => checkSchema(db, table, filePath ?? (owned ? ':memory:' : 'the database')));
  // A current table needs no write lock, so a store opening while another process writes (or
  // sweeps) starts at once.
  else if (retrying(() => isCurrent(db, table))) migration = { fromVersion: SQLITE_SCHEMA_VERSION, version: SQLITE_SCHEMA_VERSION };
  else {
    // Opening waits longer than a request would: another process may be migrating a large table
    // (9 s for 2.5M rows in a review), and failing to start is worse than starting late.
    const waiting = owned ? <R>(run: () => R): R => retryWhileBusy(Math.max(busyTimeout, STARTUP_LOCK_WAIT_MS), run) : retrying;
    migration = waiting(() => migrate(db, table));
  }

  // Sweeping and checkpointing off the main thread need a second connection to the same file:
  // only for a file the store opened itself, in WAL mode (so the worker's reads and the app's
  // never block each other, and there is a WAL to checkpoint). An app-owned handle, ':memory:'
  // and a file left in another journal mode (createTable: false) do both inline, as do
  // `sweepInWorker: false` and `checkpointInWorker: false` for their part.
  const workerPossible = owned && filePath !== null && wal;
  const sweepInWorker = workerPossible && setup.sweepInWorker;
  const checkpointInWorker = workerPossible && setup.checkpointInWorker;
  const useWorker = sweepInWorker || checkpointInWorker;
  const shared = useWorker ? new SharedArrayBuffer(SIGNAL_SLOTS * Int32Array.BYTES_PER_ELEMENT) : null;
  const signal = shared === null ? null : new Int32Array(shared);
  const tuning = DEFAULT_SWEEPER_TUNING;
  const sweeper =
    shared === null || filePath === null
      ? null
      : sweeperClient(db, { kind: SWEEPER_KIND, path: filePath, table, busyTimeout, shared, tuning }, checkpointInWorker);
  /**
   * Runs a main-thread write, telling the sweeper worker (through shared memory) to let it have
   * the write lock first. If the worker is in a write transaction, it commits at its next
   * statement boundary (a millisecond or two) and notifies; waiting for that notify rather than
   * in SQLite's busy handler (which sleeps in steps of 1, 2, 5, 10 ms) gets the lock as soon as
   * it is free. If the worker is finishing a checkpoint, the write waits for it a short, bounded
   * time, so that the WAL can start over. The handshake is described in ./sqlite-sweeper.ts (claim).
   */
  const writing =
    signal === null
      ? <R>(write: () => R): R => retrying(write)
      : <R>(write: () => R): R => {
          // One deadline for the whole write: the wait for the worker and the retries after it
          // share busyTimeout. A worker waiting for another process's lock (it is WRITING from
          // before its BEGIN IMMEDIATE) would otherwise block the event loop for twice as long.
          const deadline = performance.now() + busyTimeout;
          Atomics.add(signal, SIGNAL_WRITERS, 1);
          try {
            // Bounded: a worker that never notifies (killed mid-transaction) costs the deadline at
            // most; the write is still tried once after it.
            const state = Atomics.load(signal, SIGNAL_WORKER);
            if (state !== WORKER_IDLE) {
              Atomics.wait(signal, SIGNAL_WORKER, state, state === WORKER_CHECKPOINTING ? Math.min(tuning.checkpointHoldMs, busyTimeout) : busyTimeout);
            }
            return retryWhileBusy(Math.max(0, deadline - performance.now()), write);
          } finally {
            Atomics.sub(signal, SIGNAL_WRITERS, 1);
            Atomics.notify(signal, SIGNAL_WRITERS);
            sweeper?.wrote();
          }
        };

  const t = `"${table}"`;
  const summaryColumns = 'id, user_id, created_at, last_seen_at, expires_at, ip, user_agent';
  const liveRows = liveRowsCte(t);
  const q = {
    // Raw rows (arrays): an object row costs a property-name lookup per column on every read.
    get: db.prepare(`SELECT id, user_id, data, meta, created_at, last_seen_at, expires_at, ip, user_agent FROM ${t} WHERE id = ?`).raw(true),
    // DO NOTHING instead of catching a constraint error: `changes === 0` means the id was taken.
    insert: db.prepare(
      `INSERT INTO ${t} (id, user_id, data, meta, created_at, last_seen_at, expires_at, ip, user_agent, sweep_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
    ),
    // Live rows only: a row past its expiry awaits the sweep, and a save must not revive it. The
    // save's lastSeenAt is the engine's "now" (the store has no clock of its own).
    readForUpdate: db.prepare(`SELECT user_id, data, meta, sweep_at, last_seen_at, expires_at FROM ${t} WHERE id = ? AND expires_at > ?`),
    // Several forms because SQLite rewrites an index entry whenever its column is assigned, even
    // to the value it had. Most saves keep the user and the sweep hint, and so touch no index.
    write: db.prepare(`UPDATE ${t} SET data = ?, meta = ?, last_seen_at = ?, expires_at = ? WHERE id = ?`),
    writeWithHint: db.prepare(`UPDATE ${t} SET data = ?, meta = ?, last_seen_at = ?, expires_at = ?, sweep_at = ? WHERE id = ?`),
    writeWithUser: db.prepare(`UPDATE ${t} SET user_id = ?, data = ?, meta = ?, last_seen_at = ?, expires_at = ?, sweep_at = ? WHERE id = ?`),
    // A touch without a read: the first form applies only while the hint still fits (the bounds
    // of sweepHintHolds), the second moves it.
    touch: db.prepare(`UPDATE ${t} SET last_seen_at = ?, expires_at = ? WHERE id = ? AND expires_at > ? AND sweep_at BETWEEN ? AND ?`),
    touchWithHint: db.prepare(`UPDATE ${t} SET last_seen_at = ?, expires_at = ?, sweep_at = ? WHERE id = ? AND expires_at > ?`),
    destroy: db.prepare(`DELETE FROM ${t} WHERE id = ?`),
    // One statement: the emptiness test and the delete happen under the same write lock.
    destroyIfEmpty: db.prepare(
      `DELETE FROM ${t} WHERE id = ? AND user_id IS NULL AND NOT EXISTS (SELECT 1 FROM json_each(data))
       AND NOT EXISTS (SELECT 1 FROM json_each(meta) WHERE key NOT IN (SELECT value FROM json_each(?)))`,
    ),
    exists: db.prepare(`SELECT 1 FROM ${t} WHERE id = ?`),
    // `IS` matches NULL for guests and still uses the (user_id, created_at) index; the except
    // list arrives as one JSON array so a single prepared statement serves any length.
    destroyByUser: db.prepare(`DELETE FROM ${t} WHERE user_id IS ? AND id NOT IN (SELECT value FROM json_each(?))`),
    destroyAll: db.prepare(`DELETE FROM ${t}`),
    listByUser: db.prepare(`SELECT ${summaryColumns} FROM ${t} WHERE user_id = ? AND expires_at > ? ORDER BY created_at, id`),
    // The inner query walks the sweep_at index from the oldest hint, so a batch costs O(limit)
    // however large the table is (./sqlite-sweep-hint.ts).
    sweep: db.prepare(sweepBatchSql(t)),
    // Admin-only, over the live rows of liveRowsCte (mostly read from the index alone). BINARY
    // collation compares UTF-8 bytes, i.e. ties rank in code-point order. Rotation forwarders
    // (@moved) are no one's sessions; expired ones still count as awaiting the sweep.
    statsTotals: db.prepare(
      `WITH ${liveRows}
       SELECT count(*) FILTER (WHERE user_id IS NOT @moved) AS sessions,
              (SELECT count(*) FROM ${t}) - count(*) AS expired,
              count(DISTINCT user_id) FILTER (WHERE user_id <> @moved) AS users,
              count(*) FILTER (WHERE user_id IS NULL) AS guests
       FROM live`,
    ),
    statsTop: db.prepare(
      `WITH ${liveRows}
       SELECT user_id AS userId, count(*) AS sessions FROM live WHERE user_id IS NOT NULL AND user_id <> @moved
       GROUP BY user_id ORDER BY sessions DESC, user_id LIMIT @limit`,
    ),
  };

  // Read-modify-write in one transaction. The driver is synchronous, so nothing else in this
  // process can interleave; `.immediate()` takes the write lock before the read so another
  // process cannot read the same old row and overwrite this write.
  const applyPatch = db.transaction((id: string, patch: SessionPatch): boolean => {
    let lastSeenAt = pastTime(patch.lastSeenAt);
    let expiresAt = expiryTime(patch.expiresAt);
    const row = q.readForUpdate.get(id, lastSeenAt) as (Pick<Row, 'user_id' | 'data' | 'meta' | 'last_seen_at' | 'expires_at'> & { sweep_at: number }) | undefined;
    if (!row) return false;
    // The guard is checked on the row just read, under the same write lock: of N concurrent
    // guarded updates (consume a one-time token, claim a rotation), exactly the valid ones apply.
    if (patch.guard && !guardHolds(decode(row.meta, 'meta'), patch.guard)) return false;
    let data = row.data;
    let meta = row.meta;
    if (patch.data) {
      const object = decode(data, 'data');
      applyKeyChanges(object, patch.data);
      data = JSON.stringify(object);
    }
    if (patch.meta) {
      const object = decode(meta, 'meta');
      applyKeyChanges(object, patch.meta);
      meta = JSON.stringify(object);
    }
    // Measured on the row read under the write lock: parallel saves that each fit cannot add up
    // past the bound. Throws, and the transaction rolls back having written nothing.
    if (patch.maxBytes !== undefined) checkMaxBytes(patch.maxBytes, [jsonText(row.data), jsonText(row.meta)], [jsonText(data), jsonText(meta)]);
    if (patch.keepLater) {
      lastSeenAt = Math.max(lastSeenAt, row.last_seen_at);
      expiresAt = Math.max(expiresAt, row.expires_at);
    }
    if (patch.userId !== undefined && patch.userId !== row.user_id) {
      q.writeWithUser.run(patch.userId, data, meta, lastSeenAt, expiresAt, sweepHint(lastSeenAt, expiresAt), id);
    } else if (sweepHintHolds(row.sweep_at, lastSeenAt, expiresAt)) {
      q.write.run(data, meta, lastSeenAt, expiresAt, id);
    } else {
      q.writeWithHint.run(data, meta, lastSeenAt, expiresAt, sweepHint(lastSeenAt, expiresAt), id);
    }
    return true;
  });

  let closed = false;

  const store: Store = {
    name: 'sqlite',
    // get, update and touch answer synchronously, as the driver does: the engine then loads and
    // saves in the same tick. Their failures are thrown rather than returned as rejections.
    get(id: string): SessionRecord | null {
      const row = retrying(() => q.get.get(id)) as RawRow | undefined;
      if (!row) return null;
      return {
        id: row[0],
        userId: row[1],
        data: decode(row[2], 'data'),
        meta: decode(row[3], 'meta'),
        createdAt: row[4],
        lastSeenAt: row[5],
        expiresAt: row[6],
        ip: row[7],
        userAgent: row[8],
      };
    },
    async create(record: SessionRecord): Promise<void> {
      const lastSeenAt = pastTime(record.lastSeenAt);
      const expiresAt = expiryTime(record.expiresAt);
      const result = writing(() => q.insert.run(
        record.id,
        record.userId,
        JSON.stringify(record.data),
        JSON.stringify(record.meta),
        pastTime(record.createdAt),
        lastSeenAt,
        expiresAt,
        record.ip,
        record.userAgent,
        sweepHint(lastSeenAt, expiresAt),
      ));
      if (result.changes === 0) throw new StoreConflictError('sqlite');
    },
    update(id: string, patch: SessionPatch): boolean {
      return writing(() => applyPatch.immediate(id, patch));
    },
    touch(id, times) {
      const lastSeenAt = pastTime(times.lastSeenAt);
      const expiresAt = expiryTime(times.expiresAt);
      return writing(() => {
        const kept = q.touch.run(lastSeenAt, expiresAt, id, lastSeenAt, expiresAt, expiresAt + sweepSlack(lastSeenAt, expiresAt));
        return kept.changes > 0 || q.touchWithHint.run(lastSeenAt, expiresAt, sweepHint(lastSeenAt, expiresAt), id, lastSeenAt).changes > 0;
      });
    },
    async destroy(id) {
      writing(() => q.destroy.run(id));
    },
    destroyIfEmpty(id: string, ignoredMeta: readonly string[]): EmptyDestroyResult {
      if (writing(() => q.destroyIfEmpty.run(id, JSON.stringify(ignoredMeta))).changes > 0) return 'deleted';
      return retrying(() => q.exists.get(id)) === undefined ? 'absent' : 'kept';
    },
    async destroyByUser(userId, except = []) {
      return writing(() => q.destroyByUser.run(userId, JSON.stringify(except))).changes;
    },
    async destroyAll() {
      return writing(() => q.destroyAll.run()).changes;
    },
    async listByUser(userId) {
      // The engine's clock, as the rows' times are (a test clock behind real time listed nothing).
      const rows = retrying(() => q.listByUser.all(userId, pastTime(clock.now()))) as SummaryRow[];
      return rows.map(toSummary);
    },
    async deleteExpired(sweep: ExpiredSweep): Promise<SweepResult> {
      // Deleted rows leave the index, so every batch restarts at the oldest remaining expired
      // row: the cursor only says "call again" (a full batch went, or the worker stopped early).
      const limit = Math.max(0, Math.floor(sweep.limit));
      const before = pastTime(sweep.before);
      if (sweeper !== null && sweepInWorker && !closed && limit > 0) {
        const report = await sweeper.sweep(before, limit);
        if (report !== null) {
          const more = report.more || (report.deleted > 0 && report.deleted >= limit);
          return { deleted: report.deleted, cursor: more ? String(before) : null };
        }
      }
      // Inline: one DELETE on this thread (':memory:', an app-owned handle, or no worker). Through
      // `writing` like any write: with background checkpoints its pages need one too.
      const deleted = writing(() => q.sweep.run(before, before, limit)).changes;
      return { deleted, cursor: deleted > 0 && deleted >= limit ? String(before) : null };
    },
    async stats(now: number, statsOptions): Promise<StoreStats> {
      const limit = topUsersLimit(statsOptions);
      const at = pastTime(now);
      const far = at + SWEEP_SLACK_MAX_MS;
      const params = { now: at, far, moved: FORWARDER_USER };
      const totals = retrying(() => q.statsTotals.get(params)) as Omit<StoreStats, 'topUsers'>;
      const topUsers = limit === 0 ? [] : (retrying(() => q.statsTop.all({ ...params, limit })) as StoreStats['topUsers']);
      return { ...totals, topUsers };
    },
    async close() {
      if (closed) return;
      closed = true;
      await sweeper?.close();
      if (owned) db.close();
    },
  };
  if (migration !== null) MIGRATIONS_RUN.set(store, migration);
  return store;
}

/** What opening a store did to its table: the version found (0: no table) and the version left. @internal */
export type SqliteMigration = SchemaMigration;

// Kept beside the store rather than on it: the Store object stays the contract, nothing more.
const MIGRATIONS_RUN = new WeakMap<Store, SqliteMigration>();

/**
 * What opening `store` (with `createTable`) did to its table, read under the migration's write
 * lock, or undefined for a store opened without `createTable` or by another factory. For
 * `coatcheck migrate`: a state read before opening cannot tell which of several processes
 * migrating at once created the table.
 * @internal
 */
export function sqliteMigrationOf(store: Store): SqliteMigration | undefined {
  return MIGRATIONS_RUN.get(store);
}
