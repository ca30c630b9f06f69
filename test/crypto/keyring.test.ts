import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { inspect } from 'node:util';
import { describe, it, mock } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from '../../src/errors.js';
import { createKeyRing, deriveKey, derivedKey, isKeyRing, MIN_SECRET_BYTES, type KeyRingEntry } from '../../src/crypto/keyring.js';

const A = 'a-secret-that-is-exactly-32-byte'; // 32 ASCII bytes
const B = 'b-secret-that-is-also-32-bytes!!';
const C = 'z-another-secret-with-32-bytes!!';
const PURPOSE = 'coatcheck/test/v1';

const isConfigError = (pattern?: RegExp) => (e: unknown) =>
  e instanceof ConfigError && e.code === 'ERR_CONFIG' && (pattern === undefined || pattern.test(e.message));

/** Replaces a node:crypto export with a spy visible through ESM named imports; returns the mock. */
function spyOnCrypto<K extends 'hkdfSync'>(name: K) {
  const spy = mock.method(crypto, name);
  syncBuiltinESMExports();
  return {
    spy,
    restore() {
      spy.mock.restore();
      syncBuiltinESMExports();
    },
  };
}

describe('createKeyRing: setup validation', () => {
  it('has no default: missing, non-array and empty input throw ConfigError', () => {
    for (const bad of [undefined, null, '', A, {}, []]) {
      assert.throws(() => createKeyRing(bad as unknown as KeyRingEntry[]), isConfigError(/secret/));
    }
  });

  it('accepts exactly MIN_SECRET_BYTES bytes and rejects one byte fewer', () => {
    assert.equal(MIN_SECRET_BYTES, 32);
    assert.doesNotThrow(() => createKeyRing([A]));
    assert.throws(() => createKeyRing([A.slice(0, 31)]), isConfigError(/31 bytes.*at least 32/));
    assert.doesNotThrow(() => createKeyRing([{ id: 'k', secret: Uint8Array.from({ length: 32 }, (_, i) => i) }]));
    assert.throws(() => createKeyRing([{ id: 'k', secret: Uint8Array.from({ length: 31 }, (_, i) => i) }]), isConfigError(/31 bytes/));
  });

  it('refuses placeholders (few different characters, a short run repeated) and accepts random or passphrase secrets', () => {
    for (const [secret, why] of [
      ['x'.repeat(32), /only 1 different character/],
      ['0'.repeat(64), /only 1 different character/],
      ['password'.repeat(4), /a run of 8 characters repeated/],
      ['aaaaaaaabbbbbbbbccccccccdddddddd', /only 4 different characters/],
      ['abcdefgh'.repeat(4), /a run of 8 characters repeated/],
      ['changeme-'.repeat(4), /a run of 9 characters repeated/],
      // Nearly a repeat: one character more, a run repeated only twice, one character dominating.
      ['password'.repeat(4) + '!', /almost entirely a run of 8 characters repeated \(32 of 33\)/],
      ['!' + 'password'.repeat(4), /almost entirely a run of 8 characters repeated/],
      ['0123456789abcdef'.repeat(2), /a run of 16 characters repeated/],
      ['keyboard cat keyboard cat keyboard cat', /a run of 13 characters repeated/],
      ['my-secret-key-'.repeat(2) + 'my-secret-kez', /almost entirely a run of 14 characters repeated \(40 of 41\)/],
      ['a'.repeat(28) + 'bcde', /mostly one character \(28 of 32\)/],
      ['x'.repeat(16) + 'abcdefghijklmnop', /mostly one character \(16 of 32\)/],
      ['secret' + '0'.repeat(30), /mostly one character \(30 of 36\)/],
    ] as const) {
      assert.throws(() => createKeyRing([secret]), isConfigError(why), secret);
      assert.throws(() => createKeyRing([A, { id: 'old', secret }]), isConfigError(/secrets\[1\]\.secret is .*coatcheck keygen/), secret);
    }
    assert.throws(() => createKeyRing([{ id: 'k', secret: new Uint8Array(32) }]), isConfigError(/only 1 different/));
    // Random secrets in every usual encoding, many times over: never refused.
    for (let i = 0; i < 2000; i++) {
      const bytes = crypto.randomBytes(32);
      assert.doesNotThrow(() => createKeyRing([{ id: 'bytes', secret: bytes }, bytes.toString('hex'), bytes.toString('base64url')]));
    }
    assert.doesNotThrow(() => createKeyRing(['correct horse battery staple, twice']));
    // Characters, not bytes: Greek letters share their UTF-8 lead byte, and are no placeholder.
    assert.doesNotThrow(() => createKeyRing(['καλημέρα κόσμε, πάλι καλημέρα']));
    assert.throws(() => createKeyRing(['αβγδεζηθικλμνξο'.repeat(2)]), isConfigError(/a run of 15 characters repeated/));
    // Decimal digits: 10 values only, so "few different bytes" must stay well below that. One
    // digit filling half of 32 (about 1e-7 per secret) is the one rule random digits can meet.
    for (let i = 0; i < 2000; i++) {
      const digits = Array.from(crypto.randomBytes(32), (b) => String(b % 10)).join('');
      const most = Math.max(...Array.from('0123456789', (d) => digits.split(d).length - 1));
      if (most < 16) assert.doesNotThrow(() => createKeyRing([digits]), digits);
      else assert.throws(() => createKeyRing([digits]), isConfigError(/mostly one character/));
    }
  });

  it('never refuses a random secret: 10 000 each of hex (64), base64 (44, as openssl rand -base64 32) and base64url (43)', () => {
    const refused: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const bytes = crypto.randomBytes(32);
      for (const secret of [bytes.toString('hex'), bytes.toString('base64'), bytes.toString('base64url')]) {
        try {
          createKeyRing([secret]);
        } catch {
          refused.push(secret);
        }
      }
    }
    assert.deepEqual(refused, []);
  });

  it('measures string secrets in UTF-8 bytes, not characters', () => {
    assert.throws(() => createKeyRing(['€'.repeat(10)]), isConfigError(/30 bytes/)); // 10 chars, 30 bytes
    assert.doesNotThrow(() => createKeyRing(['αβγδεζηθικλμνξοπx'])); // 17 chars, 33 bytes
  });

  it('property: any secret shorter than 32 bytes is refused, wherever it sits in the ring', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 31 }), fc.nat(3), (short, position) => {
        const entries: KeyRingEntry[] = [A, B, 'c-secret-of-forty-bytes-0123456789abcdef'];
        entries.splice(Math.min(position, entries.length), 0, { id: 'short', secret: short });
        assert.throws(() => createKeyRing(entries), isConfigError(/bytes; secrets must be at least 32/));
      }),
    );
  });

  it('says a secret that is undefined may be an unset environment variable', () => {
    assert.throws(() => createKeyRing([undefined as unknown as string]), isConfigError(/secrets\[0\] must be a string secret or \{ id, secret \} \(it is undefined: is the environment variable you passed unset\?\)/));
    assert.throws(() => createKeyRing([A, { id: 'old', secret: undefined as unknown as string }]), isConfigError(/secrets\[1\]\.secret must be a string or a Uint8Array \(it is undefined/));
    assert.throws(() => createKeyRing([42 as unknown as string]), (e: Error) => !/unset/.test(e.message));
  });

  it('rejects secrets of the wrong type and strings with lone surrogates', () => {
    assert.throws(() => createKeyRing([{ id: 'k', secret: 42 as unknown as string }]), isConfigError(/string or a Uint8Array/));
    assert.throws(() => createKeyRing([{ id: 'k' } as unknown as KeyRingEntry]), isConfigError(/string or a Uint8Array/));
    assert.throws(() => createKeyRing([42 as unknown as string]), isConfigError(/string secret or \{ id, secret \}/));
    assert.throws(() => createKeyRing([null as unknown as string]), isConfigError());
    assert.throws(() => createKeyRing(['x'.repeat(32) + '\ud800']), isConfigError(/lone surrogate/));
    assert.doesNotThrow(() => createKeyRing([A + '\ud83d\ude00'])); // a proper pair is fine
  });

  it('validates explicit ids', () => {
    for (const id of ['', 'a.b', 'a b', 'x'.repeat(33), 'é', 7, undefined]) {
      assert.throws(() => createKeyRing([{ id, secret: A } as unknown as KeyRingEntry]), isConfigError(/id must be/));
    }
    assert.doesNotThrow(() => createKeyRing([{ id: 'A-z_09', secret: A }, { id: 'x'.repeat(32), secret: B }]));
  });

  it('rejects duplicate ids, including a derived id colliding with an explicit one', () => {
    assert.throws(() => createKeyRing([{ id: 'k', secret: A }, { id: 'k', secret: B }]), isConfigError(/duplicate key id "k"/));
    const derived = createKeyRing([A]).currentId;
    assert.throws(() => createKeyRing([B, { id: derived, secret: C }, A]), isConfigError(/duplicate key id/));
  });

  it('rejects the same secret twice, as string or bytes, under any ids', () => {
    assert.throws(() => createKeyRing([{ id: 'a', secret: A }, { id: 'b', secret: Buffer.from(A) }]), isConfigError(/same secret/));
  });
});

