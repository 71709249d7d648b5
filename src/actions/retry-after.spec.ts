import { expect } from 'expect';
import { describe, it } from 'node:test';
import { parseRetryAfter } from './retry-after';

const now = Date.parse('2026-01-10T12:00:00Z');

describe('parseRetryAfter', () => {
  it('reads delay-seconds', () => {
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 3 ', now)).toBe(3000);
  });

  it('reads an HTTP-date relative to now', () => {
    expect(parseRetryAfter('Sat, 10 Jan 2026 12:00:30 GMT', now)).toBe(30_000);
  });

  it('treats a date in the past as no wait', () => {
    expect(parseRetryAfter('Sat, 10 Jan 2026 11:00:00 GMT', now)).toBe(0);
  });

  it('ignores what it cannot read', () => {
    for (const v of [
      null,
      undefined,
      '',
      '-5',
      '1.5',
      'soon',
      'tomorrow 10:00',
      'Sat, 99 Foo 2026 xx:yy:zz GMT',
    ]) {
      expect(parseRetryAfter(v, now)).toBeUndefined();
    }
  });
});
