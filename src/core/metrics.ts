/**
 * Counters and store-latency histograms, kept in process with no dependency. Read them as a
 * snapshot (JSON), as Prometheus text, or feed each store call into OpenTelemetry with
 * `onStoreCall`. Tokens never appear here: only operation names, counts and durations.
 */
import type { SessionEventName } from './events.js';

/** Upper bounds (ms) of the latency buckets; the last bucket is +Inf. */
export const LATENCY_BUCKETS_MS = [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000] as const;

export interface StoreCall {
  store: string;
  operation: string;
  durationMs: number;
  ok: boolean;
}

interface Histogram {
  count: number;
  errors: number;
  sumMs: number;
  buckets: number[];
}

export interface MetricsSnapshot {
  /** How often each lifecycle event happened. */
  events: Partial<Record<SessionEventName, number>>;
  /** Per store operation: calls, failures, total ms and cumulative bucket counts (`le` in ms). */
  storeCalls: Record<string, { count: number; errors: number; sumMs: number; buckets: { le: number | '+Inf'; count: number }[] }>;
}

export class SessionMetrics {
  readonly #events = new Map<SessionEventName, number>();
  readonly #calls = new Map<string, Histogram>();
  readonly #listeners = new Set<(call: StoreCall) => void>();

  /** @internal */
  countEvent(name: SessionEventName): void {
    this.#events.set(name, (this.#events.get(name) ?? 0) + 1);
  }

  /** @internal */
  observe(store: string, operation: string, durationMs: number, ok: boolean): void {
    let histogram = this.#calls.get(operation);
    if (!histogram) this.#calls.set(operation, (histogram = { count: 0, errors: 0, sumMs: 0, buckets: new Array(LATENCY_BUCKETS_MS.length + 1).fill(0) }));
    histogram.count++;
    if (!ok) histogram.errors++;
    histogram.sumMs += durationMs;
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && durationMs > (LATENCY_BUCKETS_MS[i] as number)) i++;
    histogram.buckets[i]!++;
    if (this.#listeners.size === 0) return;
    const call: StoreCall = { store, operation, durationMs, ok };
    for (const listener of this.#listeners) {
      try {
        listener(call);
      } catch {
        // Telemetry must never fail a request.
      }
    }
  }

  /** Called after every store call (e.g. to record into an OpenTelemetry histogram). */
  onStoreCall(listener: (call: StoreCall) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  snapshot(): MetricsSnapshot {
    const storeCalls: MetricsSnapshot['storeCalls'] = {};
    for (const [operation, h] of this.#calls) {
      let running = 0;
      const buckets = h.buckets.map((n, i) => {
        running += n;
        return { le: (LATENCY_BUCKETS_MS[i] ?? '+Inf') as number | '+Inf', count: running };
      });
      storeCalls[operation] = { count: h.count, errors: h.errors, sumMs: h.sumMs, buckets };
    }
    return { events: Object.fromEntries(this.#events), storeCalls };
  }

  /** Prometheus text exposition format (serve it from your /metrics endpoint). */
  toPrometheus(prefix = 'coatcheck'): string {
    const snap = this.snapshot();
    const lines = [`# HELP ${prefix}_events_total Session lifecycle events.`, `# TYPE ${prefix}_events_total counter`];
    for (const [name, count] of Object.entries(snap.events)) lines.push(`${prefix}_events_total{event="${name}"} ${count}`);
    lines.push(
      `# HELP ${prefix}_store_call_duration_seconds Store call latency.`,
      `# TYPE ${prefix}_store_call_duration_seconds histogram`,
    );
    for (const [operation, h] of Object.entries(snap.storeCalls)) {
      for (const bucket of h.buckets) {
        const le = bucket.le === '+Inf' ? '+Inf' : String(bucket.le / 1000);
        lines.push(`${prefix}_store_call_duration_seconds_bucket{operation="${operation}",le="${le}"} ${bucket.count}`);
      }
      lines.push(`${prefix}_store_call_duration_seconds_sum{operation="${operation}"} ${h.sumMs / 1000}`);
      lines.push(`${prefix}_store_call_duration_seconds_count{operation="${operation}"} ${h.count}`);
    }
    lines.push(`# HELP ${prefix}_store_call_errors_total Failed store calls.`, `# TYPE ${prefix}_store_call_errors_total counter`);
    for (const [operation, h] of Object.entries(snap.storeCalls)) lines.push(`${prefix}_store_call_errors_total{operation="${operation}"} ${h.errors}`);
    return lines.join('\n') + '\n';
  }
}
