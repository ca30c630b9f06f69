import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findCookie, MAX_COOKIE_VALUE } from '../../src/cookie/parse.js';

describe('findCookie', () => {
  it('finds a cookie among others, skipping spaces and tabs around names and values', () => {
    assert.deepEqual(findCookie('a=1; sid=abc; b=2', 'sid'), { kind: 'found', value: 'abc' });
    assert.deepEqual(findCookie(' \tsid \t= abc\t ;x=y', 'sid'), { kind: 'found', value: 'abc' });
    assert.deepEqual(findCookie('sid="abc"', 'sid'), { kind: 'found', value: 'abc' });
    assert.deepEqual(findCookie('xsid=1; sidx=2; sid', 'sid'), { kind: 'absent' });
    assert.deepEqual(findCookie('', 'sid'), { kind: 'absent' });
    assert.deepEqual(findCookie(undefined, 'sid'), { kind: 'absent' });
  });

  it('never lets a name with other leading or trailing characters pass for a prefixed one', () => {
    // A browser keeps these as part of the name, so they carry none of __Host-'s guarantees.
    for (const spoof of ['\u00a0__Host-sid', '__Host-sid\u00a0', '\u000b__Host-sid', '\u000c__Host-sid', '\ufeff__Host-sid', '"__Host-sid"', '__%48ost-sid']) {
      assert.deepEqual(findCookie(`${spoof}=planted`, '__Host-sid'), { kind: 'absent' }, JSON.stringify(spoof));
    }
    assert.deepEqual(findCookie('\u00a0__Host-sid=planted; __Host-sid=real', '__Host-sid'), { kind: 'found', value: 'real' });
  });

  it('reports two different values as ambiguous, the same value twice as found, and ignores oversize values', () => {
    assert.deepEqual(findCookie('sid=a; sid=b', 'sid'), { kind: 'ambiguous' });
    assert.deepEqual(findCookie('sid=a; sid=a', 'sid'), { kind: 'found', value: 'a' });
    assert.deepEqual(findCookie(`sid=${'x'.repeat(MAX_COOKIE_VALUE + 1)}`, 'sid'), { kind: 'absent' });
    assert.deepEqual(findCookie(`sid=${'x'.repeat(MAX_COOKIE_VALUE + 1)}; sid=ok`, 'sid'), { kind: 'found', value: 'ok' });
  });

  it('takes linear time on a header of many pairs without "="', () => {
    // The old search for "=" ran on to the end of the header from every pair: about 5 s for this.
    const header = `${'x;'.repeat(500_000)}sid=found`;
    const started = performance.now();
    assert.deepEqual(findCookie(header, 'sid'), { kind: 'found', value: 'found' });
    assert.ok(performance.now() - started < 1_000, `took ${Math.round(performance.now() - started)} ms`);
  });
});
