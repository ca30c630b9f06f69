/** Guards the public surface: every subpath in package.json exports maps to a real module. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  exports: Record<string, string | { types: string; default: string }>;
  bin: Record<string, string>;
  engines: { node: string };
};

describe('package.json', () => {
  it('maps every subpath export to a source file with matching types and code paths', () => {
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') continue; // ./package.json
      assert.equal(target.types.replace(/\.d\.ts$/, ''), target.default.replace(/\.js$/, ''), subpath);
      const source = target.default.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts');
      assert.ok(existsSync(source), `${subpath} → ${source} does not exist`);
    }
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

  it('targets Node 20', () => {
    assert.match(pkg.engines.node, />=20/);
  });
});
