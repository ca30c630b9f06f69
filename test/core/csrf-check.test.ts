import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifyCsrf } from '../../src/security/csrf.js';
import { setup } from '../helpers/harness.js';

function request(method: string, headers: Record<string, string> = {}, formToken?: string) {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { method, url: 'https://app.example/transfer', header: (name: string) => lower[name] ?? null, formToken: formToken ?? null };
}

describe('verifyCsrf', () => {
  it('passes safe methods without a token', async () => {
    const { visit } = setup();
    assert.deepEqual((await visit((s) => verifyCsrf(s, request('GET')))).value, { ok: true });
  });

  it('accepts the static token from a header or a form field', async () => {
    const { visit } = setup();
    const token = (await visit((s) => s.csrfToken())).value;
    assert.equal((await visit((s) => verifyCsrf(s, request('POST', { 'x-csrf-token': token })))).value.ok, true);
    assert.equal((await visit((s) => verifyCsrf(s, request('POST', {}, token)))).value.ok, true);
    assert.equal((await visit((s) => verifyCsrf(s, request('DELETE', { 'x-csrf-token': token, origin: 'https://app.example', 'sec-fetch-site': 'same-origin' })))).value.ok, true);
  });

  it('answers 403 with a reason for a missing or wrong token, a foreign Origin or a cross-site fetch', async () => {
    const { visit } = setup();
    const token = (await visit((s) => s.csrfToken())).value;
    const cases: [ReturnType<typeof request>, RegExp][] = [
      [request('POST'), /missing CSRF token/],
      [request('POST', { 'x-csrf-token': 'nope' }), /invalid CSRF token/],
      [request('POST', { 'x-csrf-token': token, origin: 'https://evil.example' }), /Origin/],
      [request('POST', { 'x-csrf-token': token, origin: 'null' }), /Origin/],
      [request('PUT', { 'x-csrf-token': token, 'sec-fetch-site': 'cross-site' }), /Sec-Fetch-Site/],
    ];
    for (const [req, reason] of cases) {
      const { value } = await visit((s) => verifyCsrf(s, req));
      assert.equal(value.ok, false);
      assert.ok(!value.ok && value.status === 403 && reason.test(value.reason), String(reason));
    }
  });

  it('accepts allowed extra origins and one-time tokens, each only once', async () => {
    const { visit } = setup();
    const once = (await visit((s) => s.getSecurityKey())).value;
    const req = request('POST', { 'x-csrf-token': once, origin: 'https://admin.example' });
    assert.equal((await visit((s) => verifyCsrf(s, req, { allowedOrigins: ['https://admin.example'] }))).value.ok, true);
    assert.equal((await visit((s) => verifyCsrf(s, req, { allowedOrigins: ['https://admin.example'] }))).value.ok, false);
  });
});
