/**
 * Refuses option names an options object does not have. A misspelled `idleTimout` or an
 * express-session option (`rolling`, `cookie.maxAge`) would otherwise be ignored without a word,
 * and the app would run on defaults it did not choose: misuse throws at setup.
 */
import { ConfigError } from '../errors.js';

/** express-session options (and other peers' names) that mean something else here, and what to use. */
const MIGRATION_HINTS: Record<string, string> = {
  secret: 'server-side sessions need no secret (ids are 256-bit random and stored hashed); the cookie store takes cookieStore({ secrets })',
  secrets: 'the cookie store takes its keys: cookieStore({ secrets })',
  rolling: 'sessions always slide: each use renews idleTimeout (written at most every touchInterval seconds)',
  resave: 'only changed keys are saved, and only when something changed',
  saveUninitialized: 'a session is stored, and its cookie set, only once something is stored in it',
  genid: 'ids are always 256-bit random tokens from the CSPRNG',
  name: 'use cookie.name',
  proxy: 'use trustProxy, or better the framework’s own proxy setting (docs/adapters.md, "Proxies")',
  unset: 'session.destroy() ends a session; nothing else is needed',
  ttl: 'use idleTimeout / absoluteTimeout (seconds)',
  maxAge: 'use idleTimeout / absoluteTimeout (seconds), cookie.persistent, or session.setExpiry() for one session',
  expires: 'use idleTimeout / absoluteTimeout (seconds), cookie.persistent, or session.setExpiry() for one session',
  signed: 'the cookie holds a random token the store knows; there is nothing to sign',
};

/** Throws a ConfigError naming the first key of `value` that is not in `known`, with a hint. */
export function refuseUnknownOptions(scope: string, value: object, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const where = scope === '' ? key : `${scope}.${key}`;
    const hint = MIGRATION_HINTS[key] ?? suggestion(key, known);
    throw new ConfigError(`unknown option ${where}${hint ? `: ${hint}` : ''} (options here: ${known.join(', ')})`);
  }
}

/** "did you mean …" for a name within two edits of a known one (a typo). */
function suggestion(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best === null ? null : `did you mean ${best}?`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] as number;
}
