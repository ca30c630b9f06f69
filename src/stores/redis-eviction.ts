/**
 * Warns once when the Redis server holding sessions may evict keys on its own.
 *
 * Why: under an LRU, LFU or random `maxmemory-policy`, Redis evicts the per-user index keys (read
 * only at sign-in) long before the sessions (read on every request). "Log out everywhere", the
 * devices list and `maxSessionsPerUser` then miss live sessions: in a review's test with
 * `allkeys-lru`, 5 396 of 9 831 live sessions were missing from their user's index. Nothing
 * fails, so the only way to tell an operator is to look at the policy.
 *
 * @module
 */
import type { Cluster, Redis } from 'ioredis';

/** Policies under which Redis never drops a session's index before the session itself. */
const SAFE_POLICIES = new Set(['noeviction', 'volatile-ttl']);

/** The policy from `INFO memory`, or null if the reply has none (a proxy, a managed service). */
export function evictionPolicy(info: string): string | null {
  const match = /^maxmemory_policy:(\S+)/m.exec(info);
  return match ? (match[1] as string) : null;
}

/**
 * Reads the server's `maxmemory-policy` once the client is ready (now, if it is) and emits one
 * process warning if it can evict keys. A refused or failed INFO (an ACL, a proxy) says nothing.
 */
export function warnIfEvicting(client: Redis | Cluster, prefix: string): void {
  let checked = false;
  const check = (): void => {
    if (checked) return;
    checked = true;
    client.info('memory').then(
      (info) => {
        const policy = evictionPolicy(info);
        if (policy === null || SAFE_POLICIES.has(policy)) return;
        process.emitWarning(
          `coatcheck: the Redis server holding sessions (prefix ${prefix}) has maxmemory-policy ${policy}: it may evict users' ` +
            'session indexes while keeping their sessions, so "log out everywhere" and the devices list would miss them. ' +
            'Use noeviction or volatile-ttl (docs/stores/redis.md, "Eviction").',
          { code: 'COATCHECK_REDIS_EVICTION' },
        );
      },
      () => undefined,
    );
  };
  if (client.status === 'ready') check();
  else client.once('ready', check);
}
