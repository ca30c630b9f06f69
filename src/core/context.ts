/**
 * The current request's session, reachable anywhere inside the request (ViUR's
 * `current.session`), through AsyncLocalStorage. Adapters run each handler inside `runWithSession`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { NoContextError } from '../errors.js';
import type { RegisteredData, SessionData } from '../types.js';
import type { Session } from './session.js';

// Holds whatever Session<T> the adapter opened; T is erased here and restored by the caller's type.
const storage = new AsyncLocalStorage<object>();

/**
 * Runs `fn` with `session` as the current one. With `enabled` false (`createSessions({ context:
 * false })`) it just calls `fn`: no AsyncLocalStorage, so Node's async hooks stay off.
 */
export function runWithSession<R>(session: object, fn: () => R, enabled = true): R {
  return enabled ? storage.run(session, fn) : fn();
}

/** The current request's session handle (maybe not loaded yet). Throws outside a request. */
export function currentSession<T extends SessionData = RegisteredData>(): Session<T> {
  const session = storage.getStore();
  if (!session) throw new NoContextError();
  return session as unknown as Session<T>;
}

/** The current request's session, loaded. Throws outside a request. */
export function useSession<T extends SessionData = RegisteredData>(): Promise<Session<T>> {
  return currentSession<T>().load();
}