describe('createKeyRing: ids and order', () => {
  it('the first entry is current; ids keep their order', () => {
    const ring = createKeyRing([{ id: 'new', secret: A }, { id: 'old', secret: B }]);
    assert.equal(ring.currentId, 'new');
    assert.deepEqual(ring.ids, ['new', 'old']);
    assert.equal(isKeyRing(ring), true);
    assert.equal(isKeyRing({ ids: ['new'], currentId: 'new' }), false);
  });

  it('string secrets get a stable id derived from the secret, independent of position', () => {
    const first = createKeyRing([A, B]);
    const second = createKeyRing([B, A]);
    assert.match(first.ids[0] as string, /^[A-Za-z0-9_-]{8}$/);
    assert.deepEqual([...first.ids].reverse(), second.ids);
    assert.notEqual(first.ids[0], first.ids[1]);
    assert.equal(createKeyRing([A]).currentId, createKeyRing([C, A]).ids[1]);
    assert.notEqual(createKeyRing([A]).currentId, createKeyRing([A + '!']).currentId);
  });

  it('the ring is frozen and exposes no secret through JSON, inspect or its keys', () => {
    const ring = createKeyRing([{ id: 'k', secret: A }, B]);
    assert.ok(Object.isFrozen(ring) && Object.isFrozen(ring.ids));
    assert.deepEqual(Object.keys(ring).sort(), ['currentId', 'ids']);
    for (const text of [JSON.stringify(ring), inspect(ring, { showHidden: true, depth: 10 })]) {
      assert.ok(!text.includes(A) && !text.includes(B), text);
    }
  });

  it('copies byte secrets: mutating the caller\'s array later does not change the key', () => {
    const bytes = Uint8Array.from({ length: 32 }, (_, i) => i);
    const ring = createKeyRing([{ id: 'k', secret: bytes }]);
    const before = deriveKey(ring, PURPOSE);
    bytes.fill(2);
    assert.deepEqual(deriveKey(ring, PURPOSE), before);
  });
});

