/**
 * Opens a store from a URL, for configuration by environment (the demo's `STORE`, the CLI's
 * `--store`). Each store's client library is imported only when its scheme is used.
 *
 * | URL | store |
 * | --- | --- |
 * | `sqlite:./data/sessions.db`, `sqlite::memory:` | SQLite (the embedded default) |
 * | `postgres://user@host:5432/db` (`postgresql://` too) | PostgreSQL |
 * | `redis://host:6379/0`, `rediss://…` | Redis |
 * | `memory:` | in-process memory |
 * | `cookie:` | stateless cookie store (needs `secrets`) |
 * @module coatcheck/stores/from-url
 */
import { ConfigError } from '../errors.js';
import type { AnyStore, Store } from './types.js';

export const DEFAULT_STORE_URL = 'sqlite:./data/sessions.db';

export interface StoreFromUrlOptions {
  /** Secrets for `cookie:` (each ≥ 32 bytes). */
  secrets?: readonly string[];
  /** Store for the cookie store's revocation watermarks. */
  revocations?: Store;
}

/** What kind of store a URL names, without opening anything. */
export function storeKind(url: string): 'sqlite' | 'postgres' | 'redis' | 'memory' | 'cookie' {
  const scheme = url.slice(0, url.indexOf(':') + 1).toLowerCase();
  switch (scheme) {
    case 'sqlite:':
      return 'sqlite';
    case 'postgres:':
    case 'postgresql:':
      return 'postgres';
    case 'redis:':
    case 'rediss:':
      return 'redis';
    case 'memory:':
      return 'memory';
    case 'cookie:':
      return 'cookie';
    default:
      throw new ConfigError(`unknown store URL ${JSON.stringify(url)}: use sqlite:PATH, postgres://…, redis://…, memory: or cookie:`);
  }
}

export async function storeFromUrl(url: string = DEFAULT_STORE_URL, options: StoreFromUrlOptions = {}): Promise<AnyStore> {
  switch (storeKind(url)) {
    case 'sqlite': {
      const { sqliteStore } = await import('./sqlite.js');
      const path = url.slice('sqlite:'.length);
      if (path.length === 0) throw new ConfigError('sqlite: URL needs a path, e.g. sqlite:./data/sessions.db or sqlite::memory:');
      return sqliteStore({ path });
    }
    case 'postgres': {
      const { postgresStore } = await import('./postgres.js');
      return postgresStore({ connectionString: url });
    }
    case 'redis': {
      const { redisStore } = await import('./redis.js');
      return redisStore({ url });
    }
    case 'memory': {
      const { memoryStore } = await import('./memory.js');
      return memoryStore();
    }
    case 'cookie': {
      const { cookieStore } = await import('./cookie.js');
      if (!options.secrets?.length) throw new ConfigError('cookie: store needs secrets (each at least 32 bytes)');
      return cookieStore({ secrets: options.secrets, ...(options.revocations && { revocations: options.revocations }) });
    }
  }
}
