import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, mock } from 'node:test';
import fc from 'fast-check';
import { ConfigError, SessionTooLargeError } from '../../src/errors.js';
import { createKeyRing, type KeyRing } from '../../src/crypto/keyring.js';
import { MAX_SEALED_LENGTH, seal, unseal } from '../../src/crypto/seal.js';

const NEW = { id: 'new', secret: 'new-secret-bytes-for-seal-tests!' };
const OLD = { id: 'old', secret: 'old-secret-bytes-for-seal-tests!' };
const ring = createKeyRing([NEW, OLD]);
const P = 'coatcheck/cookie-store/v1';
const AAD = '__Host-sid';

const payload = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.uint8Array({ maxLength: 600 }),
);
const bytesOf = (p: string | Uint8Array) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p));

/** Splits a token into its three segments and the decoded body. */
function parts(token: string) {
  const [version, keyId, encoded] = token.split('.') as [string, string, string];
  return { version, keyId, encoded, body: Buffer.from(encoded, 'base64url') };
}
const rebuild = (version: string, keyId: string, body: Buffer) => `${version}.${keyId}.${body.toString('base64url')}`;

const isConfigError = (pattern?: RegExp) => (e: unknown) =>
  e instanceof ConfigError && (pattern === undefined || pattern.test(e.message));

