import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { describe, it, mock } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from '../../src/errors.js';
import { constantTimeEqual, randomToken } from '../../src/crypto/compare.js';

/** Any JS string, including lone surrogates (UTF-16 code units drawn independently). */
const utf16 = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 64 });
const anyString = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), utf16);

describe('constantTimeEqual', () => {
  it('equal strings are equal', () => {
    fc.assert(fc.property(anyString, (s) => assert.equal(constantTimeEqual(s, s.slice()), true)));
    assert.equal(constantTimeEqual('', ''), true);
  });

  it('property: agrees with === on arbitrary pairs, including different lengths', () => {
    fc.assert(fc.property(anyString, anyString, (a, b) => assert.equal(constantTimeEqual(a, b), a === b)));
  });

  it('unequal strings: one character changed, prefixes, different lengths; never throws', () => {
    const token = randomToken();
    assert.equal(constantTimeEqual(token, token.slice(0, -1)), false);
    assert.equal(constantTimeEqual(token, token + 'x'), false);
    assert.equal(constantTimeEqual(token, ''), false);
    assert.equal(constantTimeEqual('', token), false);
    assert.equal(constantTimeEqual(token, 'x'.repeat(100_000)), false);
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 0xffff }), (at, mask) => {
        const i = at % token.length;
        const changed = token.slice(0, i) + String.fromCharCode(token.charCodeAt(i) ^ mask) + token.slice(i + 1);
        assert.equal(constantTimeEqual(token, changed), false);
      }),
    );
  });

  it('compares exactly: strings that UTF-8 would conflate are different', () => {
    assert.equal(constantTimeEqual('\ud800', '\ud801'), false); // both would encode as U+FFFD in UTF-8
    assert.equal(constantTimeEqual('\ud800', '\ufffd'), false);
    assert.equal(constantTimeEqual('e\u0301', '\u00e9'), false); // no Unicode normalization
  });

  it('non-strings (a missing header, a parsed array) give false instead of throwing', () => {
    const values: unknown[] = [undefined, null, 0, ['a'], { toString: () => 'a' }, Buffer.from('a'), new String('a')];
    for (const value of values) {
      assert.equal(constantTimeEqual(value as string, 'a'), false);
      assert.equal(constantTimeEqual('a', value as string), false);
    }
    assert.equal(constantTimeEqual(undefined as unknown as string, undefined as unknown as string), false);
  });

  it('goes through crypto.timingSafeEqual on 32-byte digests, for equal, unequal and different-length inputs', () => {
    const spy = mock.method(crypto, 'timingSafeEqual');
    syncBuiltinESMExports(); // make the spy visible through compare.ts's named ESM import
    try {
      const cases: [string, string, boolean][] = [['secret', 'secret', true], ['secret', 'secreT', false], ['s', 'secret-longer', false]];
      for (const [a, b, expected] of cases) assert.equal(constantTimeEqual(a, b), expected);
      assert.equal(spy.mock.callCount(), cases.length);
      cases.forEach(([a], i) => {
        const call = spy.mock.calls[i];
        assert.ok(call);
        const [x, y] = call.arguments as unknown as [Buffer, Buffer];
        assert.equal(x.length, 32);
        assert.equal(y.length, 32);
        assert.ok(!x.includes(Buffer.from(a)), 'compares digests, not the raw strings');
        assert.equal(call.result, cases[i]?.[2]);
      });
    } finally {
      spy.mock.restore();
      syncBuiltinESMExports();
    }
  });
});

describe('randomToken', () => {
  it('10^5 default tokens: all unique, canonical base64url, each decodes to 32 bytes', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      const token = randomToken();
      assert.ok(/^[A-Za-z0-9_-]{43}$/.test(token), token);
      const bytes = Buffer.from(token, 'base64url');
      assert.ok(bytes.length >= 32);
      assert.equal(bytes.toString('base64url'), token); // canonical, no padding
      seen.add(token);
    }
    assert.equal(seen.size, 100_000);
  });

  it('uses the CSPRNG, not Math.random', () => {
    const random = mock.method(Math, 'random', () => {
      throw new Error('Math.random must not be used');
    });
    try {
      assert.equal(Buffer.from(randomToken(), 'base64url').length, 32);
    } finally {
      random.mock.restore();
    }
  });

  it('honours the byte count within 16..1024, and refuses anything else with ConfigError', () => {
    fc.assert(
      fc.property(fc.integer({ min: 16, max: 1024 }), (bytes) => {
        assert.equal(Buffer.from(randomToken(bytes), 'base64url').length, bytes);
      }),
      { numRuns: 50 },
    );
    for (const bad of [0, 8, 15, 1025, 16.5, NaN, Infinity, -32, '32']) {
      assert.throws(() => randomToken(bad as number), (e: unknown) => e instanceof ConfigError && /bytes must be/.test(e.message));
    }
  });
});
