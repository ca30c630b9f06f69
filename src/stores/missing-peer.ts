/**
 * Opening a networked store whose client library (`pg`, `ioredis`: optional peer dependencies)
 * is not installed: a {@link ConfigError} saying which package to install, instead of Node's
 * "Cannot find package 'ioredis' imported from …". `storeFromUrl` and the CLI's `--store` import
 * their stores through it.
 */
import { ConfigError } from '../errors.js';

/**
 * The client library each networked store imports, an optional peer dependency of coatcheck
 * (better-sqlite3, the embedded default's, is a dependency).
 */
const STORE_PEERS = { postgres: 'pg', redis: 'ioredis' } as const;

/**
 * The {@link ConfigError} saying which package to install when `error` is Node's failure to find
 * the client library of a `kind` store (`Cannot find package 'ioredis' imported from …`), else
 * null. A module missing inside an installed library (a broken install) is not this error.
 */
export function missingPeerError(kind: keyof typeof STORE_PEERS, error: unknown): ConfigError | null {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return null;
  const name = STORE_PEERS[kind];
  // ESM: "Cannot find package 'pg' imported from …"; CommonJS: "Cannot find module 'pg'".
  if (!(error as Error).message.includes(`Cannot find package '${name}'`) && !(error as Error).message.startsWith(`Cannot find module '${name}'`)) return null;
  const failure = new ConfigError(`${kind} stores need the ${name} package (an optional peer dependency of coatcheck), which is not installed: npm install ${name}`);
  // ConfigError takes no cause; set it as Error's constructor does (own, not enumerable).
  Object.defineProperty(failure, 'cause', { value: error, writable: true, configurable: true, enumerable: false });
  return failure;
}

/**
 * The {@link ConfigError} for better-sqlite3 installed without its native module (`npm install
 * --ignore-scripts`, an install-scripts policy, a build for another Node version), else null.
 * Its own error is a line of a dozen searched paths that names no fix.
 */
export function unbuiltSqliteError(error: unknown): ConfigError | null {
  if (!(error instanceof Error)) return null;
  const unbuilt = error.message.includes('Could not locate the bindings file');
  const otherNode = (error as { code?: unknown }).code === 'ERR_DLOPEN_FAILED' && error.message.includes('NODE_MODULE_VERSION');
  if (!unbuilt && !otherNode) return null;
  const why = unbuilt ? 'is not built (installed with --ignore-scripts, or install scripts not allowed?)' : 'was built for another Node.js version';
  const failure = new ConfigError(`the SQLite store needs better-sqlite3's native module, which ${why}: run npm rebuild better-sqlite3`);
  Object.defineProperty(failure, 'cause', { value: error, writable: true, configurable: true, enumerable: false });
  return failure;
}

/**
 * Runs `load`, the dynamic import of a `kind` store's module (which imports its client library),
 * turning a missing client library into the {@link ConfigError} of {@link missingPeerError}.
 * `storeFromUrl` and the CLI open their stores through it.
 */
export async function importStoreModule<M>(kind: keyof typeof STORE_PEERS, load: () => Promise<M>): Promise<M> {
  try {
    return await load();
  } catch (error) {
    throw missingPeerError(kind, error) ?? error;
  }
}
