/**
 * A store URL whose client library (`ioredis`, `pg`: optional peer dependencies) is not installed
 * says which package to install, as a ConfigError, instead of Node's "Cannot find package
 * 'ioredis' imported from …". Nothing is uninstalled: the mapping is checked on made-up errors,
 * and the CLI and `storeFromUrl` run in child processes whose module resolution hides the package
 * (a resolve hook that looks it up from a directory with no node_modules, so Node itself fails).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ConfigError } from '../../src/errors.js';
import { importStoreModule, missingPeerError, unbuiltSqliteError } from '../../src/stores/missing-peer.js';
import { cli } from './run-cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSX = import.meta.resolve('tsx');

/** Node's error for a package that is not installed, as an ES module import reports it. */
function notFound(name: string, form: 'esm' | 'cjs' = 'esm'): Error {
  const error = new Error(form === 'esm' ? `Cannot find package '${name}' imported from /app/node_modules/coatcheck/dist/stores/redis.js` : `Cannot find module '${name}'\nRequire stack:\n- /app/x.js`);
  return Object.assign(error, { code: form === 'esm' ? 'ERR_MODULE_NOT_FOUND' : 'MODULE_NOT_FOUND' });
}

const INSTALL = {
  redis: 'coatcheck: redis stores need the ioredis package (an optional peer dependency of coatcheck), which is not installed: npm install ioredis',
  postgres: 'coatcheck: postgres stores need the pg package (an optional peer dependency of coatcheck), which is not installed: npm install pg',
};

describe('missing client library: the error mapping', () => {
  it('turns Node\'s "Cannot find package" for ioredis / pg into a ConfigError naming the package to install, the original as cause', () => {
    for (const [kind, name] of [['redis', 'ioredis'], ['postgres', 'pg']] as const) {
      for (const form of ['esm', 'cjs'] as const) {
        const original = notFound(name, form);
        const error = missingPeerError(kind, original);
        assert.ok(error instanceof ConfigError, `${kind} ${form}`);
        assert.equal(error.code, 'ERR_CONFIG');
        assert.equal(error.message, INSTALL[kind]);
        assert.equal(error.cause, original);
      }
    }
  });

  it('leaves any other failure alone: another package missing, a module missing inside the library, other errors', () => {
    assert.equal(missingPeerError('redis', notFound('pg')), null);
    assert.equal(missingPeerError('postgres', notFound('pg-protocol')), null);
    assert.equal(missingPeerError('postgres', notFound('pg-pool', 'cjs')), null);
    assert.equal(missingPeerError('redis', new Error("Cannot find package 'ioredis'")), null, 'no module-not-found code');
    assert.equal(missingPeerError('redis', new TypeError('boom')), null);
    assert.equal(missingPeerError('redis', 'ERR_MODULE_NOT_FOUND'), null);
  });

  it('importStoreModule (an injectable importer): resolves the module, maps a missing library, passes other failures on', async () => {
    const module = { redisStore: () => 'store' };
    assert.equal(await importStoreModule('redis', async () => module), module);
    await assert.rejects(
      importStoreModule('redis', () => Promise.reject(notFound('ioredis'))),
      (error: unknown) => error instanceof ConfigError && error.message === INSTALL.redis,
    );
    await assert.rejects(
      importStoreModule('postgres', () => Promise.reject(notFound('pg'))),
      (error: unknown) => error instanceof ConfigError && error.message === INSTALL.postgres,
    );
    const other = new SyntaxError('Unexpected token');
    await assert.rejects(importStoreModule('postgres', () => Promise.reject(other)), (error: unknown) => error === other);
  });
});

