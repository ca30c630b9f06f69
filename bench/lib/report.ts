/** Tables, machine facts and result files (bench/results/, gitignored). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

export const RESULTS_DIR = fileURLToPath(new URL('../results/', import.meta.url));

export interface Machine {
  date: string;
  node: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
}

export function machine(): Machine {
  const list = cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
  };
}

export function describeMachine(m: Machine): string {
  return `${m.date.slice(0, 16).replace('T', ' ')} UTC, Node ${m.node}, ${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB RAM, Linux ${m.kernel}`;
}

/** A Markdown table; numbers are right-aligned. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((row) => row.map((cell) => String(cell)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((row) => typeof row[i] === 'number' || /^[-+]?[\d.,]+( ?[%×xµmsGMKiB/]*)?$/.test(String(row[i] ?? ''))));
  const pad = (text: string, i: number) => (numeric[i] ? text.padStart(widths[i] as number) : text.padEnd(widths[i] as number));
  const line = (row: string[]) => `| ${row.map(pad).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (numeric[i] ? `${'-'.repeat(Math.max(1, w - 1))}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(headers), rule, ...cells.map(line)].join('\n');
}

export const fixed = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
export const thousands = (n: number): string => Math.round(n).toLocaleString('en-US');

export interface Verdict {
  target: string;
  measured: string;
  required: string;
  pass: boolean | null;
  note?: string;
}

export function verdictTable(verdicts: Verdict[]): string {
  return table(
    ['target', 'measured', 'required', 'result'],
    verdicts.map((v) => [v.target, v.measured, v.required, (v.pass === null ? 'N/A' : v.pass ? 'PASS' : 'MISS') + (v.note ? ` (${v.note})` : '')]),
  );
}

/** Writes `<name>.json` and `<name>.md` under bench/results/ and returns their paths. */
export function writeResults(name: string, json: unknown, markdown: string): string[] {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const jsonPath = `${RESULTS_DIR}${name}.json`;
  const mdPath = `${RESULTS_DIR}${name}.md`;
  writeFileSync(jsonPath, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(mdPath, `${markdown}\n`);
  return [jsonPath, mdPath];
}
