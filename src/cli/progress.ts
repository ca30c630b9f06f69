/**
 * A one-line progress display for long runs: rewritten in place with `\r` on a terminal, silent
 * otherwise (so logs and pipes never fill with carriage returns).
 */
import type { OutStream } from './io.js';

export interface Progress {
  /** Whether anything is drawn (callers skip work done only for the display). */
  readonly enabled: boolean;
  /** Shows `text` as the current state (throttled; the first and forced updates always show). */
  update(text: string, force?: boolean): void;
  /** Erases the line, leaving the terminal as it was. */
  done(): void;
}

export interface ProgressOptions {
  /** Draw at all. Default: only when the stream is a terminal. */
  enabled?: boolean;
  /** Least time between redraws, in ms. Default 100. */
  intervalMs?: number;
  /** Time source (tests). */
  now?: () => number;
}

/** `\r` back to column 0, then erase to the end of the line. */
const RESET = '\r\u001b[K';

/** A progress line on `stream` (stderr, so stdout stays clean for results and `--json`). */
export function progressLine(stream: OutStream, options: ProgressOptions = {}): Progress {
  const enabled = options.enabled ?? stream.isTTY === true;
  const intervalMs = options.intervalMs ?? 100;
  const now = options.now ?? Date.now;
  let drawnAt = -Infinity;
  let drawn = false;
  return {
    enabled,
    update(text, force = false) {
      if (!enabled) return;
      const t = now();
      if (!force && t - drawnAt < intervalMs) return;
      drawnAt = t;
      drawn = true;
      stream.write(`${RESET}${text}`);
    },
    done() {
      if (drawn) stream.write(RESET);
      drawn = false;
    },
  };
}

/** `[#######.............]  35%` for a fraction in 0..1. */
export function bar(fraction: number, width = 20): string {
  const f = Math.min(1, Math.max(0, fraction));
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(Math.floor(f * 100)).padStart(3)}%`;
}
