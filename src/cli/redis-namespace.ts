/**
 * A second look at Redis when a command found nothing. A wrong SQL table fails loudly, but any
 * Redis key prefix and any database number name a valid, empty namespace: a `--store` without the
 * app's `?prefix=`, or with the wrong `/DB`, would report "0 sessions" and exit 0 while the app's
 * sessions stay valid. So when `kill`, `list` or `stats` find no session, the CLI checks whether
 * the namespace holds any session key at all and, if not, warns on stderr (stdout and the exit
 * status stay as they were: an empty store is legitimate, e.g. before the app's first visitor).
 *
 * The check is bounded: `DBSIZE`, `INFO keyspace`, then `SCAN … MATCH *s:{*` pages until a key
 * under the prefix turns up, the database has been walked, or the budget is spent. The same pages
 * show under which other prefixes session keys live, which the warning suggests. A `redis://` URL
 * names one server, so only that server is looked at (the CLI does not open Cluster connections).
 */
import { clean } from './format.js';
import type { CliIo } from './io.js';
import type { StoreTarget } from './store-url.js';

/** The Redis store's default key prefix (see redisStore). */
export const DEFAULT_PREFIX = 'coatcheck:';

/** What the look found. */
export interface NamespaceProbe {
  prefix: string;
  /** The database the connection is in. */
  db: number;
  /** Keys in that database (`DBSIZE`), any prefix. */
  keys: number;
  /**
   * true: a session key under the prefix exists; false: none (the whole database was walked, or
   * it is empty); null: none seen before the budget ran out (the database is larger than that).
   */
  found: boolean | null;
  /** SCAN pages read (each examines about `count` keys). */
  pages: number;
  /** The COUNT hint each page was read with. */
  count: number;
  /** Other prefixes under which session-shaped keys (`PREFIXs:{ID}`) were seen, at most 3. */
  otherPrefixes: string[];
  /** Other databases that hold keys, from `INFO keyspace` (empty if INFO is not allowed). */
  otherDatabases: Array<{ db: number; keys: number }>;
}

export interface ProbeLimits {
  /** COUNT hint per SCAN page. Default 1000. */
  count?: number;
  /** At most this many SCAN pages. Default 100 (about 100 000 keys examined). */
  maxPages?: number;
  /** Stop scanning after this many ms. Default 3000. */
  deadlineMs?: number;
}

/** A session key of any prefix: the prefix cannot hold braces, the id holds none. */
const SESSION_KEY = /^([^{}]+)s:\{[^{}]+\}$/;

function keyspace(info: string): Array<{ db: number; keys: number }> {
  const out: Array<{ db: number; keys: number }> = [];
  for (const match of info.matchAll(/^db(\d+):keys=(\d+)/gm)) out.push({ db: Number(match[1]), keys: Number(match[2]) });
  return out;
}

/** Looks at the namespace `prefix` of the database `url` names, on a connection of its own. */
export async function probeNamespace(url: string, prefix: string, limits: ProbeLimits = {}): Promise<NamespaceProbe> {
  const count = limits.count ?? 1_000;
  const maxPages = limits.maxPages ?? 100;
  const deadline = Date.now() + (limits.deadlineMs ?? 3_000);
  const { Redis } = await import('ioredis');
  // As the store connects (fail fast), without its client-side prefix rules: URLs were checked.
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 5_000, commandTimeout: 5_000, enableAutoPipelining: false });
  redis.on('error', () => {});
  try {
    const db = Number(redis.options.db ?? 0);
    const keys = await redis.dbsize();
    const otherDatabases = keyspace(await redis.info('keyspace').catch(() => '')).filter((d) => d.db !== db && d.keys > 0);
    const own = `${prefix}s:{`;
    const others = new Set<string>();
    let found: boolean | null = keys === 0 ? false : null;
    let pages = 0;
    let cursor = '0';
    while (found === null && pages < maxPages && (pages === 0 || Date.now() < deadline)) {
      // One pattern for both questions: every session key, whatever its prefix (no glob escaping
      // needed, `{` is not special in a SCAN pattern).
      const [next, page] = await redis.scan(cursor, 'MATCH', '*s:{*', 'COUNT', count);
      cursor = next;
      pages++;
      for (const key of page) {
        if (key.startsWith(own)) {
          found = true;
          break;
        }
        const other = SESSION_KEY.exec(key)?.[1];
        if (other !== undefined && others.size < 3) others.add(other);
      }
      if (found === null && cursor === '0') found = false;
    }
    return { prefix, db, keys, found, pages, count, otherPrefixes: [...others].sort(), otherDatabases };
  } finally {
    redis.disconnect();
  }
}

/** `?prefix=VALUE`, percent-encoded except for the `:` prefixes usually end with. */
function prefixParam(prefix: string): string {
  return `?prefix=${clean(encodeURIComponent(prefix).replace(/%3A/gi, ':'))}`;
}

/**
 * The warning for a probe, or null when the namespace holds sessions. `exhaustive`: the command
 * itself walked the whole namespace and found nothing (stats, kill --all), so a probe that ran out
 * of budget still means "empty".
 */
export function namespaceWarning(probe: NamespaceProbe, exhaustive: boolean): string | null {
  if (probe.found === true) return null;
  const keys = (n: number) => `${n} ${n === 1 ? 'key' : 'keys'}`;
  const where = `prefix ${JSON.stringify(clean(probe.prefix))} in database ${probe.db}`;
  const parts = [
    probe.keys === 0
      ? `no session keys under ${where}, which is empty`
      : probe.found === false || exhaustive
        ? `no session keys under ${where} (it holds ${probe.keys} other ${probe.keys === 1 ? 'key' : 'keys'})`
        : `no session keys under ${where} among the first ~${probe.pages * probe.count} of its ${keys(probe.keys)} (a bounded SCAN: some may lie further on)`,
  ];
  if (probe.otherPrefixes.length > 0) parts.push(`session keys exist under ${probe.otherPrefixes.map(prefixParam).join(', ')}`);
  if (probe.otherDatabases.length > 0) {
    const dbs = probe.otherDatabases.slice(0, 5).map((d) => `${d.db} (${keys(d.keys)})`);
    parts.push(`databases with keys: ${dbs.join(', ')}${probe.otherDatabases.length > 5 ? ', …' : ''}`);
  }
  return `${parts.join('; ')} (if the app sets redisStore({ prefix }) or uses another database, give the same in --store: ?prefix=PREFIX, /DB)`;
}

/**
 * For a command that found no session: warns on stderr when `target` is Redis and its namespace
 * holds no session key. Advisory only: a failed look prints nothing and never fails the command.
 */
export async function warnIfNamespaceEmpty(io: CliIo, command: string, target: StoreTarget, options: { exhaustive: boolean }): Promise<void> {
  if (target.kind !== 'redis') return;
  let text: string | null;
  try {
    text = namespaceWarning(await probeNamespace(target.location, target.prefix ?? DEFAULT_PREFIX), options.exhaustive);
  } catch {
    return;
  }
  if (text !== null) io.stderr.write(`coatcheck ${command}: warning: ${text}\n`);
}
