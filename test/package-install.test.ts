/**
 * The package as a user installs it: copy this checkout's working files (tracked and untracked,
 * not ignored: no `dist/`, so whatever is uncommitted is tested too) to a scratch directory, run a
 * plain `npm pack` there (scripts on, so `prepack` has to build `dist/`), unpack the tarball into a
 * scratch app's `node_modules/coatcheck`, then load every subpath export with plain Node (no tsx)
 * and from CommonJS, run the `coatcheck` bin, serve one request, and type-check consumers under
 * NodeNext, node10 (`module: commonjs`) and bundler resolution. Catches what the source-level tests
 * cannot: a pack without code, a file left out of `files`, an export pointing at nothing, a `.ts`
 * import in emitted code, a declaration that does not resolve, a README snippet that breaks types.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';

const repo = resolve('.');
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  name: string;
  version: string;
  files: string[];
  exports: Record<string, string | { types: string; default: string }>;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};

/** What each subpath must export at run time (functions, unless noted). */
const runtimeExports: Record<string, string[]> = {
  '.': ['createSessions', 'currentSession', 'useSession', 'verifyCsrf', 'CoatcheckError', 'Session'],
  './stores/memory': ['memoryStore'],
  './stores/sqlite': ['sqliteStore'],
  './stores/postgres': ['postgresStore'],
  './stores/redis': ['redisStore'],
  './stores/tiered': ['tieredStore'],
  './stores/cookie': ['cookieStore'],
  './stores/connect': ['connectStore'],
  './stores/from-url': ['storeFromUrl', 'parseStoreUrl'],
  './node': ['withSessions', 'getSession', 'csrfRequest'],
  './fetch': ['withSessions', 'getSession'],
  './express': ['expressSessions', 'getSession', 'csrfRequest'],
  './fastify': ['fastifySessions', 'getSession', 'csrfRequest'],
  './koa': ['koaSessions', 'getSession', 'csrfRequest'],
  './hono': ['honoSessions', 'getSession'],
  './testing': ['testStore'],
  './errors': ['CoatcheckError'],
  './crypto': ['seal', 'unseal', 'createKeyRing', 'constantTimeEqual'],
};

/** tsconfig settings apps use, each with the `type` of the package.json next to the consumer. */
const typeSettings: Record<string, { type: 'module' | 'commonjs'; compilerOptions: Record<string, string> }> = {
  'NodeNext, ES module app': { type: 'module', compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' } },
  'NodeNext, CommonJS app': { type: 'commonjs', compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext' } },
  // The classic (NestJS-style) setting: moduleResolution defaults to node10, which ignores `exports`.
  'module: commonjs (node10 resolution)': { type: 'commonjs', compilerOptions: { module: 'commonjs' } },
  'bundler (Vite, Next.js)': { type: 'module', compilerOptions: { module: 'ESNext', moduleResolution: 'bundler' } },
};

const run = (command: string, args: string[], cwd: string): string =>
  execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });

/** Files a user's clone of this working tree would have: tracked and untracked, minus ignored (`dist/`, `node_modules/`). */
function workingFiles(): string[] {
  const listed = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], repo).split('\0');
  // Not a deleted file (gone from the tree, not yet from the index), nor a node_modules symlink (`node_modules/` ignores directories only).
  return listed.filter((path) => path !== '' && !/^node_modules(\/|$)/.test(path) && existsSync(join(repo, path)));
}

