import { expect } from 'expect';
import { describe, it } from 'node:test';
import { retryDelayMs } from './backoff';

const policy = { baseMs: 1000, maxMs: 60_000 };

describe('retryDelayMs', () => {
  it('doubles with each attempt, between half and all of the exponential step', () => {
    expect(retryDelayMs(1, policy, undefined, () => 0)).toBe(500);
    expect(retryDelayMs(1, policy, undefined, () => 1)).toBe(1000);
    expect(retryDelayMs(2, policy, undefined, () => 0)).toBe(1000);
    expect(retryDelayMs(3, policy, undefined, () => 0.5)).toBe(3000);
    expect(retryDelayMs(4, policy, undefined, () => 1)).toBe(8000);
  });

  it('spreads delays with jitter', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) seen.add(retryDelayMs(3, policy));
    expect(seen.size).toBeGreaterThan(10);
    for (const d of seen) {
      expect(d).toBeGreaterThanOrEqual(2000);
      expect(d).toBeLessThanOrEqual(4000);
    }
  });

  it('never exceeds the cap, even after many attempts', () => {
    expect(retryDelayMs(25, policy, undefined, () => 1)).toBe(60_000);
    expect(retryDelayMs(1000, policy, undefined, () => 1)).toBe(60_000);
    expect(retryDelayMs(25, policy, undefined, () => 0)).toBe(30_000);
  });

  it('waits at least as long as Retry-After asks, up to the cap', () => {
    expect(retryDelayMs(1, policy, 5000, () => 0)).toBe(5000);
    expect(retryDelayMs(1, policy, 100, () => 0)).toBe(500);
    expect(retryDelayMs(1, policy, 10 * 60_000, () => 0)).toBe(60_000);
  });

  it('ignores a Retry-After that is not a positive number', () => {
    expect(retryDelayMs(1, policy, -5, () => 0)).toBe(500);
    expect(retryDelayMs(1, policy, Number.NaN, () => 0)).toBe(500);
    expect(retryDelayMs(1, policy, 0, () => 0)).toBe(500);
  });
});
