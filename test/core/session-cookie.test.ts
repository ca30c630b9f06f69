import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serializeSetCookie } from '../../src/cookie/serialize.js';
import { resolveOptions } from '../../src/core/options.js';
import { clearedPlainHttpCookie, clearedSessionCookie, sessionCookie } from '../../src/core/session-cookie.js';
import { CookieTooLargeError } from '../../src/errors.js';
import { memoryStore } from '../../src/stores/memory.js';

const store = memoryStore({ sweepInterval: 0 });

describe('session cookies (attribute templates cached per cookie options)', () => {
  const variants = [
    {},
    { secure: true },
    { secure: 'auto' as const },
    { sameSite: 'none' as const, secure: true, partitioned: true },
    { sameSite: 'strict' as const, domain: 'example.test', path: '/app' },
    { httpOnly: false, name: 'custom' },
  ];
  for (const cookieOptions of variants) {
    it(`matches serializeSetCookie for ${JSON.stringify(cookieOptions)}`, () => {
      const { cookie } = resolveOptions({ store, cookie: cookieOptions });
      for (const https of [false, true]) {
        for (const maxAge of [undefined, 0, 3600]) {
          const secure = cookie.secure === 'auto' ? https : cookie.secure;
          const header = sessionCookie(cookie, https, 'tok_en-123', maxAge);
          const name = header.slice(0, header.indexOf('='));
          const expected = serializeSetCookie(name, 'tok_en-123', {
            ...(maxAge !== undefined && { maxAge }),
            ...(cookie.domain !== undefined && { domain: cookie.domain }),
            path: cookie.path,
            httpOnly: cookie.httpOnly,
            secure,
            sameSite: !secure && cookie.sameSite === 'none' ? 'lax' : cookie.sameSite,
            partitioned: secure && cookie.partitioned,
          });
          assert.equal(header, expected);
          // Twice: the second comes from the cached template.
          assert.equal(sessionCookie(cookie, https, 'tok_en-123', maxAge), expected);
        }
      }
    });
  }

  it('prefixes the name on Secure cookies and clears with Max-Age=0', () => {
    const { cookie } = resolveOptions({ store, cookie: { secure: 'auto' } });
    assert.match(sessionCookie(cookie, true, 'v', 10), /^__Host-sid=v; Max-Age=10; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    assert.match(sessionCookie(cookie, false, 'v', 10), /^sid=v; Max-Age=10; Path=\/; HttpOnly; SameSite=Lax$/);
    assert.match(clearedSessionCookie(cookie, true), /^__Host-sid=; Max-Age=0;/);
    assert.match(clearedPlainHttpCookie(cookie), /^sid=; Max-Age=0; Path=\/; HttpOnly; SameSite=Lax$/);
  });

  it('refuses values that could inject attributes and cookies over 4096 bytes', () => {
    const { cookie } = resolveOptions({ store });
    assert.throws(() => sessionCookie(cookie, false, 'a; Domain=evil.test', 1), TypeError);
    assert.throws(() => sessionCookie(cookie, false, 'x'.repeat(5000), 1), CookieTooLargeError);
  });
});
