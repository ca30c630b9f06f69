/** `coatcheck migrate`: creates or upgrades the store's tables. */
import { callStore } from '../../core/store-call.js';
import { randomToken } from '../../crypto/compare.js';
import type { PostgresStore } from '../../stores/postgres.js';
import { COMMON_OPTIONS, STORE_OPTIONS, STORE_TIMEOUT_MS, withStore, type Command } from '../command.js';
import { printJson } from '../format.js';
import { postgresCaseVariants, sqliteSchemaState } from '../schema-state.js';
import { DEFAULT_TABLE } from '../store-url.js';

type Action = 'created' | 'adopted' | 'migrated' | 'unchanged' | 'none';

/** What the store's migration found (version 0: no table) and left, as the store read it under its lock. */
interface Migration {
  fromVersion: number;
  version: number;
  /** The table was there without a version row (made by hand from the documented DDL). */
  adopted?: boolean;
}

function actionOf(done: Migration): Action {
  if (done.fromVersion === 0) return done.adopted === true ? 'adopted' : 'created';
  return done.fromVersion === done.version ? 'unchanged' : 'migrated';
}

export const migrate: Command = {
  name: 'migrate',
  summary: 'create or upgrade the store\'s tables',
  usage: ['migrate [--store URL] [--json]'],
  description: [
    'SQLite: creates the database file and table if missing and applies pending schema steps.',
    'PostgreSQL: runs the store\'s migrate() (idempotent; an advisory lock serializes concurrent',
    'deploys); the schema named by ?schema= must exist. Redis needs no schema: the command only',
    'checks that Redis answers. Other commands never create anything, so run this in the deploy',
    'step before the first start (the app also migrates on start unless told not to).',
  ],
  options: { ...STORE_OPTIONS, ...COMMON_OPTIONS },
  examples: ['coatcheck migrate --store sqlite:./data/sessions.db', 'coatcheck migrate --store postgres://app@db/app?schema=sessions --json'],
  async run(context) {
    const { io, json } = context;
    const target = context.target();
    let table = target.table ?? DEFAULT_TABLE;
    if (target.kind === 'sqlite') {
      // The table's own spelling (SQLite names ignore case; see SqliteSchemaState.name): the
      // store is opened with it too, so `?table=` in another case finds the table's version.
      table = (await sqliteSchemaState(target.location, table)).name;
    }
    const qualified = target.schema ? `${target.schema}.${table}` : table;

    // What happened is the store's own account, read under its migration lock: a state read here
    // beforehand made every one of several concurrent runs report "created".
    const done = await withStore(context, { create: true }, async (store) => {
      // Through callStore: failures read like every other command's ("store postgres failed during migrate: …").
      return callStore(store, 'migrate', STORE_TIMEOUT_MS, async (): Promise<Migration | null> => {
        switch (target.kind) {
          case 'sqlite': {
            // Opening the store created or upgraded the table.
            const { sqliteMigrationOf } = await import('../../stores/sqlite.js');
            return reported(sqliteMigrationOf(store));
          }
          case 'postgres': {
            await store.migrate?.();
            const { postgresMigrationOf } = await import('../../stores/postgres.js');
            return reported(postgresMigrationOf(store as PostgresStore));
          }
          case 'redis':
            // Any read proves the connection; a random user id has no sessions to read.
            await store.listByUser(`coatcheck-migrate-probe-${randomToken(16)}`);
            return null;
        }
      });
    });
    const action: Action = done === null ? 'none' : actionOf(done);
    if (action === 'created' && target.kind === 'postgres') {
      // Quoted names are case-sensitive: a `?table=` in the wrong case makes a second, empty table.
      const variants = await postgresCaseVariants(target.location, target.schema, table).catch(() => []);
      if (variants.length > 0) {
        io.stderr.write(
          `coatcheck migrate: note: ${qualified} is a new table, separate from ${variants.join(', ')}: coatcheck quotes PostgreSQL names, so letter case matters (check ?table= and ?schema=)\n`,
        );
      }
    }
    if (json) {
      printJson(io.stdout, {
        store: target.kind,
        action,
        table: done === null ? null : qualified,
        fromVersion: done === null || action === 'created' || action === 'adopted' ? null : done.fromVersion,
        version: done?.version ?? null,
      });
      return;
    }
    const kind = target.kind;
    const where = kind === 'sqlite' ? ` in ${target.location}` : '';
    if (done === null) {
      io.stdout.write(`${kind}: nothing to migrate, Redis needs no schema (connection checked: ${target.display})\n`);
    } else if (action === 'created') {
      io.stdout.write(`${kind}: created table ${qualified}${where} (schema version ${done.version})\n`);
    } else if (action === 'adopted') {
      io.stdout.write(`${kind}: adopted table ${qualified}${where}, which had no schema version, at schema version ${done.version}\n`);
    } else if (action === 'migrated') {
      io.stdout.write(`${kind}: migrated table ${qualified}${where} from schema version ${done.fromVersion} to ${done.version}\n`);
    } else {
      io.stdout.write(`${kind}: table ${qualified}${where} is already at schema version ${done.version}, nothing to do\n`);
    }
  },
};

/** The store's report; a store opened to migrate always has one. */
function reported(done: Migration | undefined): Migration {
  if (done === undefined) throw new Error('the store did not report what its migration did');
  return done;
}
