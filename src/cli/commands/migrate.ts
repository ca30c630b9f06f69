/** `coatcheck migrate`: creates or upgrades the store's tables. */
import { callStore } from '../../core/store-call.js';
import { randomToken } from '../../crypto/compare.js';
import { COMMON_OPTIONS, STORE_OPTIONS, STORE_TIMEOUT_MS, withStore, type Command } from '../command.js';
import { printJson } from '../format.js';
import { postgresCaseVariants, postgresSchemaState, type SchemaState, sqliteSchemaState } from '../schema-state.js';
import { DEFAULT_TABLE } from '../store-url.js';

type Action = 'created' | 'migrated' | 'unchanged' | 'none';

function actionOf(before: SchemaState, after: SchemaState): Action {
  if (!before.exists) return 'created';
  return before.version === after.version ? 'unchanged' : 'migrated';
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
    let before: SchemaState = { exists: false, version: null };
    if (target.kind === 'sqlite') {
      const state = await sqliteSchemaState(target.location, table);
      // The table's own spelling (SQLite names ignore case; see SqliteSchemaState.name): the
      // store is opened with it too, so `?table=` in another case finds the table's version.
      table = state.name;
      before = state;
    }
    const qualified = target.schema ? `${target.schema}.${table}` : table;

    const after = await withStore(context, { create: true }, async (store) => {
      // Through callStore: failures read like every other command's ("store postgres failed during migrate: …").
      return callStore(store, 'migrate', STORE_TIMEOUT_MS, async (): Promise<SchemaState | null> => {
        switch (target.kind) {
          case 'sqlite':
            // Opening the store created or upgraded the table.
            return sqliteSchemaState(target.location, table);
          case 'postgres':
            before = await postgresSchemaState(target.location, target.schema, table);
            await store.migrate?.();
            return postgresSchemaState(target.location, target.schema, table);
          case 'redis':
            // Any read proves the connection; a random user id has no sessions to read.
            await store.listByUser(`coatcheck-migrate-probe-${randomToken(16)}`);
            return null;
        }
      });
    });

    const action: Action = after === null ? 'none' : actionOf(before, after);
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
        table: after === null ? null : qualified,
        fromVersion: after === null ? null : before.version,
        version: after?.version ?? null,
      });
      return;
    }
    const kind = target.kind;
    const where = kind === 'sqlite' ? ` in ${target.location}` : '';
    if (after === null) {
      io.stdout.write(`${kind}: nothing to migrate, Redis needs no schema (connection checked: ${target.display})\n`);
    } else if (action === 'created') {
      io.stdout.write(`${kind}: created table ${qualified}${where} (schema version ${after.version ?? '?'})\n`);
    } else if (action === 'migrated') {
      io.stdout.write(`${kind}: migrated table ${qualified}${where} from schema version ${before.version ?? '?'} to ${after.version ?? '?'}\n`);
    } else {
      io.stdout.write(`${kind}: table ${qualified}${where} is already at schema version ${after.version ?? '?'}, nothing to do\n`);
    }
  },
};
