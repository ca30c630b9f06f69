/**
 * Refuses option names an options object does not have. A misspelled `idleTimout` or an
 * express-session option (`rolling`, `cookie.maxAge`) would otherwise be ignored without a word,
 * and the app would run on defaults it did not choose: misuse throws at setup. The same check
 * serves `createSessions`, the adapters and every store factory (`checkFactoryOptions`).
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

/** Where refused options were given, when that is not `createSessions` (the default). */
export interface OptionsOwner {
  /** Who was given the options, starting the message: `sqliteStore` gives "sqliteStore: unknown option …". */
  owner?: string;
  /** Names other libraries use, and what to use here; replaces the express-session hints above. */
  hints?: Readonly<Record<string, string>>;
}

/** Throws a ConfigError naming the first key of `value` that is not in `known`, with a hint. */
export function refuseUnknownOptions(scope: string, value: object, known: readonly string[], given: OptionsOwner = {}): void {
  const hints = given.hints ?? MIGRATION_HINTS;
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const where = scope === '' ? key : `${scope}.${key}`;
    const hint = (Object.hasOwn(hints, key) ? hints[key] : undefined) ?? suggestion(key, known);
    const owner = given.owner === undefined ? '' : `${given.owner}: `;
    throw new ConfigError(`${owner}unknown option ${where}${hint ? `: ${hint}` : ''} (options here: ${known.join(', ')})`);
  }
}

/** What a session lifetime option of another store library becomes here. */
const LIFETIME_HINT = 'session lifetimes are createSessions options (idleTimeout, absoluteTimeout, in seconds); a store keeps each record until the expiry the engine gives it';

/** Option names of other session stores (connect-redis, connect-pg-simple…) every store factory answers. */
const STORE_HINTS: Readonly<Record<string, string>> = {
  ttl: LIFETIME_HINT,
  maxAge: LIFETIME_HINT,
  expires: LIFETIME_HINT,
  expiration: LIFETIME_HINT,
  disableTouch: 'the engine decides when a session is touched (createSessions touchInterval)',
  serializer: 'records are stored as JSON; there is nothing to configure',
};

/**
 * Checks a store factory's options object: with `required`, it must be given; if given, it must
 * be an object whose keys are all in `known` (the factory's own top-level options: nested objects
 * handed to a driver are not looked into). Otherwise a {@link ConfigError} names the factory, and
 * for an unknown name suggests the closest known one ("did you mean table?") or says what other
 * libraries' `hints` names are here. The value of a known option is not looked at: `undefined`
 * counts as absent, as the factories read it.
 * @param usage the call to show when options are missing or not an object, e.g. `redisStore({ url })`.
 */
export function checkFactoryOptions(
  factory: string,
  options: unknown,
  known: readonly string[],
  { required = false, usage, hints = {} }: { required?: boolean; usage: string; hints?: Readonly<Record<string, string>> },
): void {
  if (options === undefined) {
    if (required) throw new ConfigError(`${factory}: options are required: ${usage}`);
    return;
  }
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    const got = options === null ? 'null' : Array.isArray(options) ? 'an array' : `a ${typeof options}`;
    throw new ConfigError(`${factory}: options must be an object, got ${got}: ${usage}`);
  }
  refuseUnknownOptions('', options, known, { owner: factory, hints: { ...STORE_HINTS, ...hints } });
}

/**
 * "did you mean …" for a name within two edits of a known one (a typo), singular and plural
 * counting as the same name (`maxEntry` for `maxEntries`).
 */
function suggestion(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = Math.min(editDistance(key.toLowerCase(), candidate.toLowerCase()), editDistance(singular(key), singular(candidate)));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best === null ? null : `did you mean ${best}?`;
}

/** `maxEntries` → `maxentry`, `secrets` → `secret`: lower case, a trailing plural ending dropped. */
function singular(name: string): string {
  return name.toLowerCase().replace(/ies$/, 'y').replace(/s$/, '');
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
