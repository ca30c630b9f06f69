/** `coatcheck list --user ID`: a user's live sessions ("devices"), by handle. */
import { COMMON_OPTIONS, STORE_OPTIONS, withStore, type Command } from '../command.js';
import { UsageError } from '../exit.js';
import { isReservedUser } from '../../core/reserved-users.js';
import { clean, formatTime, isoTime, plural, printJson, table } from '../format.js';
import { warnIfNamespaceEmpty } from '../redis-namespace.js';

export const list: Command = {
  name: 'list',
  summary: 'list a user\'s live sessions (handles, never tokens)',
  usage: ['list --user ID [--store URL] [--json]'],
  description: [
    'Prints each live session of the user, oldest first: its handle (the SHA-256 of the cookie token,',
    'which the store keeps; the token itself exists only in the browser), when it was created, last',
    'seen and expires (UTC), and the IP and User-Agent it was created from. Control characters in',
    'client-supplied text are escaped. --json prints an array (times in ISO 8601).',
  ],
  options: {
    user: { type: 'string', value: 'ID', description: 'the user id whose sessions to list (required)' },
    ...STORE_OPTIONS,
    ...COMMON_OPTIONS,
  },
  examples: ['coatcheck list --user alice', 'coatcheck list --user alice --json --store postgres://app@db/app'],
  async run(context) {
    const { io, values, json } = context;
    const user = values.user as string | undefined;
    if (user === undefined || user === '') throw new UsageError('--user ID is required');
    // Guests and rotation forwarders are no one's devices: listing them by these names would mislead.
    if (isReservedUser(user)) throw new UsageError(`${user} is a reserved id, not a user: give a user id`);
    await withStore(context, {}, async (_store, sessions, target) => {
      const devices = await sessions.listByUser(user);
      if (json) {
        printJson(
          io.stdout,
          devices.map((d) => ({
            handle: d.id,
            userId: d.userId,
            createdAt: isoTime(d.createdAt),
            lastSeenAt: isoTime(d.lastSeenAt),
            expiresAt: isoTime(d.expiresAt),
            ip: d.ip,
            userAgent: d.userAgent,
          })),
        );
      } else if (devices.length === 0) {
        io.stdout.write(`no live sessions for user ${clean(user)}\n`);
      } else {
        io.stdout.write(`${plural(devices.length, 'live session')} of user ${clean(user)}:\n`);
        io.stdout.write(
          table(
            devices.map((d) => [d.id, formatTime(d.createdAt), formatTime(d.lastSeenAt), formatTime(d.expiresAt), d.ip, d.userAgent]),
            ['HANDLE', 'CREATED', 'LAST SEEN', 'EXPIRES', 'IP', 'USER AGENT'],
          ),
        );
      }
      // A wrong Redis prefix or database is an empty namespace, not an error: say so on stderr.
      if (devices.length === 0) await warnIfNamespaceEmpty(io, 'list', target, { exhaustive: false });
    });
  },
};
