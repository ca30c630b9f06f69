/** `coatcheck kill`: ends the sessions of one user, of every guest, or all of them. */
import { FORWARDER_USER, GUEST_USER, isReservedUser } from '../../core/reserved-users.js';
import { COMMON_OPTIONS, STORE_OPTIONS, withStore, type Command } from '../command.js';
import { canAsk, confirm } from '../confirm.js';
import { CliError, UsageError } from '../exit.js';
import { clean, plural, printJson } from '../format.js';
import { warnIfNamespaceEmpty } from '../redis-namespace.js';

export const kill: Command = {
  name: 'kill',
  summary: 'end the sessions of one user, of all guests, or every session',
  usage: ['kill --user ID [--store URL] [--json]', 'kill --guests [--store URL] [--json]', 'kill --all [--yes] [--store URL] [--json]'],
  description: [
    'Deletes sessions at once: their cookies stop working on the next request. Exactly one of',
    '--user, --guests and --all is required. --all asks for confirmation on a terminal; without a',
    'terminal (scripts, cron, CI) it refuses to run unless --yes is given, so nothing is ever wiped',
    'by accident. Answering anything but y/yes deletes nothing and exits with status 1.',
  ],
  options: {
    user: { type: 'string', value: 'ID', description: 'end every session of this user id' },
    guests: { type: 'boolean', description: 'end every session without a user' },
    all: { type: 'boolean', description: 'end every session in the store' },
    yes: { type: 'boolean', short: 'y', description: 'with --all: do not ask (required when not on a terminal)' },
    ...STORE_OPTIONS,
    ...COMMON_OPTIONS,
  },
  examples: ['coatcheck kill --user alice', 'coatcheck kill --guests --json', 'coatcheck kill --all --yes --store redis://127.0.0.1:6379'],
  async run(context) {
    const { io, values, json } = context;
    const user = values.user as string | undefined;
    const chosen = [user !== undefined, values.guests === true, values.all === true].filter(Boolean).length;
    if (chosen !== 1) throw new UsageError('give exactly one of --user ID, --guests or --all');
    if (values.yes && !values.all) throw new UsageError('--yes only applies to --all');
    if (user === '') throw new UsageError('--user needs a non-empty id');
    // The engine reads __guest__ as "every guest" and __moved__ as every user's rotation
    // forwarders: a typo must not turn into a different scope.
    if (user !== undefined && isReservedUser(user)) {
      throw new UsageError(
        user === GUEST_USER
          ? `${GUEST_USER} is reserved for guest sessions: use --guests`
          : user === FORWARDER_USER
            ? `${FORWARDER_USER} is reserved for rotation forwarders (the old ids of rotated sessions, gone after the grace window), not a user: give a user id`
            : `${user} is a reserved user id, not a user: give a user id`,
      );
    }
    if (values.all && !values.yes && !canAsk(io)) {
      throw new UsageError('--all deletes every session: pass --yes to confirm when not running on a terminal');
    }
    await withStore(context, {}, async (store, sessions, target) => {
      if (values.all && !values.yes) {
        // The count only informs the question; failing to count must not block or fail it.
        const counts = store.stats ? await store.stats(Date.now(), { topUsers: 0 }).catch(() => null) : null;
        const what = counts ? ` (${plural(counts.sessions, 'live session')}, ${counts.expired} expired)` : '';
        if (!(await confirm(io, `Delete EVERY session in ${target.display}${what}?`))) {
          throw new CliError('aborted: nothing was deleted');
        }
      }
      const killed = await (values.all ? sessions.killSessionsByUser() : sessions.killSessionsByUser(values.guests ? GUEST_USER : (user as string)));
      const scope = values.all ? 'all' : values.guests ? 'guests' : 'user';
      if (json) {
        printJson(io.stdout, { store: store.name, scope, ...(scope === 'user' && { user }), killed });
      } else {
        const whose = scope === 'all' ? '' : scope === 'guests' ? ' of guests' : ` of user ${clean(user as string)}`;
        io.stdout.write(`ended ${plural(killed, 'session')}${whose}\n`);
      }
      // A wrong Redis prefix or database is an empty namespace, not an error: say so on stderr.
      if (killed === 0) await warnIfNamespaceEmpty(io, 'kill', target, { exhaustive: scope === 'all' });
    });
  },
};