describe('seal/unseal round trip', () => {
  it('property: any string or bytes round-trips, with the current key, not stale', () => {
    fc.assert(
      fc.property(payload, fc.option(fc.string(), { nil: undefined }), (plaintext, aad) => {
        const opened = unseal(ring, P, seal(ring, P, plaintext, aad), aad);
        assert.ok(opened);
        assert.deepEqual(opened.plaintext, bytesOf(plaintext));
        assert.equal(opened.keyId, 'new');
        assert.equal(opened.stale, false);
      }),
    );
  });

  it('token shape: v1.<keyId>.<base64url(iv[12] | ciphertext | tag[16])>, cookie-safe characters only', () => {
    fc.assert(
      fc.property(payload, (plaintext) => {
        const token = seal(ring, P, plaintext);
        assert.match(token, /^v1\.new\.[A-Za-z0-9_-]+$/);
        assert.equal(parts(token).body.length, 12 + bytesOf(plaintext).length + 16);
      }),
    );
  });

  it('empty plaintext round-trips', () => {
    assert.equal(unseal(ring, P, seal(ring, P, ''))?.plaintext.length, 0);
  });

  it('a fresh random IV each time: the same input never gives the same token', () => {
    const tokens = new Set(Array.from({ length: 1000 }, () => seal(ring, P, 'same', AAD)));
    assert.equal(tokens.size, 1000);
    const ivs = new Set([...tokens].map((t) => parts(t).body.subarray(0, 12).toString('hex')));
    assert.equal(ivs.size, 1000);
  });

  it('IVs come from a pool: one randomFillSync per 256 tokens, not one per token', () => {
    const fill = mock.method(crypto, 'randomFillSync');
    syncBuiltinESMExports();
    try {
      for (let i = 0; i < 512; i++) seal(ring, P, 'x', AAD);
      // 512 tokens span two or three fills, depending on where the pool stood.
      assert.ok(fill.mock.callCount() >= 2 && fill.mock.callCount() <= 3, `randomFillSync ran ${fill.mock.callCount()} times`);
    } finally {
      fill.mock.restore();
      syncBuiltinESMExports();
    }
  });

  it('a startup snapshot built after sealing does not hand its IV pool to the processes started from it', () => {
    // The app seals once while `node --build-snapshot` runs (a warm-up); the blob then holds the
    // filled pool. Each process started from the blob must still draw fresh IVs.
    const dir = mkdtempSync(join(tmpdir(), 'coatcheck-snapshot-'));
    try {
      const secret = 'Xq3v9LmP2rT8wK5nB7cY1hJ4fD6gS0aZ';
      const crypt = fileURLToPath(new URL('../../src/crypto/index.ts', import.meta.url));
      writeFileSync(
        join(dir, 'entry.ts'),
        [
          `import { createKeyRing, seal } from ${JSON.stringify(crypt)};`,
          `import * as v8 from 'node:v8';`,
          `const ring = createKeyRing([${JSON.stringify(secret)}]);`,
          `seal(ring, ${JSON.stringify(P)}, 'warm-up', ${JSON.stringify(AAD)});`,
          `v8.startupSnapshot.setDeserializeMainFunction(() => {`,
          `  console.log(seal(ring, ${JSON.stringify(P)}, 'from ' + process.pid, ${JSON.stringify(AAD)}));`,
          `});`,
        ].join('\n'),
      );
      const esbuild = fileURLToPath(new URL('../../node_modules/.bin/esbuild', import.meta.url));
      const env = { ...process.env, NODE_OPTIONS: '' };
      execFileSync(esbuild, [join(dir, 'entry.ts'), '--bundle', '--platform=node', '--format=cjs', `--outfile=${join(dir, 'bundle.cjs')}`, '--log-level=warning'], { env });
      const blob = join(dir, 'snap.blob');
      execFileSync(process.execPath, ['--snapshot-blob', blob, '--build-snapshot', join(dir, 'bundle.cjs')], { env, cwd: dir });
      const tokens = Array.from({ length: 3 }, () => execFileSync(process.execPath, ['--snapshot-blob', blob], { env, cwd: dir, encoding: 'utf8' }).trim());
      const sameSecret = createKeyRing([secret]);
      for (const token of tokens) assert.match(unseal(sameSecret, P, token, AAD)?.plaintext.toString('utf8') ?? '', /^from \d+$/);
      const ivs = tokens.map((token) => parts(token).body.subarray(0, 12).toString('hex'));
      assert.equal(new Set(ivs).size, 3, `IVs repeated across processes: ${ivs.join(' ')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the plaintext does not appear in the token', () => {
    const secret = JSON.stringify({ user: 'alice@example.com' });
    const token = seal(ring, P, secret);
    assert.ok(!token.includes('alice') && !parts(token).body.includes(Buffer.from('alice')));
  });

  it('string plaintexts are UTF-8: a lone surrogate becomes U+FFFD (JSON.stringify never emits one)', () => {
    assert.equal(unseal(ring, P, seal(ring, P, 'a\ud800b'))?.plaintext.toString('utf8'), 'a\ufffdb');
  });

  it('only aes-256-gcm with a 12-byte IV and 16-byte tag is ever used', () => {
    const enc = mock.method(crypto, 'createCipheriv');
    const dec = mock.method(crypto, 'createDecipheriv');
    syncBuiltinESMExports();
    try {
      unseal(ring, P, seal(ring, P, 'x'));
      unseal(ring, P, seal(createKeyRing([OLD]), P, 'y'));
      assert.equal(enc.mock.callCount(), 2);
      assert.equal(dec.mock.callCount(), 2);
      for (const call of [...enc.mock.calls, ...dec.mock.calls]) {
        const [algorithm, key, iv, options] = call.arguments as unknown as [string, Buffer, Buffer, { authTagLength: number }];
        assert.equal(algorithm, 'aes-256-gcm');
        assert.equal(key.length, 32);
        assert.equal(iv.length, 12);
        assert.equal(options.authTagLength, 16);
      }
    } finally {
      enc.mock.restore();
      dec.mock.restore();
      syncBuiltinESMExports();
    }
  });
});

describe('unseal rejects tampering (always null, never throws)', () => {
  const sealed = payload.chain((plaintext) =>
    fc.option(fc.string({ maxLength: 20 }), { nil: undefined }).map((aad) => ({ plaintext, aad, token: seal(ring, P, plaintext, aad) })),
  );

  it('property: flipping any bits of any character of the token text gives null', () => {
    fc.assert(
      fc.property(sealed, fc.nat(), fc.integer({ min: 1, max: 0xffff }), ({ token, aad }, at, mask) => {
        const i = at % token.length;
        const flipped = token.slice(0, i) + String.fromCharCode(token.charCodeAt(i) ^ mask) + token.slice(i + 1);
        assert.equal(unseal(ring, P, flipped, aad), null);
      }),
      { numRuns: 500 },
    );
  });

  it('property: flipping any bit of the decoded body (IV, ciphertext or tag) gives null', () => {
    fc.assert(
      fc.property(sealed, fc.nat(), fc.integer({ min: 1, max: 255 }), ({ token, aad }, at, mask) => {
        const { version, keyId, body } = parts(token);
        const i = at % body.length;
        body[i] = (body[i] as number) ^ mask;
        assert.equal(unseal(ring, P, rebuild(version, keyId, body), aad), null);
      }),
      { numRuns: 500 },
    );
  });

  it('property: every truncation gives null', () => {
    fc.assert(
      fc.property(sealed, fc.nat(), ({ token, aad }, cut) => {
        assert.equal(unseal(ring, P, token.slice(0, cut % token.length), aad), null);
        assert.equal(unseal(ring, P, token.slice((cut % (token.length - 1)) + 1), aad), null); // drop a prefix too
      }),
    );
  });

  it('exhaustive on one token: each truncation and each dropped character gives null', () => {
    const token = seal(ring, P, 'x'.repeat(200), AAD);
    for (let i = 0; i < token.length; i++) {
      assert.equal(unseal(ring, P, token.slice(0, i), AAD), null);
      assert.equal(unseal(ring, P, token.slice(0, i) + token.slice(i + 1), AAD), null);
    }
  });

  it('property: appended or prepended junk gives null', () => {
    fc.assert(
      fc.property(sealed, fc.string({ minLength: 1, maxLength: 40 }), fc.string({ unit: fc.constantFrom(...'AQgw_-09azAZ'), minLength: 1, maxLength: 8 }), ({ token, aad }, junk, b64) => {
        assert.equal(unseal(ring, P, token + junk, aad), null);
        assert.equal(unseal(ring, P, token + b64, aad), null); // junk that is itself valid base64url
        assert.equal(unseal(ring, P, junk + token, aad), null);
        assert.equal(unseal(ring, P, ` ${token}`, aad), null);
      }),
    );
  });

  it('swapping IVs or ciphertexts between two tokens gives null', () => {
    fc.assert(
      fc.property(payload, payload, (a, b) => {
        const ta = parts(seal(ring, P, a));
        const tb = parts(seal(ring, P, b));
        const ivSwap = Buffer.concat([tb.body.subarray(0, 12), ta.body.subarray(12)]);
        const tagSwap = Buffer.concat([ta.body.subarray(0, ta.body.length - 16), tb.body.subarray(tb.body.length - 16)]);
        assert.equal(unseal(ring, P, rebuild('v1', 'new', ivSwap)), null);
        assert.equal(unseal(ring, P, rebuild('v1', 'new', tagSwap)), null);
      }),
    );
  });

  it('swapping the key id segment gives null, even when the other id has the same secret', () => {
    const token = seal(ring, P, 'hello', AAD);
    assert.equal(unseal(ring, P, token.replace('.new.', '.old.'), AAD), null);
    assert.equal(unseal(ring, P, token.replace('.new.', '.nope.'), AAD), null); // unknown id
    // Same secret under another id in another ring: the key matches, the authenticated key id does not.
    const renamed = createKeyRing([{ id: 'other', secret: NEW.secret }]);
    assert.ok(unseal(createKeyRing([NEW]), P, token, AAD));
    assert.equal(unseal(renamed, P, token.replace('.new.', '.other.'), AAD), null);
  });

  it('wrong purpose gives null', () => {
    fc.assert(
      fc.property(payload, fc.stringMatching(/^[a-z/]{1,30}$/), (plaintext, other) => {
        fc.pre(other !== P);
        assert.equal(unseal(ring, other, seal(ring, P, plaintext)), null);
      }),
    );
  });

  it('wrong aad gives null; an omitted aad equals the empty string', () => {
    fc.assert(
      fc.property(payload, fc.string(), fc.string(), (plaintext, a, b) => {
        fc.pre(a !== b);
        assert.equal(unseal(ring, P, seal(ring, P, plaintext, a), b), null);
      }),
    );
    assert.equal(unseal(ring, P, seal(ring, P, 'x', AAD)), null);
    assert.equal(unseal(ring, P, seal(ring, P, 'x'), AAD), null);
    assert.ok(unseal(ring, P, seal(ring, P, 'x'), ''));
    // aad is bound losslessly: distinct lone surrogates are distinct contexts
    assert.equal(unseal(ring, P, seal(ring, P, 'x', '\ud800'), '\ud801'), null);
  });

  it('another version tag gives null', () => {
    const token = seal(ring, P, 'hello');
    for (const version of ['v2', 'V1', 'v0', '', 'v1 ', 'v11']) {
      assert.equal(unseal(ring, P, version + token.slice(2)), null);
    }
  });

  it('non-canonical base64url (padding, stray trailing bits) gives null', () => {
    const token = seal(ring, P, 'ab'); // body 30 bytes = 40 chars: pad to test both cases below
    assert.equal(unseal(ring, P, token + '='), null);
    const odd = seal(ring, P, 'a'); // body 29 bytes: the last character carries 2 unused bits
    const last = odd.at(-1) as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sibling = alphabet[alphabet.indexOf(last) ^ 1] as string; // same decoded bytes in Node
    assert.deepEqual(parts(odd.slice(0, -1) + sibling).body, parts(odd).body);
    assert.equal(unseal(ring, P, odd.slice(0, -1) + sibling), null);
  });

  it('property: arbitrary strings and non-strings give null without throwing', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.stringMatching(/^v1\.(new|old)\.[A-Za-z0-9_-]{0,80}$/)), (junk) => {
        assert.equal(unseal(ring, P, junk, AAD), null);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.anything(), (value) => {
        fc.pre(typeof value !== 'string');
        assert.equal(unseal(ring, P, value), null);
      }),
    );
    const token = seal(ring, P, 'x');
    const hostile = [new String(token), { toString: () => token }, [token], Buffer.from(token), Symbol('t'), 1n, () => token];
    for (const value of hostile) assert.equal(unseal(ring, P, value), null);
  });

  it('huge input is refused by length before any work', () => {
    const token = seal(ring, P, 'x');
    for (const size of [MAX_SEALED_LENGTH + 1, 1 << 20, 1 << 24]) {
      assert.equal(unseal(ring, P, token + 'A'.repeat(size), AAD), null);
      assert.equal(unseal(ring, P, `v1.new.${'A'.repeat(size)}`), null);
    }
    const started = process.hrtime.bigint();
    for (let i = 0; i < 100; i++) unseal(ring, P, 'A'.repeat(1 << 24));
    assert.ok(Number(process.hrtime.bigint() - started) / 1e6 < 1000, 'length check should be O(1)');
  });
});

describe('size limit', () => {
  it('seal refuses payloads whose token unseal would reject; the largest accepted one opens', () => {
    let largest = -1;
    assert.throws(
      () => seal(ring, P, new Uint8Array(MAX_SEALED_LENGTH)),
      (e: unknown) => {
        assert.ok(e instanceof SessionTooLargeError && e.code === 'ERR_TOO_LARGE');
        largest = Number(/limit of (\d+)/.exec(e.message)?.[1]);
        return true;
      },
    );
    const token = seal(ring, P, new Uint8Array(largest).fill(9));
    assert.ok(token.length <= MAX_SEALED_LENGTH && token.length > MAX_SEALED_LENGTH - 4, String(token.length));
    assert.equal(unseal(ring, P, token)?.plaintext.length, largest);
    assert.throws(() => seal(ring, P, new Uint8Array(largest + 1)), SessionTooLargeError);
  });
});

describe('key rotation', () => {
  const onlyOld = createKeyRing([OLD]);
  const onlyNew = createKeyRing([NEW]);

  it('property: a token from the old key opens under [new, old] and is stale', () => {
    fc.assert(
      fc.property(payload, (plaintext) => {
        const opened = unseal(ring, P, seal(onlyOld, P, plaintext, AAD), AAD);
        assert.ok(opened);
        assert.deepEqual(opened.plaintext, bytesOf(plaintext));
        assert.equal(opened.keyId, 'old');
        assert.equal(opened.stale, true);
      }),
    );
  });

  it('re-sealing a stale token uses the new key and is no longer stale', () => {
    const opened = unseal(ring, P, seal(onlyOld, P, 'data'));
    assert.ok(opened?.stale);
    const reissued = seal(ring, P, opened.plaintext);
    assert.match(reissued, /^v1\.new\./);
    assert.deepEqual(unseal(ring, P, reissued), { plaintext: Buffer.from('data'), keyId: 'new', stale: false });
  });

  it('once the old key is dropped, its tokens give null', () => {
    const token = seal(onlyOld, P, 'data');
    assert.equal(unseal(onlyNew, P, token), null);
    assert.ok(unseal(onlyNew, P, seal(ring, P, 'data')));
  });

  it('a different secret under the same id gives null', () => {
    const impostor = createKeyRing([{ id: 'new', secret: 'impostor-secret-of-32-bytes-long' }]);
    assert.equal(unseal(impostor, P, seal(ring, P, 'data')), null);
  });
});

describe('misuse throws ConfigError (programming errors, not client input)', () => {
  it('a ring not made by createKeyRing', () => {
    const fake = { ids: ['new'], currentId: 'new' } as KeyRing;
    assert.throws(() => seal(fake, P, 'x'), isConfigError(/key ring/));
    assert.throws(() => unseal(fake, P, 'x'), isConfigError(/key ring/));
    assert.throws(() => unseal(undefined as unknown as KeyRing, P, 'x'), isConfigError(/key ring/));
  });

  it('an invalid purpose, even when the token is junk', () => {
    for (const purpose of ['', 'two words', undefined, 'coatcheck/key-id/v1']) {
      assert.throws(() => seal(ring, purpose as string, 'x'), isConfigError(/purpose/));
      assert.throws(() => unseal(ring, purpose as string, 'junk'), isConfigError(/purpose/));
    }
  });

  it('a non-string aad or a plaintext of another type', () => {
    assert.throws(() => seal(ring, P, 'x', 1 as unknown as string), isConfigError(/aad/));
    assert.throws(() => unseal(ring, P, 'x', null as unknown as string), isConfigError(/aad/));
    assert.throws(() => seal(ring, P, 42 as unknown as string), isConfigError(/plaintext/));
  });
});
