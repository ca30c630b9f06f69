/** Cluster key slots as Redis computes them (the examples of the CLUSTER KEYSLOT docs and of the Cluster spec). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc16, keySlot } from '../../src/stores/redis-slot.js';

describe('Redis Cluster key slots', () => {
  it('matches CLUSTER KEYSLOT: plain keys, hash tags, empty and nested braces', () => {
    assert.equal(keySlot('somekey'), 11058);
    assert.equal(keySlot('foo{hash_tag}'), 2515);
    assert.equal(keySlot('{hash_tag}.other'), 2515, 'only the tag counts');
    assert.equal(keySlot('foo{}{bar}'), crc16(0, Buffer.from('foo{}{bar}')) & 16383, 'an empty tag: the whole key');
    assert.equal(keySlot('foo{{bar}}zap'), keySlot('{bar'), 'the tag runs to the first closing brace');
  });

  it('continues a checksum over several pieces as over the whole', () => {
    const whole = Buffer.from('session-id-stem-and-tail');
    assert.equal(crc16(crc16(0, whole.subarray(0, 10)), whole.subarray(10)), crc16(0, whole));
  });
});
