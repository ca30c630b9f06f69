/**
 * Wraps a real store to count calls and to inject faults (a switch that makes calls reject or
 * hang). Used to prove "no store call" claims and fail-closed behaviour; the data still lives in
 * the real store underneath.
 */
import type { Store } from '../../src/stores/types.js';

/** `reject`: a rejected promise; `throw`: a synchronous throw (as a synchronous store fails); `hang`: no answer. */
export type Fault = 'none' | 'reject' | 'throw' | 'hang';

export interface InstrumentedStore extends Store {
  calls: Record<string, number>;
  totalCalls(): number;
  resetCounts(): void;
  fault: Fault;
  /** When set, the fault hits only these methods (e.g. `['update']`: loads work, saves fail). */
  faultOnly: string[] | null;
}

export function instrument(inner: Store): InstrumentedStore {
  const calls: Record<string, number> = {};
  const wrapper = {
    name: inner.name,
    calls,
    fault: 'none' as Fault,
    faultOnly: null,
    totalCalls: () => Object.values(calls).reduce((a, b) => a + b, 0),
    resetCounts: () => {
      for (const key of Object.keys(calls)) delete calls[key];
    },
  } as InstrumentedStore;
  const methods = ['get', 'create', 'update', 'touch', 'destroy', 'destroyByUser', 'destroyAll', 'listByUser', 'deleteExpired'] as const;
  // Optional methods only when the store underneath has them, as the engine checks for them.
  const optional = (['destroyIfEmpty'] as const).filter((method) => typeof inner[method] === 'function');
  for (const method of [...methods, ...optional]) {
    (wrapper as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      calls[method] = (calls[method] ?? 0) + 1;
      const fault = wrapper.faultOnly === null || wrapper.faultOnly.includes(method) ? wrapper.fault : 'none';
      if (fault === 'reject') return Promise.reject(new Error(`injected ${method} failure`));
      if (fault === 'throw') throw new Error(`injected ${method} failure`);
      if (fault === 'hang') return new Promise(() => undefined);
      return (inner[method] as (...a: unknown[]) => Promise<unknown>).apply(inner, args);
    };
  }
  wrapper.close = () => inner.close();
  return wrapper;
}
