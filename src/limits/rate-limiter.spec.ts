import { expect } from 'expect';
import { describe, it } from 'node:test';
import { SlidingWindowRateLimiter } from './rate-limiter';

const MINUTE = 60_000;

/** A limiter on a clock the test moves; the clock starts at the beginning of a window. */
function limiter(limit: number, start = 10 * MINUTE) {
  const clock = { now: start };
  return { clock, limiter: new SlidingWindowRateLimiter(limit, MINUTE, () => clock.now) };
}

describe('SlidingWindowRateLimiter', () => {
  it('allows the limit, counts down what remains, then refuses', () => {
    const { limiter: l } = limiter(3);
    expect([1, 2, 3].map(() => l.hit('a').remaining)).toEqual([2, 1, 0]);
    const refused = l.hit('a');
    expect(refused).toMatchObject({ allowed: false, remaining: 0, limit: 3 });
  });

  it('counts each key apart', () => {
    const { limiter: l } = limiter(1);
    expect(l.hit('a').allowed).toBe(true);
    expect(l.hit('a').allowed).toBe(false);
    expect(l.hit('b').allowed).toBe(true);
  });

  it('does not count refused requests', () => {
    const { clock, limiter: l } = limiter(2);
    l.hit('a');
    l.hit('a');
    for (let i = 0; i < 50; i++) expect(l.hit('a').allowed).toBe(false);
    // Next window, halfway: the previous window's 2 weigh 1, so one more fits. Had the
    // refusals counted, the previous window would weigh 26.
    clock.now += MINUTE + MINUTE / 2;
    expect(l.hit('a').allowed).toBe(true);
    expect(l.hit('a').allowed).toBe(false);
  });

  it('weighs the previous window by how much of it the sliding window still covers', () => {
    const { clock, limiter: l } = limiter(10);
    for (let i = 0; i < 10; i++) l.hit('a');
    clock.now += MINUTE + MINUTE / 4; // previous 10 × 3/4 = 7.5, floored to 7
    expect([1, 2, 3, 4].map(() => l.hit('a').allowed)).toEqual([true, true, true, false]);
  });

  it('forgets a window that passed idle', () => {
    const { clock, limiter: l } = limiter(2);
    l.hit('a');
    l.hit('a');
    clock.now += 2 * MINUTE + 1;
    expect(l.hit('a').remaining).toBe(1);
  });

  it('says when to retry: when the previous window has decayed enough', () => {
    const { clock, limiter: l } = limiter(10);
    for (let i = 0; i < 10; i++) l.hit('a');
    clock.now += MINUTE; // previous 10, weight 1: full
    const refused = l.hit('a');
    expect(refused.allowed).toBe(false);
    // 10 × (1 - t/60 s) < 10 as soon as t > 0: the next second.
    expect(refused.retryAfterSeconds).toBe(1);
    clock.now += 1_000;
    expect(l.hit('a').allowed).toBe(true);
  });

  it('says when to retry: at the next window, when this one is full', () => {
    const { clock, limiter: l } = limiter(5);
    clock.now += 20_000;
    for (let i = 0; i < 5; i++) l.hit('a');
    const refused = l.hit('a');
    // The window ends in 40 s, and there these 5 still weigh 5 until a moment has passed.
    expect(refused.resetSeconds).toBe(40);
    expect(refused.retryAfterSeconds).toBe(41);
    clock.now += 40_000;
    expect(l.hit('a').allowed).toBe(false);
    clock.now += 1_000;
    expect(l.hit('a').allowed).toBe(true);
  });

  it('keeps no counter for keys idle for two windows', () => {
    const { clock, limiter: l } = limiter(5);
    for (let k = 0; k < 100; k++) l.hit(`k${k}`);
    expect(l.size).toBe(100);
    clock.now += 2 * MINUTE;
    l.hit('other');
    expect(l.size).toBe(1);
  });

  it('refuses a limit or window below 1', () => {
    expect(() => new SlidingWindowRateLimiter(0, MINUTE)).toThrow();
    expect(() => new SlidingWindowRateLimiter(5, 0)).toThrow();
  });
});
