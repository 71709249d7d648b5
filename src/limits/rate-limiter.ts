/** What one request got from the limiter. */
export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  /** Requests left in the window after this one (0 when refused). */
  remaining: number;
  /** Seconds until the current window ends. */
  resetSeconds: number;
  /** When refused: seconds until a request would be allowed again. */
  retryAfterSeconds: number;
}

interface Counter {
  /** Start of the window `current` counts (ms, a multiple of the window). */
  windowStart: number;
  current: number;
  /** Requests of the window before it. */
  previous: number;
}

/**
 * A sliding-window counter per key: the requests of the current fixed window
 * plus the previous window's, weighted by how much of it the sliding window
 * still covers. Constant time and memory per key, whatever the caller's rate
 * (a log of every hit's time costs a filter over it on each request). Refused
 * requests are not counted, so a caller that keeps retrying does not push its
 * own window further. Keys idle for two windows are swept.
 */
export class SlidingWindowRateLimiter {
  private readonly counters = new Map<string, Counter>();
  private lastSweep = 0;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(limit >= 1) || !(windowMs >= 1)) throw new Error('limit and windowMs must be at least 1');
  }

  hit(key: string): RateLimitDecision {
    const now = this.now();
    const windowStart = now - (now % this.windowMs);
    this.sweep(windowStart);
    let counter = this.counters.get(key);
    if (!counter) {
      counter = { windowStart, current: 0, previous: 0 };
      this.counters.set(key, counter);
    } else if (counter.windowStart !== windowStart) {
      // The window rolled: what was current is the previous window now, unless a whole window passed idle.
      counter.previous = counter.windowStart === windowStart - this.windowMs ? counter.current : 0;
      counter.current = 0;
      counter.windowStart = windowStart;
    }
    const elapsed = now - windowStart;
    const weight = 1 - elapsed / this.windowMs;
    const used = Math.floor(counter.previous * weight) + counter.current;
    const resetSeconds = Math.max(1, Math.ceil((this.windowMs - elapsed) / 1000));
    if (used >= this.limit) {
      return {
        allowed: false,
        limit: this.limit,
        remaining: 0,
        resetSeconds,
        retryAfterSeconds: Math.max(
          1,
          Math.ceil(
            msUntilAllowed(this.limit, this.windowMs, counter.previous, counter.current, elapsed) / 1000,
          ),
        ),
      };
    }
    counter.current += 1;
    return {
      allowed: true,
      limit: this.limit,
      remaining: this.limit - used - 1,
      resetSeconds,
      retryAfterSeconds: 0,
    };
  }

  /** Keys held (for tests and metrics). */
  get size(): number {
    return this.counters.size;
  }

  /** Drops counters that have not been hit for two windows, at most once a window. */
  private sweep(windowStart: number): void {
    if (windowStart === this.lastSweep) return;
    this.lastSweep = windowStart;
    for (const [key, counter] of this.counters) {
      if (counter.windowStart < windowStart - this.windowMs) this.counters.delete(key);
    }
  }
}

/**
 * How long until floor(previous × weight) + current drops below the limit,
 * `elapsed` ms into the window. `current` never exceeds the limit (a refused
 * request does not count): below it, the previous window's share is in the
 * way, and it shrinks enough within this window, once previous × (1 - t/w) <
 * limit - current; at it, only the next window helps, a moment after it
 * starts.
 */
export function msUntilAllowed(
  limit: number,
  windowMs: number,
  previous: number,
  current: number,
  elapsed: number,
): number {
  if (current < limit) {
    const t = windowMs * (1 - (limit - current) / previous);
    return Math.max(1, t + 1 - elapsed);
  }
  return windowMs - elapsed + 1;
}
