/** `coatcheck stats`: how many sessions, users, guests and expired records a store holds. */
import { callStore } from '../../core/store-call.js';
import { integerOption } from '../args.js';
import { COMMON_OPTIONS, STORE_OPTIONS, STORE_TIMEOUT_MS, withStore, type Command } from '../command.js';
import { CliError } from '../exit.js';
import { printJson, table } from '../format.js';
import { warnIfNamespaceEmpty } from '../redis-namespace.js';

export const stats: Command = {
  name: 'stats',
  summary: 'count sessions, users, guests and expired sessions awaiting clear-expired',
  usage: ['stats [--top N] [--store URL] [--json]'],
  description: [
    'Counts live sessions, distinct signed-in users, guest sessions, and expired sessions the store',
    'still holds (SQL stores keep them until clear-expired; Redis deletes them itself, so 0), and',
    'lists the users with the most sessions. Reads the whole store: SQL stores scan the table, Redis',
    'SCANs every session key. Fine now and then; do not poll it.',
  ],
  options: {
    top: { type: 'string', value: 'N', description: 'how many top users to list, 0 to 1000 (default 10)' },
    ...STORE_OPTIONS,
    ...COMMON_OPTIONS,
  },
  examples: ['coatcheck stats', 'coatcheck stats --top 3 --json --store redis://127.0.0.1:6379?prefix=myapp:'],
  async run(context) {
    const { io, values, json } = context;
    const top = integerOption(values, 'top', { min: 0, max: 1000 }, 10);
    await withStore(context, {}, async (store, _sessions, target) => {
      const statsOf = store.stats?.bind(store);
      if (!statsOf) throw new CliError(`stats is not supported by the ${store.name} store (it has no stats() method)`);
      const result = await callStore(store, 'stats', STORE_TIMEOUT_MS, () => statsOf(Date.now(), { topUsers: top }));
      // stats walked the whole namespace: nothing at all in it may be a wrong Redis prefix or database.
      const empty = result.sessions === 0 && result.expired === 0;
      if (json) {
        printJson(io.stdout, { store: store.name, ...result });
        if (empty) await warnIfNamespaceEmpty(io, 'stats', target, { exhaustive: true });
        return;
      }
      const rows: Array<[string, string]> = [
        ['store', target.display],
        ['sessions', `${result.sessions} live`],
        ['expired', target.kind === 'redis' ? `${result.expired} (Redis deletes them itself)` : `${result.expired} awaiting clear-expired`],
        ['users', String(result.users)],
        ['guests', String(result.guests)],
      ];
      io.stdout.write(table(rows));
      if (result.topUsers.length > 0) {
        io.stdout.write('\ntop users:\n');
        io.stdout.write(table(result.topUsers.map((u) => [u.userId, String(u.sessions)]), ['USER', 'SESSIONS']));
      }
      if (empty) await warnIfNamespaceEmpty(io, 'stats', target, { exhaustive: true });
    });
  },
};
