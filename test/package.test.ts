/** Guards the public surface: every subpath in package.json exports maps to a real module. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  main: string;
  types: string;
  typesVersions: Record<string, Record<string, string[]>>;
  scripts: Record<string, string>;
  exports: Record<string, string | { types: string; default: string }>;
  bin: Record<string, string>;
  engines: { node: string };
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

/** Packages a module loads at run time: static imports and re-exports that are not type-only, and import(). */
function runtimeImports(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'";]*?from\s+'([^']+)'/gm)) found.push(match[1] as string);
  for (const match of text.matchAll(/^\s*import\s+'([^']+)'/gm)) found.push(match[1] as string);
  for (const match of text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) found.push(match[1] as string);
  return found.filter((specifier) => !specifier.startsWith('.'));
}

/** Helpers shared between adapters (src/adapters/node-internal.ts, fetch-internal.ts): no subpath may export them. */
const INTERNAL_HELPERS = [
  'applyCommit',
  'openFetchSession',
  'reopenedFetchSession',
  'secondSessionCookie',
  'SECOND_SESSION',
  'unsendable',
  'discardBody',
  'failureToResponse',
  'fetchSessionOf',
  'attachSession',
  'attachedSession',
  'committedElsewhere',
  'failRequest',
];

/** Every name (values and types) each adapter subpath exports: what README.md and docs/adapters.md document. */
const adapterSurface: Record<string, string[]> = {
  './node': ['withSessions', 'getSession', 'sessionHandle', 'csrfRequest', 'NodeRequest', 'NodeResponse', 'NodeAdapterOptions'],
  './fetch': ['withSessions', 'getSession', 'sessionHandle', 'FetchAdapterOptions'],
  './express': ['expressSessions', 'getSession', 'sessionHandle', 'csrfRequest', 'ExpressSessionsOptions'],
  './fastify': ['fastifySessions', 'default', 'getSession', 'csrfRequest', 'AnyFastifyRequest', 'FastifySessionsOptions'],
  './koa': ['koaSessions', 'getSession', 'csrfRequest', 'KoaSessionsOptions'],
  './hono': ['honoSessions', 'getSession', 'HonoSessionsOptions'],
};

const packageName = (specifier: string): string => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

describe('package.json', () => {
  it('maps every subpath export to a source file with matching types and code paths', () => {
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') continue; // ./package.json
      assert.equal(target.types.replace(/\.d\.ts$/, ''), target.default.replace(/\.js$/, ''), subpath);
      const source = target.default.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts');
      assert.ok(existsSync(source), `${subpath} → ${source} does not exist`);
    }
  });

  it('gives resolvers that ignore exports (TypeScript node10, old bundlers) the same entry points', () => {
    // `"module": "commonjs"` resolves with node10, which reads main/types and typesVersions, never exports.
    const root = pkg.exports['.'] as { types: string; default: string };
    assert.equal(pkg.main, root.default);
    assert.equal(pkg.types, root.types);
    assert.deepEqual(Object.keys(pkg.typesVersions), ['*']);
    const expected = Object.fromEntries(
      Object.entries(pkg.exports).flatMap(([subpath, target]) => (typeof target === 'string' || subpath === '.' ? [] : [[subpath.slice(2), [target.types]]])),
    );
    assert.deepEqual(pkg.typesVersions['*'], expected);
  });

  it('builds dist/ from scratch when packed, and not on install', () => {
    // `npm pack` / `npm publish` run prepack; `npm ci` / `npm install` run prepare and install hooks, which must not build.
    assert.match(pkg.scripts.prepack ?? '', /rmSync\('dist'.*&& npm run build$/);
    for (const hook of ['prepare', 'preinstall', 'install', 'postinstall']) assert.equal(pkg.scripts[hook], undefined, `scripts.${hook}`);
  });

  it('exposes the documented entry points', async () => {
    const expectations: Record<string, string[]> = {
      '../src/index.js': ['createSessions', 'currentSession', 'useSession', 'verifyCsrf', 'CoatcheckError'],
      '../src/stores/memory.js': ['memoryStore'],
      '../src/stores/cookie.js': ['cookieStore'],
      '../src/adapters/node.js': ['withSessions', 'getSession'],
      '../src/adapters/fetch.js': ['withSessions', 'getSession'],
      '../src/testing/store-contract.js': ['testStore'],
      '../src/crypto/index.js': ['seal', 'unseal', 'createKeyRing', 'constantTimeEqual'],
    };
    assert.equal((await import('../src/index.js')).GUEST_USER, '__guest__');
    for (const [path, names] of Object.entries(expectations)) {
      const mod = (await import(path)) as Record<string, unknown>;
      for (const name of names) assert.equal(typeof mod[name], 'function', `${path} exports ${name}`);
    }
  });

  it('keeps the helpers the adapters share out of every entry point', async () => {
    // No subpath pattern (`./*`) and no entry point into an internal module: dist/adapters/*-internal.js is unreachable.
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      assert.ok(!subpath.includes('*'), subpath);
      if (typeof target !== 'string') assert.doesNotMatch(target.default, /-internal\.js$/, subpath);
    }
    // The modules they live in do export them (a guard against checking names that exist nowhere).
    const shared = { ...(await import('../src/adapters/node-internal.js')), ...(await import('../src/adapters/fetch-internal.js')) } as Record<string, unknown>;
    for (const name of INTERNAL_HELPERS) assert.ok(name in shared, `${name} is no longer in an internal module: update this list`);
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') continue;
      const mod = (await import(`../${target.default.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts')}`)) as Record<string, unknown>;
      assert.deepEqual(INTERNAL_HELPERS.filter((name) => name in mod), [], `${subpath} exports internal helpers`);
    }
  });

  it("gives each adapter subpath exactly its documented names, types included", () => {
    const files = Object.fromEntries(
      Object.keys(adapterSurface).map((subpath) => [subpath, (pkg.exports[subpath] as { default: string }).default.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts')]),
    );
    const program = ts.createProgram(Object.values(files), {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      types: ['node'],
      skipLibCheck: true,
      noEmit: true,
    });
    const checker = program.getTypeChecker();
    for (const [subpath, file] of Object.entries(files)) {
      const source = program.getSourceFile(file);
      const module = source && checker.getSymbolAtLocation(source);
      assert.ok(module, `${subpath}: ${file} not found`);
      const names = checker.getExportsOfModule(module).map((symbol) => symbol.name).sort();
      assert.deepEqual(names, [...(adapterSurface[subpath] as string[])].sort(), subpath);
    }
  });

  it('loads at run time only Node built-ins, its dependencies and its (optional) peers', () => {
    // A devDependency imported by src/ works in this checkout and fails in an installed package.
    const allowed = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies)]);
    const problems: string[] = [];
    for (const file of sourceFiles('src')) {
      for (const specifier of runtimeImports(readFileSync(file, 'utf8'))) {
        if (specifier.startsWith('node:') || builtinModules.includes(specifier)) continue;
        if (!allowed.has(packageName(specifier))) problems.push(`${file} imports ${specifier}`);
      }
    }
    assert.deepEqual(problems, []);
    // The scan sees the imports it must judge (a guard against a regex that matches nothing).
    assert.ok(runtimeImports(readFileSync('src/stores/sqlite.ts', 'utf8')).includes('better-sqlite3'));
  });

  it('targets Node 20', () => {
    assert.match(pkg.engines.node, />=20/);
  });
});
