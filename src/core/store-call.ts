/**
 * Every store call goes through here: a timeout so a hung store fails fast, and one error shape
 * (StoreError) so adapters can answer 503 without knowing which store failed.
 */
import { CoatcheckError, StoreError, StoreTimeoutError } from '../errors.js';
import type { AnyStore } from '../stores/types.js';

export function callStore<T>(store: AnyStore, operation: string, timeoutMs: number, run: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreTimeoutError(store.name, operation, timeoutMs)), timeoutMs);
    let pending: Promise<T>;
    try {
      pending = run();
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        // Contract errors (conflict, corrupt record) keep their identity; anything else is an outage.
        reject(error instanceof CoatcheckError ? error : new StoreError(store.name, operation, error));
      },
    );
  });
}