// Child processes whose resolution of the named packages fails as if they were not installed.
const dir = mkdtempSync(join(tmpdir(), 'coatcheck-missing-peer-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const hooks = join(dir, 'hide-hooks.mjs');
writeFileSync(
  hooks,
  `let hidden = [];
export function initialize(data) { hidden = data.hidden; }
export async function resolve(specifier, context, next) {
  // Looked up from a directory with no node_modules above it: Node's own ERR_MODULE_NOT_FOUND.
  if (hidden.includes(specifier)) return next(specifier, { ...context, parentURL: 'file:///coatcheck-no-such-dir/index.js' });
  return next(specifier, context);
}
`,
);
const register = join(dir, 'hide.mjs');
writeFileSync(
  register,
  `import { register } from 'node:module';
register(${JSON.stringify(pathToFileURL(hooks).href)}, { data: { hidden: process.env.COATCHECK_TEST_HIDE.split(',') } });
`,
);

/** Environment for a child process in which `packages` cannot be found. */
function hiding(...packages: string[]): Record<string, string> {
  return {
    COATCHECK_TEST_HIDE: packages.join(','),
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(register).href}`.trim(),
  };
}

/** Runs an ES module snippet with tsx in a child process; resolves to its exit status and output. */
function runModule(code: string, env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', TSX, '--input-type=module', '--eval', code],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000, encoding: 'utf8' },
      (error, stdout, stderr) => resolve({ status: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr }),
    );
  });
}

describe('missing client library: where the store is imported', () => {
  it('the hook really hides the package (the test would prove nothing otherwise)', async () => {
    const result = await runModule(`await import('ioredis').then(() => console.log('found'), (e) => console.log(e.code, e.message))`, hiding('ioredis'));
    assert.match(result.stdout, /^ERR_MODULE_NOT_FOUND Cannot find package 'ioredis' imported from /, result.stderr);
  });

  it('coatcheck stats --store redis://… without ioredis: says to npm install ioredis (exit 1)', async () => {
    const result = await cli(['stats', '--store', 'redis://127.0.0.1:6379'], { env: hiding('ioredis') });
    assert.equal(result.stderr, `coatcheck stats: ${INSTALL.redis.replace(/^coatcheck: /, '')}\n`);
    assert.equal(result.status, 1);
    assert.equal(result.stdout, '');
  });

  it('coatcheck stats / migrate --store postgres://… without pg: says to npm install pg (exit 1)', async () => {
    for (const command of ['stats', 'migrate']) {
      const result = await cli([command, '--store', 'postgres://postgres@127.0.0.1:5432/test'], { env: hiding('pg') });
      assert.equal(result.stderr, `coatcheck ${command}: ${INSTALL.postgres.replace(/^coatcheck: /, '')}\n`);
      assert.equal(result.status, 1);
    }
  });

  it("storeFromUrl('redis://…') and storeFromUrl('postgres://…') reject with the ConfigError", async () => {
    const code = `
      const { storeFromUrl } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/stores/from-url.ts')).href)});
      const { ConfigError } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/errors.ts')).href)});
      for (const url of ['redis://127.0.0.1:6379', 'postgres://postgres@127.0.0.1:5432/test']) {
        await storeFromUrl(url).then(() => console.log('opened'), (e) => console.log(e instanceof ConfigError, e.message));
      }`;
    const result = await runModule(code, hiding('ioredis', 'pg'));
    assert.equal(result.stdout, `true ${INSTALL.redis}\ntrue ${INSTALL.postgres}\n`, result.stderr);
    assert.equal(result.status, 0);
  });
});

describe('better-sqlite3 without its native module (npm install --ignore-scripts)', () => {
  it('the mapping: the bindings lookup failure and a build for another Node.js version become a ConfigError, others pass', () => {
    const unbuilt = new Error('Could not locate the bindings file. Tried:\n → /app/node_modules/better-sqlite3/build/better_sqlite3.node');
    const otherNode = Object.assign(new Error("The module '/app/better_sqlite3.node'\nwas compiled against a different Node.js version using\nNODE_MODULE_VERSION 108."), { code: 'ERR_DLOPEN_FAILED' });
    assert.match(unbuiltSqliteError(unbuilt)?.message ?? '', /native module, which is not built .*: run npm rebuild better-sqlite3$/);
    assert.match(unbuiltSqliteError(otherNode)?.message ?? '', /was built for another Node\.js version: run npm rebuild better-sqlite3$/);
    assert.equal(unbuiltSqliteError(unbuilt)?.cause, unbuilt);
    assert.equal(unbuiltSqliteError(new Error('SQLITE_CANTOPEN')), null);
    assert.equal(unbuiltSqliteError('Could not locate the bindings file'), null);
  });

  it('sqliteStore() and coatcheck stats say to rebuild it, as a ConfigError, when the module is really missing', async () => {
    // A copy of better-sqlite3 without its build/ directory, which the store's import is sent to.
    const modules = join(dir, 'unbuilt', 'node_modules');
    for (const name of ['bindings', 'file-uri-to-path']) cpSync(join(ROOT, 'node_modules', name), join(modules, name), { recursive: true });
    for (const part of ['package.json', 'lib']) cpSync(join(ROOT, 'node_modules/better-sqlite3', part), join(modules, 'better-sqlite3', part), { recursive: true });
    const redirect = join(dir, 'unbuilt-hooks.mjs');
    writeFileSync(
      redirect,
      `export async function resolve(specifier, context, next) {
  if (specifier === 'better-sqlite3') return next(${JSON.stringify(pathToFileURL(join(modules, 'better-sqlite3/lib/index.js')).href)}, context);
  return next(specifier, context);
}
`,
    );
    const registerRedirect = join(dir, 'unbuilt.mjs');
    writeFileSync(registerRedirect, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(redirect).href)});\n`);
    const env = { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(registerRedirect).href}`.trim() };
    const code = `
      const { sqliteStore } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/stores/sqlite.ts')).href)});
      const { ConfigError } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/errors.ts')).href)});
      try { sqliteStore({ path: ':memory:' }); console.log('opened'); } catch (e) { console.log(e instanceof ConfigError, e.message); }`;
    const result = await runModule(code, env);
    assert.match(result.stdout, /^true coatcheck: the SQLite store needs better-sqlite3's native module, which is not built .*: run npm rebuild better-sqlite3\n$/, result.stderr);
    const db = join(dir, 'unbuilt', 'sessions.db');
    writeFileSync(db, '');
    const stats = await cli(['stats', '--store', `sqlite:${db}`], { env });
    assert.match(stats.stderr, /^coatcheck stats: the SQLite store needs better-sqlite3's native module, which is not built .*: run npm rebuild better-sqlite3\n$/);
    assert.equal(stats.status, 1);
  });
});
