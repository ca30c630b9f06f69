/**
 * The package as a user installs it: build `dist/` from the sources into a scratch app's
 * `node_modules/coatcheck`, ask npm which files a `npm pack` would ship, then load every subpath
 * export with plain Node (no tsx) and from CommonJS, run the `coatcheck` bin, serve one request, and type-check a
 * consumer file under NodeNext resolution. Catches what the source-level tests cannot: a file left
 * out of `files`, an export pointing at nothing, a `.ts` import in emitted code, a declaration that
 * does not resolve.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';

const repo = resolve('.');
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  name: string;
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

const run = (command: string, args: string[], cwd: string): string =>
  execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });

describe('the installed package', { timeout: 180_000 }, () => {
  let root = '';
  let app = '';
  let installed = '';

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'coatcheck-package-'));
    app = join(root, 'app');
    installed = join(app, 'node_modules', pkg.name);
    mkdirSync(installed, { recursive: true });
    // The package's own files, as `npm pack` would take them from a built checkout.
    cpSync('package.json', join(installed, 'package.json'));
    for (const entry of pkg.files) if (entry !== 'dist') cpSync(entry, join(installed, entry), { recursive: true });
    run(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json'), '--outDir', join(installed, 'dist')], repo);
    // Dependencies and peers the app would install next to it: linked from this checkout.
    for (const name of [...Object.keys(pkg.dependencies), ...Object.keys(pkg.peerDependencies), 'typescript', '@types/node']) {
      const target = join(app, 'node_modules', name);
      mkdirSync(join(target, '..'), { recursive: true });
      symlinkSync(join(repo, 'node_modules', name), target, 'dir');
    }
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  });

  after(() => {
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('ships every export target and the bin, and no sources, tests or benchmarks', () => {
    const [report] = JSON.parse(run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], installed)) as [{ files: { path: string }[] }];
    const shipped = new Set(report.files.map((file) => file.path));
    const wanted = Object.values(pkg.exports).flatMap((target) => (typeof target === 'string' ? [target] : [target.types, target.default]));
    for (const path of [...wanted, ...Object.values(pkg.bin)]) assert.ok(shipped.has(path.replace(/^\.\//, '')), `${path} is not in the package`);
    const strays = [...shipped].filter((path) => /^(src|test|bench|demo|scripts|examples)\//.test(path) || (path.endsWith('.ts') && !path.endsWith('.d.ts')));
    assert.deepEqual(strays, []);
    assert.ok(shipped.has('README.md') && shipped.has('CHANGELOG.md'));
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

  it('type-checks a consumer under NodeNext resolution, with real (not any) types', () => {
    const consumer = `
      import { createSessions, type Sessions, CoatcheckError } from 'coatcheck';
      import { memoryStore } from 'coatcheck/stores/memory';
      import { sqliteStore } from 'coatcheck/stores/sqlite';
      import { redisStore } from 'coatcheck/stores/redis';
      import { postgresStore } from 'coatcheck/stores/postgres';
      import { tieredStore } from 'coatcheck/stores/tiered';
      import { cookieStore } from 'coatcheck/stores/cookie';
      import { withSessions } from 'coatcheck/node';
      import { getSession } from 'coatcheck/fetch';
      import { expressSessions } from 'coatcheck/express';
      import { fastifySessions } from 'coatcheck/fastify';
      import { testStore } from 'coatcheck/testing';
      import { seal } from 'coatcheck/crypto';
      import { koaSessions } from 'coatcheck/koa';
      import { honoSessions } from 'coatcheck/hono';
      import { storeFromUrl } from 'coatcheck/stores/from-url';
      import { connectStore } from 'coatcheck/stores/connect';
      import { StoreError } from 'coatcheck/errors';
      const sessions: Sessions = createSessions({ store: memoryStore() });
      // @ts-expect-error: an unknown option is a type error, so the types are real, not any
      createSessions({ store: memoryStore(), noSuchOption: true });
      void [sessions, CoatcheckError, sqliteStore, redisStore, postgresStore, tieredStore, cookieStore, withSessions,
        getSession, expressSessions, fastifySessions, testStore, seal, koaSessions, honoSessions, storeFromUrl, connectStore, StoreError];
    `;
    writeFileSync(join(app, 'consumer.ts'), consumer);
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, types: ['node'], skipLibCheck: true },
        files: ['consumer.ts'],
      }),
    );
    const result = spawnSync(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', app], { cwd: app, encoding: 'utf8', timeout: 120_000 });
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });
});