describe('per-purpose key derivation', () => {
  it('derives 32-byte keys that differ by purpose and by key, and match HKDF-SHA256', () => {
    const ring = createKeyRing([{ id: 'one', secret: A }, { id: 'two', secret: B }]);
    const csrf = deriveKey(ring, 'coatcheck/csrf/v1');
    const cookie = deriveKey(ring, 'coatcheck/cookie-store/v1');
    const old = deriveKey(ring, 'coatcheck/csrf/v1', 'two');
    assert.ok(csrf && cookie && old);
    assert.equal(csrf.length, 32);
    assert.notDeepEqual(csrf, cookie);
    assert.notDeepEqual(csrf, old);
    const expected = Buffer.from(crypto.hkdfSync('sha256', Buffer.from(A), 'coatcheck/hkdf-salt/v1', 'coatcheck/csrf/v1', 32));
    assert.deepEqual(csrf, expected);
    assert.notDeepEqual(csrf, Buffer.from(A)); // never the raw secret
  });

  it('unknown key id gives null', () => {
    const ring = createKeyRing([A]);
    assert.equal(deriveKey(ring, PURPOSE, 'nope'), null);
    assert.equal(derivedKey(ring, PURPOSE, 'nope'), null);
  });

  it('invalid purposes and look-alike rings throw ConfigError', () => {
    const ring = createKeyRing([A]);
    for (const purpose of ['', 'has space', 'x'.repeat(129), 'tab\t', 'é', 5, undefined]) {
      assert.throws(() => deriveKey(ring, purpose as string), isConfigError(/purpose/));
    }
    assert.throws(() => deriveKey({ ids: ['k'], currentId: 'k' }, PURPOSE), isConfigError(/key ring/));
    assert.throws(() => deriveKey(null as unknown as ReturnType<typeof createKeyRing>, PURPOSE), isConfigError(/key ring/));
  });

  it('refuses purposes under coatcheck/key-id/: the key id is derived with that label and printed in every token', () => {
    const ring = createKeyRing([A]);
    // The public key id is the first 6 bytes of HKDF(secret, salt, 'coatcheck/key-id/v1').
    const idBytes = crypto.hkdfSync('sha256', Buffer.from(A), 'coatcheck/hkdf-salt/v1', 'coatcheck/key-id/v1', 6);
    assert.equal(ring.currentId, Buffer.from(idBytes).toString('base64url'));
    for (const purpose of ['coatcheck/key-id/v1', 'coatcheck/key-id/v2', 'coatcheck/key-id/']) {
      assert.throws(() => deriveKey(ring, purpose), isConfigError(/reserved/), purpose);
      assert.throws(() => derivedKey(ring, purpose), isConfigError(/reserved/), purpose);
    }
    // Neighbours stay usable.
    assert.ok(deriveKey(ring, 'coatcheck/key-ids/v1'));
    assert.ok(deriveKey(ring, 'myapp/coatcheck/key-id/v1'));
  });

  it('caches per (key id, purpose): HKDF runs once per pair, then never again', () => {
    const ring = createKeyRing([{ id: 'one', secret: A }, { id: 'two', secret: B }]);
    const hkdf = spyOnCrypto('hkdfSync');
    try {
      const first = derivedKey(ring, 'coatcheck/a/v1');
      for (let i = 0; i < 100; i++) assert.equal(derivedKey(ring, 'coatcheck/a/v1'), first);
      assert.equal(hkdf.spy.mock.callCount(), 1);
      derivedKey(ring, 'coatcheck/b/v1');
      derivedKey(ring, 'coatcheck/a/v1', 'two');
      derivedKey(ring, 'coatcheck/a/v1', 'two');
      assert.equal(hkdf.spy.mock.callCount(), 3);
    } finally {
      hkdf.restore();
    }
  });

  it('deriveKey hands out copies, so callers cannot corrupt the cache', () => {
    const ring = createKeyRing([A]);
    const copy = deriveKey(ring, PURPOSE);
    assert.ok(copy);
    const original = Buffer.from(copy);
    copy.fill(0);
    assert.deepEqual(deriveKey(ring, PURPOSE), original);
  });
});
