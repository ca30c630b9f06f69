/**
 * Summarizes a V8 `.cpuprofile` (from `npm run bench -- http --profile`): where the server's time
 * went, by function (self time) and by file/package (self time), so a miss can be explained.
 *
 *   node --import tsx bench/profile-summary.ts bench/results/profiles/<file>.cpuprofile [top]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  byFunction: Array<{ name: string; ms: number; share: number }>;
  byArea: Array<{ name: string; ms: number; share: number }>;
}

/** Which part of the stack a script belongs to: a package, coatcheck's own file, or node itself. */
function area(url: string): string {
  if (url === '') return '(native / V8)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `npm:${pkg[1]}`;
  const own = /\/(src\/.+|bench\/.+)$/.exec(url);
  if (own) return own[1] as string;
  if (url.startsWith('node:')) return url;
  return url;
}

export function summarizeProfile(path: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const fn = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, micros] of self) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    total += micros;
    if (functionName === '(idle)') {
      idle += micros;
      continue;
    }
    const name = `${functionName || '(anonymous)'} ${url ? `${area(url)}:${lineNumber + 1}` : ''}`.trim();
    fn.set(name, (fn.get(name) ?? 0) + micros);
    const key = functionName === '(garbage collector)' ? '(garbage collector)' : area(url);
    files.set(key, (files.get(key) ?? 0) + micros);
  }
  const busy = total - idle;
  const rank = (map: Map<string, number>) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, micros]) => ({ name, ms: micros / 1000, share: micros / busy }));
  return { totalMs: total / 1000, idleMs: idle / 1000, byFunction: rank(fn), byArea: rank(files) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: bench/profile-summary.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  const summary = summarizeProfile(file, Number(process.argv[3] ?? 25));
  console.log(`total ${summary.totalMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms (shares below are of busy time)`);
  console.log('\nself time by area:');
  for (const row of summary.byArea) console.log(`  ${(row.share * 100).toFixed(1).padStart(5)}%  ${row.ms.toFixed(0).padStart(6)} ms  ${row.name}`);
  console.log('\nself time by function:');
  for (const row of summary.byFunction) console.log(`  ${(row.share * 100).toFixed(1).padStart(5)}%  ${row.ms.toFixed(0).padStart(6)} ms  ${row.name}`);
}
