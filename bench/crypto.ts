/**
 * Micro-benchmark of coatcheck/crypto: µs per seal and per unseal of a 200-byte payload, with the
 * HKDF derivation already cached (the steady state of a running server).
 *
 * Run: node --import tsx bench/crypto.ts [iterations]
 */
import { randomBytes } from 'node:crypto';
import { createKeyRing, seal, unseal } from '../src/crypto/index.js';
import { derivedKey } from '../src/crypto/keyring.js';

const iterations = Number(process.argv[2] ?? 200_000);
const purpose = 'coatcheck/cookie-store/v1';
const aad = '__Host-sid';
const ring = createKeyRing([randomBytes(32).toString('base64url'), randomBytes(32).toString('base64url')]);
const payload = JSON.stringify({ user: 'u_12345', roles: ['admin'], cart: [1, 2, 3], pad: 'x'.repeat(200) }).slice(0, 200);

/** Runs fn `n` times and returns µs per call. */
function measure(n: number, fn: (i: number) => unknown): number {
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) if (fn(i) !== null) sink++;
  const elapsed = Number(process.hrtime.bigint() - start) / 1e3;
  if (sink < 0) console.log(sink); // keep the results observable
  return elapsed / n;
}

// First use pays for HKDF; measure it once, then everything below hits the cache.
const coldStart = process.hrtime.bigint();
derivedKey(ring, purpose);
const coldUs = Number(process.hrtime.bigint() - coldStart) / 1e3;

const tokens = Array.from({ length: 1024 }, () => seal(ring, purpose, payload, aad));
measure(20_000, () => seal(ring, purpose, payload, aad)); // warm-up (JIT)
measure(20_000, (i) => unseal(ring, purpose, tokens[i & 1023], aad));

const sealUs = measure(iterations, () => seal(ring, purpose, payload, aad));
const unsealUs = measure(iterations, (i) => unseal(ring, purpose, tokens[i & 1023], aad));
const tampered = tokens.map((t) => t.slice(0, -2) + (t.endsWith('AA') ? 'BA' : 'AA'));
const rejectUs = measure(iterations, (i) => unseal(ring, purpose, tampered[i & 1023], aad));

console.log(`coatcheck/crypto bench — Node ${process.version}, ${iterations} iterations, payload ${Buffer.byteLength(payload)} B, token ${tokens[0]?.length} chars`);
console.log(`  first HKDF derivation (uncached)   ${coldUs.toFixed(2)} µs`);
console.log(`  seal                               ${sealUs.toFixed(2)} µs/op`);
console.log(`  unseal (valid)                     ${unsealUs.toFixed(2)} µs/op`);
console.log(`  unseal (tampered tag, rejected)    ${rejectUs.toFixed(2)} µs/op`);
