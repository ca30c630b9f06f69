/** `coatcheck keygen`: a new random secret for `cookieStore({ secrets })`. */
import { randomToken } from '../../crypto/compare.js';
import { integerOption } from '../args.js';
import { COMMON_OPTIONS, type Command } from '../command.js';
import { printJson } from '../format.js';

/** The fewest bytes a cookieStore secret may have (see src/crypto/keyring.ts). */
const MIN_BYTES = 32;

export const keygen: Command = {
  name: 'keygen',
  summary: 'print a new random secret for cookieStore({ secrets })',
  usage: ['keygen [--bytes N] [--json]'],
  description: [
    'Draws N bytes (default 32) from the operating system\'s CSPRNG and prints them base64url-encoded',
    '(no padding) on one line, ready for an environment variable. Touches no store.',
  ],
  options: {
    bytes: { type: 'string', value: 'N', description: `random bytes, ${MIN_BYTES} to 1024 (default ${MIN_BYTES})` },
    ...COMMON_OPTIONS,
  },
  examples: ['coatcheck keygen', 'SESSION_SECRET="$(coatcheck keygen)"', 'coatcheck keygen --bytes 64 --json'],
  async run({ io, values, json }) {
    const bytes = integerOption(values, 'bytes', { min: MIN_BYTES, max: 1024 }, MIN_BYTES);
    const secret = randomToken(bytes);
    if (json) printJson(io.stdout, { secret, bytes, encoding: 'base64url' });
    else io.stdout.write(`${secret}\n`);
  },
};
