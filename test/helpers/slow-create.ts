/**
 * A memory store whose `create` answers after a delay, as a networked store does: a new
 * session's commit is then asynchronous, so the adapters hold the response while it runs.
 */
import { memoryStore } from '../../src/stores/memory.js';
import type { Store } from '../../src/stores/types.js';

export function slowCreateStore(delayMs: number): Store {
  const inner = memoryStore({ sweepInterval: 0 });
  return { ...inner, create: (record) => new Promise((resolve) => setTimeout(() => resolve(inner.create(record)), delayMs)) };
}