describe('the installed package', { timeout: 180_000 }, () => {
  let root = '';
  let checkout = '';
  let app = '';
  let installed = '';
  let packed: Set<string> = new Set();

  /** Type-checks (or, with `outDir`, compiles) `files` in `dir` with the app's TypeScript. */
  const tsc = (dir: string, files: string[], compilerOptions: Record<string, unknown>): { status: number | null; output: string } => {
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', strict: true, noEmit: true, types: ['node'], skipLibCheck: true, ...compilerOptions }, files }),
    );
    const result = spawnSync(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    return { status: result.status, output: result.stdout + result.stderr };
  };

  /** A directory of the app with its own package.json `type` (node_modules is found one level up). */
  const appDir = (name: string, type: 'module' | 'commonjs'): string => {
    const dir = join(app, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ private: true, type }));
    return dir;
  };

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'coatcheck-package-'));
    checkout = join(root, 'checkout');
    for (const path of workingFiles()) {
      mkdirSync(dirname(join(checkout, path)), { recursive: true });
      cpSync(join(repo, path), join(checkout, path));
    }
    assert.ok(existsSync(join(checkout, 'src/index.ts')) && !existsSync(join(checkout, 'dist')), 'a fresh clone: sources, no dist/');
    // A leftover of an old build (a module since renamed): a clean build must not ship it.
    mkdirSync(join(checkout, 'dist'));
    writeFileSync(join(checkout, 'dist', 'stale-module.js'), 'export {};\n');
    symlinkSync(join(repo, 'node_modules'), join(checkout, 'node_modules'), 'dir');
    // What a maintainer types: no build first, scripts on (prepack builds). Lifecycle output goes to stderr.
    const [report] = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts=false', '--pack-destination', root], checkout)) as [
      { filename: string; files: { path: string }[] },
    ];
    packed = new Set(report.files.map((file) => file.path));

    app = join(root, 'app');
    installed = join(app, 'node_modules', pkg.name);
    mkdirSync(installed, { recursive: true });
    run('tar', ['-xzf', join(root, report.filename), '-C', installed, '--strip-components=1'], root);
    // Dependencies and peers the app would install next to it: linked from this checkout.
    const types = ['@types/node', '@types/express', '@types/koa', '@types/pg'];
    for (const name of [...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies), 'typescript', ...types]) {
      const target = join(app, 'node_modules', name);
      if (existsSync(target)) continue;
      mkdirSync(join(target, '..'), { recursive: true });
      symlinkSync(join(repo, 'node_modules', name), target, 'dir');
    }
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  });

  after(() => {
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('builds dist/ when packed from a checkout without it (prepack), from a clean slate', () => {
    const built = [...packed].filter((path) => path.startsWith('dist/'));
    assert.ok(built.includes('dist/index.js') && built.includes('dist/index.d.ts'), `no built code in the package: ${[...packed].join(', ')}`);
    assert.ok(!packed.has('dist/stale-module.js'), 'a stale file in dist/ was packed: prepack must build from scratch');
    assert.ok(existsSync(join(installed, 'dist', 'index.js')));
  });

  it('ships every export target, main, types and the bin, and no sources, tests, benchmarks or screenshots', () => {
    const installedPkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as typeof pkg & { main: string; types: string };
    const wanted = Object.values(pkg.exports).flatMap((target) => (typeof target === 'string' ? [target] : [target.types, target.default]));
    for (const path of [...wanted, ...Object.values(pkg.bin), installedPkg.main, installedPkg.types]) {
      assert.ok(packed.has(path.replace(/^\.\//, '')), `${path} is not in the package`);
    }
    const strays = [...packed].filter(
      (path) => /^(src|test|bench|demo|scripts|examples)\//.test(path) || (path.endsWith('.ts') && !path.endsWith('.d.ts')) || path.endsWith('.png'),
    );
    assert.deepEqual(strays, []);
    assert.ok(packed.has('README.md') && packed.has('CHANGELOG.md') && packed.has('LICENSE'));
    // The README's links to docs/ work in the installed package (images excepted: they are left out).
    const linked = [...readFileSync('README.md', 'utf8').matchAll(/\]\((docs\/[^)#\s]+)/g)].map((match) => match[1] as string);
    const missing = linked.filter((path) => !path.endsWith('.png') && ![...packed].some((file) => file === path || file.startsWith(path)));
    assert.ok(linked.length > 0);
    assert.deepEqual(missing, []);
  });

  it('loads every subpath export with plain Node and finds its documented names', () => {
    const script = `
      const wanted = ${JSON.stringify(runtimeExports)};
      const problems = [];
      for (const [subpath, names] of Object.entries(wanted)) {
        const specifier = ${JSON.stringify(pkg.name)} + subpath.slice(1);
        try {
          const mod = await import(specifier);
          if (Object.keys(mod).length === 0) problems.push(specifier + ' exports nothing');
          for (const name of names) if (typeof mod[name] !== 'function') problems.push(specifier + ' lacks ' + name);
        } catch (error) {
          problems.push(specifier + ': ' + error.message.split('\\n')[0]);
        }
      }
      console.log(JSON.stringify(problems));`;
    writeFileSync(join(app, 'load.mjs'), script);
    assert.deepEqual(Object.keys(runtimeExports).sort(), Object.keys(pkg.exports).filter((key) => key !== './package.json').sort());
    assert.deepEqual(JSON.parse(run(process.execPath, ['load.mjs'], app)), []);
  });

  it('loads from CommonJS with require() where Node can require ES modules (20.19 on), no top-level await', () => {
    // Node 20.19 unflagged require(esm); it refuses a module graph with top-level await.
    const script = `
      const problems = [];
      for (const subpath of ${JSON.stringify(Object.keys(runtimeExports))}) {
        const specifier = ${JSON.stringify(pkg.name)} + subpath.slice(1);
        try { if (Object.keys(require(specifier)).length === 0) problems.push(specifier + ' exports nothing'); }
        catch (error) { problems.push(specifier + ': ' + error.code); }
      }
      console.log(JSON.stringify(problems));`;
    writeFileSync(join(app, 'load.cjs'), script);
    const problems = JSON.parse(run(process.execPath, ['load.cjs'], app)) as string[];
    const canRequireModules = (process.features as { require_module?: boolean }).require_module === true;
    if (canRequireModules) assert.deepEqual(problems, []);
    else assert.ok(problems.length > 0 && problems.every((problem) => problem.endsWith('ERR_REQUIRE_ESM')), problems.join('\n'));
  });

  it('runs the coatcheck bin', () => {
    const result = spawnSync(process.execPath, [join(installed, pkg.bin.coatcheck as string), '--help'], { cwd: app, encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /Usage:\s+coatcheck <command>/);
  });

  it('serves a session with the embedded default store', () => {
    const script = `
      import http from 'node:http';
      import { createSessions } from 'coatcheck';
      import { sqliteStore } from 'coatcheck/stores/sqlite';
      import { withSessions, getSession } from 'coatcheck/node';
      const sessions = createSessions({ store: sqliteStore({ path: 'sessions.db' }) });
      const server = http.createServer(withSessions(sessions, async (req, res) => {
        const session = await getSession(req);
        session.set('visits', session.get('visits', 0) + 1);
        res.end(String(session.get('visits')));
      }));
      await new Promise((done) => server.listen(0, '127.0.0.1', done));
      const url = 'http://127.0.0.1:' + server.address().port + '/';
      const first = await fetch(url);
      const cookie = first.headers.get('set-cookie').split(';')[0];
      const second = await fetch(url, { headers: { cookie } });
      console.log(JSON.stringify([await first.text(), await second.text()]));
      server.close();
      await sessions.close();`;
    writeFileSync(join(app, 'serve.mjs'), script);
    assert.deepEqual(JSON.parse(run(process.execPath, ['serve.mjs'], app)), ['1', '2']);
  });

  /** Imports every subpath of `exports` and requires each documented name to have a real (not `any`) type. */
  const consumer = [
    ...Object.keys(runtimeExports).map((subpath, n) => `import * as m${n} from '${pkg.name}${subpath.slice(1)}';`),
    ...Object.values(runtimeExports).flatMap((names, n) =>
      names.map((name) => `export const probe_${n}_${name}: 0 extends 1 & typeof m${n}.${name} ? never : true = true;`),
    ),
    `export const sessions: m0.Sessions = m0.createSessions({ store: m1.memoryStore() });`,
    `// @ts-expect-error: an unknown option is a type error, so the types are real, not any`,
    `m0.createSessions({ store: m1.memoryStore(), noSuchOption: true });`,
  ].join('\n');

  for (const [setting, { type, compilerOptions }] of Object.entries(typeSettings)) {
    it(`type-checks a consumer of the root and every subpath under ${setting}`, () => {
      const dir = appDir(`types-${Object.keys(typeSettings).indexOf(setting)}`, type);
      writeFileSync(join(dir, 'consumer.ts'), consumer);
      const result = tsc(dir, ['consumer.ts'], compilerOptions);
      assert.equal(result.status, 0, result.output);
    });
  }

  it('runs what TypeScript emits for a CommonJS app (module: commonjs): require() of the package', () => {
    const dir = appDir('commonjs-emit', 'commonjs');
    writeFileSync(
      join(dir, 'main.ts'),
      [
        `import { createSessions } from 'coatcheck';`,
        `import { memoryStore } from 'coatcheck/stores/memory';`,
        `import { getSession } from 'coatcheck/fetch';`,
        `import { seal } from 'coatcheck/crypto';`,
        `const sessions = createSessions({ store: memoryStore() });`,
        `console.log(JSON.stringify([typeof sessions.close, typeof getSession, typeof seal]));`,
      ].join('\n'),
    );
    const result = tsc(dir, ['main.ts'], { module: 'commonjs', noEmit: false, outDir: 'out' });
    assert.equal(result.status, 0, result.output);
    assert.match(readFileSync(join(dir, 'out', 'main.js'), 'utf8'), /require\("coatcheck"\)/);
    const ran = spawnSync(process.execPath, [join(dir, 'out', 'main.js')], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
    if ((process.features as { require_module?: boolean }).require_module === true) {
      assert.equal(ran.status, 0, ran.stderr);
      assert.deepEqual(JSON.parse(ran.stdout), ['function', 'function', 'function']);
    } else {
      assert.match(ran.stderr, /ERR_REQUIRE_ESM/); // Node before 20.19: the README says CommonJS needs 20.19
    }
  });

  it("compiles the README's Register augmentation in a .d.ts and in a .ts file, under node10 and NodeNext", () => {
    const readme = readFileSync('README.md', 'utf8');
    const snippet = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1] as string).find((code) => code.includes('interface Register'));
    assert.ok(snippet !== undefined, 'no Register augmentation block in README.md');
    const use = [
      `import { createSessions } from 'coatcheck';`,
      `import { memoryStore } from 'coatcheck/stores/memory';`,
      `import { getSession } from 'coatcheck/fetch';`,
      `void createSessions({ store: memoryStore() });`,
      `export async function handler(request: Request): Promise<void> {`,
      `  const session = await getSession(request);`,
      `  const cart: string[] | undefined = session.get('cart');`,
      `  // @ts-expect-error: the registered type of language`,
      `  session.set('language', 'fr');`,
      `  void cart;`,
      `}`,
    ].join('\n');
    const compile = (code: string, file: string, resolution: 'node10' | 'NodeNext'): { status: number | null; output: string } => {
      const commonjs = resolution === 'node10';
      const dir = appDir(`augment-${resolution}-${file.replace(/\W/g, '')}`, commonjs ? 'commonjs' : 'module');
      writeFileSync(join(dir, 'use.ts'), use);
      writeFileSync(join(dir, file), code);
      return tsc(dir, ['use.ts', file], commonjs ? { module: 'commonjs' } : { module: 'NodeNext', moduleResolution: 'NodeNext' });
    };
    for (const resolution of ['node10', 'NodeNext'] as const) {
      for (const file of ['coatcheck.d.ts', 'register.ts']) {
        const result = compile(snippet, file, resolution);
        assert.equal(result.status, 0, `${file} under ${resolution}:\n${result.output}`);
      }
    }
    // Without its import the block is an ambient module that hides the real one: the check above would catch that.
    const bare = snippet.replace(/^import '[^']+';\n/m, '');
    assert.notEqual(bare, snippet, 'the README block starts with an import');
    assert.match(compile(bare, 'bare.d.ts', 'node10').output, /TS2305/);
  });
});
