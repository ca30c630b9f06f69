/**
 * Every store call goes through here: a timeout so a hung store fails fast, and one error shape
 * (StoreError) so adapters can answer 503 without knowing which store failed.
 */
import { CoatcheckError, StoreError, StoreTimeoutError } from '../errors.js';
import { type AnyStore, type Awaitable, isPromiseLike } from '../stores/types.js';

/** One call in flight: settled by the store's answer or by the deadline, whichever comes first. */
interface PendingCall {
  readonly deadline: number;
  readonly operation: string;
  readonly reject: (error: unknown) => void;
  settled: boolean;
}

/**
 * Runs store calls with a timeout using ONE timer per engine instead of a setTimeout/clearTimeout
 * pair per call (measured: a visible share of a request's CPU on the memory store). All calls of
 * an engine share the same timeout, so arrival order is deadline order and a FIFO queue is enough:
 * the timer is armed for the oldest pending call's deadline only.
 */
export class StoreCaller {
  readonly #store: AnyStore;
  readonly #timeoutMs: number;
  readonly #settledHook: ((operation: string, durationMs: number, error: unknown) => void) | undefined;
  #queue: PendingCall[] = [];
  #head = 0;
  #unsettled = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #idleWaiters: (() => void)[] = [];
  #closed = false;

  /** `onSettled` hears every call's outcome (error undefined on success), for metrics and events. */
  constructor(store: AnyStore, timeoutMs: number, onSettled?: (operation: string, durationMs: number, error: unknown) => void) {
    this.#store = store;
    this.#timeoutMs = timeoutMs;
    this.#settledHook = onSettled;
  }

  call<T>(operation: string, run: () => Awaitable<T>): Promise<T> {
    try {
      return Promise.resolve(this.callNow(operation, run));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Like `call`, but a store that answers synchronously is answered synchronously: the value is
   * returned (or its failure thrown) in the same tick, with no promise and no timer. A store
   * that returns a promise gets the timeout as usual.
   */
  callNow<T>(operation: string, run: () => Awaitable<T>): Awaitable<T> {
    const started = performance.now();
    // After sessions.close(): a clear 503 on every store, even one that would still answer.
    if (this.#closed) throw this.#failed(operation, started, new Error('the sessions were closed (sessions.close())'));
    let answer: Awaitable<T>;
    try {
      answer = run();
    } catch (error) {
      // A synchronous store cannot hang, so a thrown failure is final: report it as `call` would.
      throw this.#failed(operation, started, error);
    }
    if (isPromiseLike(answer)) return this.#await(operation, started, answer);
    this.#settledHook?.(operation, performance.now() - started, undefined);
    return answer;
  }

  /** Waits for a store's promise, failing it at the deadline if the store has not answered. */
  #await<T>(operation: string, started: number, pending: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: PendingCall = { deadline: started + this.#timeoutMs, operation, reject, settled: false };
      this.#queue.push(entry);
      if (this.#unsettled++ === 0) this.#timer?.ref();
      this.#arm();
      pending.then(
        (value) => {
          if (!this.#settle(entry)) return;
          this.#settledHook?.(operation, performance.now() - started, undefined);
          resolve(value);
        },
        (error: unknown) => {
          if (!this.#settle(entry)) return;
          reject(this.#failed(operation, started, error));
        },
      );
    });
  }

  /** Resolves once no call is in flight (each settles by its deadline at the latest). */
  whenIdle(): Promise<void> {
    if (this.#unsettled === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Whether a deadline timer is set (tests: a closed, idle caller holds none). @internal */
  get armed(): boolean {
    return this.#timer !== null;
  }

  /** Every later call fails with a StoreError; calls in flight settle as usual. */
  close(): void {
    this.#closed = true;
    this.#releaseTimer();
  }

  /** Once closed and idle, the deadline timer goes: an armed one keeps the engine reachable until it fires. */
  #releaseTimer(): void {
    if (!this.#closed || this.#unsettled > 0 || this.#timer === null) return;
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#queue = [];
    this.#head = 0;
  }

  #becameIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Contract errors (conflict, corrupt record) keep their identity; anything else is an outage. */
  #failed(operation: string, started: number, error: unknown): CoatcheckError {
    const failure = error instanceof CoatcheckError ? error : new StoreError(this.#store.name, operation, error);
    this.#settledHook?.(operation, performance.now() - started, failure);
    return failure;
  }

  /** Marks a call settled; false if its deadline already rejected it. */
  #settle(entry: PendingCall): boolean {
    if (entry.settled) return false;
    entry.settled = true;
    if (--this.#unsettled === 0) {
      this.#timer?.unref(); // nothing pending: never hold the process open
      this.#releaseTimer();
      if (this.#idleWaiters.length > 0) this.#becameIdle();
    }
    this.#dropSettledHeads();
    return true;
  }

  #dropSettledHeads(): void {
    const queue = this.#queue;
    while (this.#head < queue.length && (queue[this.#head] as PendingCall).settled) this.#head++;
    if (this.#head === queue.length) {
      queue.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #arm(): void {
    if (this.#timer !== null || this.#head >= this.#queue.length) return;
    const delay = Math.max(0, (this.#queue[this.#head] as PendingCall).deadline - performance.now());
    this.#timer = setTimeout(() => this.#expire(), delay);
    if (this.#unsettled === 0) this.#timer.unref();
  }

  #expire(): void {
    this.#timer = null;
    const now = performance.now();
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const entry = queue[this.#head] as PendingCall;
      if (!entry.settled) {
        if (entry.deadline > now) break;
        entry.settled = true;
        this.#unsettled--;
        const failure = new StoreTimeoutError(this.#store.name, entry.operation, this.#timeoutMs);
        this.#settledHook?.(entry.operation, now - (entry.deadline - this.#timeoutMs), failure);
        entry.reject(failure);
      }
      this.#head++;
    }
    this.#dropSettledHeads();
    this.#arm();
    if (this.#unsettled === 0 && this.#idleWaiters.length > 0) this.#becameIdle();
  }
}

/** A one-off call with its own timer (the CLI's single calls). */
export function callStore<T>(store: AnyStore, operation: string, timeoutMs: number, run: () => Awaitable<T>): Promise<T> {
  return new StoreCaller(store, timeoutMs).call(operation, run);
}
