/**
 * The Cache-Control a response gets when it hands out a session cookie (`cacheControlWithCookie`):
 * nothing a shared cache may store, whatever the app wrote; the scenario suite runs it through
 * every adapter, this file covers the directive syntax.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cacheControlWithCookie } from '../../src/adapters/shared.js';

describe('cacheControlWithCookie', () => {
  it('keeps a value no shared cache may store, as written', () => {
    for (const value of ['private', 'no-store', 'Private', ' no-store ', 'max-age=0,private', 'x-public, private', 'no-store, max-age=0']) {
      assert.equal(cacheControlWithCookie(value), value, value);
    }
  });

  it('drops public and s-maxage and adds private, by directive name and outside quoted strings', () => {
    const cases: [string | readonly string[] | number | undefined, string][] = [
      [undefined, 'private'],
      ['', 'private'],
      ['public, max-age=600', 'private, max-age=600'],
      [['public', 'max-age=5'], 'private, max-age=5'],
      ['private, s-maxage=10', 'private'],
      ['no-cache', 'private, no-cache'],
      // Not a bare private: x-private is another directive, private="field" lets a shared cache keep the rest.
      ['max-age=600, x-private', 'private, max-age=600, x-private'],
      ['private="x-user", max-age=600', 'private, private="x-user", max-age=600'],
      // Commas and directive names inside a quoted value are part of it.
      ['public, max-age=600, no-cache="a,private,b"', 'private, max-age=600, no-cache="a,private,b"'],
      ['no-cache="a\\"b, private", max-age=1', 'private, no-cache="a\\"b, private", max-age=1'],
    ];
    for (const [value, expected] of cases) assert.equal(cacheControlWithCookie(value), expected, JSON.stringify(value));
  });
});
