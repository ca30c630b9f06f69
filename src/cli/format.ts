/**
 * Output helpers: JSON for scripts, aligned columns for people, and escaping of anything a client
 * chose (a User-Agent can carry terminal escape sequences) before it reaches an operator's terminal.
 */
import type { OutStream } from './io.js';

/** Writes one JSON document (pretty-printed) and a newline. */
export function printJson(out: OutStream, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Escapes control characters (C0, DEL, C1) so text cannot move the cursor or recolour a terminal,
 * and bidirectional overrides and line separators so it cannot disguise what a column says.
 */
export function clean(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** A time as `2025-06-01 12:30:05Z` (UTC, seconds): sortable and unambiguous across servers. */
export function formatTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : `${date.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** A time as ISO 8601 with milliseconds, for JSON output. */
export function isoTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

/** `1 session`, `3 sessions`; irregular plurals are passed in (`batch`, `batches`). */
export function plural(count: number, word: string, many = `${word}s`): string {
  return `${count} ${count === 1 ? word : many}`;
}

/**
 * Rows aligned in columns under an optional header (the last column is not padded). Cells are
 * escaped with {@link clean}; null and empty cells print as `-`.
 */
export function table(rows: ReadonlyArray<ReadonlyArray<string | null>>, header?: readonly string[]): string {
  const body = rows.map((row) => row.map((cell) => (cell === null || cell === '' ? '-' : clean(cell))));
  const cells = header ? [header, ...body] : body;
  const widths = (cells[0] ?? []).map((_, i) => Math.max(...cells.map((row) => row[i]?.length ?? 0)));
  return cells.map((row) => `${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd()}
`).join('');
}
