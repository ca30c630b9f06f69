/** `coatcheck clear-expired`: deletes expired sessions in bounded batches. */
import { integerOption } from '../args.js';
import { COMMON_OPTIONS, STORE_OPTIONS, withStore, type Command } from '../command.js';
import { plural, printJson } from '../format.js';
import { bar, progressLine } from '../progress.js';

export const clearExpired: Command = {
  name: 'clear-expired',
  summary: 'delete expired sessions in batches',
  usage: ['clear-expired [--batch-size N] [--max-batches N] [--store URL] [--json]'],
  description: [
    'Deletes sessions whose expiry has passed, --batch-size at a time, oldest first, yielding between',
    'batches. On a terminal a progress line is drawn on stderr. Redis expires sessions by itself:',
    'there the command has nothing to do and says so. Safe to run from cron while the app serves.',
  ],
  options: {
    'batch-size': { type: 'string', value: 'N', description: 'sessions deleted per store call (default 1000)' },
    'max-batches': { type: 'string', value: 'N', description: 'stop after N batches (default: until none is left)' },
    ...STORE_OPTIONS,
    ...COMMON_OPTIONS,
  },
  examples: [
    'coatcheck clear-expired --store sqlite:./data/sessions.db',
    'coatcheck clear-expired --store postgres://app@db/app --batch-size 5000 --json',
  ],
  async run(context) {
    const { io, values, json } = context;
    const batchSize = integerOption(values, 'batch-size', { min: 1, max: 1_000_000 }, 1000);
    const maxBatches = integerOption(values, 'max-batches', { min: 1, max: Number.MAX_SAFE_INTEGER });
    if (context.target().kind === 'redis') {
      // Nothing to sweep, so nothing to ask Redis: a cron job must not fail while Redis restarts.
      if (json) printJson(io.stdout, { store: 'redis', deleted: 0, batches: 0, complete: true });
      else io.stdout.write('nothing to clear: Redis deletes expired sessions by itself (native TTL)\n');
      return;
    }
    await withStore(context, {}, async (store, sessions) => {
      const progress = progressLine(io.stderr);
      progress.update('clearing expired sessions…', true);
      const started = Date.now();
      let result;
      try {
        // A bar needs a total: counted only when someone watches (a terminal), never under cron,
        // and only as decoration: if counting fails, the sweep runs with a plain counter.
        const total =
          progress.enabled && store.stats
            ? await store.stats(Date.now(), { topUsers: 0 }).then((s) => s.expired, () => null)
            : null;
        result = await sessions.clearExpired({
          batchSize,
          ...(maxBatches !== undefined && { maxBatches }),
          onBatch: ({ deleted, batches }) => {
            const rate = Math.round(deleted / Math.max((Date.now() - started) / 1000, 0.001));
            const done = total ? `${bar(deleted / total)} ${deleted}/${total}` : `${deleted} deleted`;
            progress.update(`clearing expired sessions ${done}, batch ${batches}, ${rate}/s`);
          },
        });
      } finally {
        progress.done();
      }
      // A store reports the end (a null cursor) only when a batch came back short: after a full
      // batch it cannot tell without looking further, and looking means deleting. So when
      // --max-batches stops the run on a full batch, more sessions *may* remain (none at all when
      // the count was an exact multiple of --batch-size): `complete` says the store reported the
      // end, and false only that it did not, never that something is known to be left.
      const complete = result.cursor === null;
      if (json) {
        printJson(io.stdout, { store: store.name, deleted: result.deleted, batches: result.batches, complete });
        return;
      }
      io.stdout.write(`deleted ${plural(result.deleted, 'expired session')} in ${plural(result.batches, 'batch', 'batches')}\n`);
      if (!complete) io.stdout.write(`stopped after --max-batches ${maxBatches}: more expired sessions may remain, run again to continue\n`);
    });
  },
};
