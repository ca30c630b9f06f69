/**
 * Compiles what the benchmark servers run (src/ and the bench apps) to plain JavaScript under
 * bench/results/.build/, one file per module with TypeScript's own transpiler, which is what
 * `npm run build` ships. The servers then run without tsx: tsx compiles with esbuild's `keepNames`,
 * which wraps every closure in a `__name(fn, "…")` call (an `Object.defineProperty` per closure
 * created), a cost real users never pay and the JavaScript peers never paid in the comparison.
 */
import { mkdirSync, rmSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BUILD_DIR = join(ROOT, 'bench', 'results', '.build');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      if (entry !== 'results' && entry !== 'node_modules') out.push(...sources(path));
      continue;
    }
    if (entry.endsWith('.ts') && !entry.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** A second build, of a candidate src/ (bench/ab.ts compares the two). */
export const VARIANT_BUILD_DIR = join(ROOT, 'bench', 'results', '.build-variant');

/** A compiled bench entry point, e.g. `built('server')` → bench/results/.build/bench/server.js. */
export const built = (name: string, buildDir = BUILD_DIR): string => join(buildDir, 'bench', `${name}.js`);

/**
 * Transpiles src/ and bench/ into BUILD_DIR. `srcRoot` (or the `BENCH_SRC` environment variable)
 * compiles another copy of src/ in its place: a scratch copy with a candidate optimization,
 * measured by the very same apps.
 */
export function buildBench(srcRoot = process.env.BENCH_SRC ?? join(ROOT, 'src'), buildDir = BUILD_DIR): void {
  rmSync(buildDir, { recursive: true, force: true });
  const files = [...sources(srcRoot), ...sources(join(ROOT, 'bench'))];
  for (const file of files) {
    const output = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ESNext,
        verbatimModuleSyntax: true,
        sourceMap: false,
      },
    });
    const inSrc = file.startsWith(srcRoot);
    const target = (inSrc ? join(buildDir, 'src', relative(srcRoot, file)) : join(buildDir, relative(ROOT, file))).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, output.outputText);
  }
  // The compiled files are ES modules; tell Node so without touching the repo's own package.json.
  writeFileSync(join(buildDir, 'package.json'), '{ "type": "module" }\n');
}
