import { Logger } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { loggableMessage } from '../database/database-errors';
import { msUntilAllowed, SlidingWindowRateLimiter, type RateLimitDecision } from './rate-limiter';
import type { RefillRequest, RefillResult } from './rate-limit.repository';

/** Where the windows are counted for every process together (RateLimitRepository). */
export interface SharedCounts {
  refill(req: RefillRequest): Promise<RefillResult>;
}

/** After the shared count fails, how long this process counts alone before it asks again. */
export const SHARED_RETRY_MS = 5_000;

/** One key's window, as this process knows it. */
interface Allowance {
  windowStart: number;
  /** The previous window's requests, every process's, as the last reservation read them. */
  previous: number;
  /** This window's requests reserved by every process, as the last reservation read them. */
  used: number;
  /** Reserved by this process and not spent yet: admitted without asking the database. */
  left: number;
  /**
   * The last reservation found the window full: refused without asking again for as long as
   * `previous` and `used` (which only grow) say it is.
   */
  full: boolean;
  /** The reservation in flight: concurrent requests of the key wait for this one. */
  pending?: Promise<void>;
}

/**
 * The sliding window of SlidingWindowRateLimiter, counted in PostgreSQL for
 * every API process together, with no database round trip on most requests:
 * a process reserves up to `chunk` requests of a key's window in one
 * statement (RateLimitRepository.refill) and admits from that allowance
 * locally until it is spent. Requests of a key that find it spent wait for
 * one reservation together.
 *
 * A process reserves the next chunk ahead, in the background, once a quarter
 * of its allowance is left (for chunks of 4 and more), so that a steady
 * caller's requests do not wait for it either: in steady use only the first
 * request of a key in each window waits for a round trip.
 *
 * A reservation counts as used whether or not it is spent, so the processes
 * never admit more than the limit together; they may admit fewer, by what
 * they hold unspent at the end of a window (at most chunk + chunk/4 each) and
 * that window's weight in the next. One process alone admits exactly what
 * SlidingWindowRateLimiter admits, with the same headers.
 *
 * A refusal is remembered: until the counts it read say that a request fits
 * again (Retry-After, as the in-process window computes it), the key is
 * refused without a statement, so that a caller over its limit costs none
 * per request either.
 *
 * Fails open: when a reservation fails (the database is away), the process
 * logs it once and decides on its own in-process window for SHARED_RETRY_MS
 * before it asks again; a caller may then get up to the limit from each
 * process. The requests that need the database fail anyway, and refusing
 * every request would turn a database blip into an outage of the routes that
 * do not.
 */
export class SharedRateLimiter {
  private readonly allowances = new Map<string, Allowance>();
  private readonly fallback: SlidingWindowRateLimiter;
  /** Until then (performance.now()), decide on the fallback window; 0: count in the database. */
  private degradedUntil = 0;
  private degraded = false;
  private lastSweep = 0;
  /** An allowance down to this reserves the next chunk ahead (0: never ahead). */
  private readonly lowWater: number;

  constructor(
    readonly limit: number,
    readonly chunk: number,
    readonly windowMs: number,
    private readonly counts: SharedCounts,
    private readonly now: () => number = Date.now,
    private readonly logger: Pick<Logger, 'warn' | 'log'> = new Logger('RateLimit'),
    private readonly monotonic: () => number = () => performance.now(),
  ) {
    if (!(limit >= 1) || !(windowMs >= 1)) throw new Error('limit and windowMs must be at least 1');
    if (!(chunk >= 1) || chunk > limit) throw new Error('chunk must be between 1 and the limit');
    this.fallback = new SlidingWindowRateLimiter(limit, windowMs, now);
    this.lowWater = Math.floor(chunk / 4);
  }

  /** The decision, synchronously while the key's allowance lasts; after a reservation otherwise. */
  hit(key: string): RateLimitDecision | Promise<RateLimitDecision> {
    return this.decide(key, this.now()) ?? this.reserveThenHit(key);
  }

  /** Keys this process holds a window of (for tests). */
  get size(): number {
    return this.allowances.size;
  }

  /** The decision that needs no reservation, if there is one. */
  private decide(key: string, now: number): RateLimitDecision | undefined {
    if (this.degradedUntil !== 0) {
      if (this.monotonic() < this.degradedUntil) return this.fallback.hit(key);
      this.degradedUntil = 0;
    }
    const w = this.windowMs;
    const windowStart = now - (now % w);
    this.sweep(windowStart);
    let a = this.allowances.get(key);
    if (!a || a.windowStart !== windowStart) {
      a = { windowStart, previous: 0, used: 0, left: 0, full: false };
      this.allowances.set(key, a);
    }
    const elapsed = now - windowStart;
    const resetSeconds = Math.max(1, Math.ceil((w - elapsed) / 1000));
    const previousShare = Math.floor(a.previous * (1 - elapsed / w));
    if (a.left > 0) {
      a.left -= 1;
      // Reserve the next chunk while a quarter of this one is left, so that a steady caller's requests
      // do not wait for it. Not for chunks under 4: a chunk of one is reserved by its request.
      if (a.left === this.lowWater && this.lowWater > 0 && !a.pending) void this.startReserve(key, a, now);
      // Every other process's reservations count as spent: it cannot know better.
      const remaining = this.limit - previousShare - (a.used - a.left);
      return {
        allowed: true,
        limit: this.limit,
        remaining: Math.max(0, remaining),
        resetSeconds,
        retryAfterSeconds: 0,
      };
    }
    if (a.full && previousShare + a.used >= this.limit) {
      const retryMs = msUntilAllowed(this.limit, w, a.previous, a.used, elapsed);
      return {
        allowed: false,
        limit: this.limit,
        remaining: 0,
        resetSeconds,
        retryAfterSeconds: Math.max(1, Math.ceil(retryMs / 1000)),
      };
    }
    return undefined;
  }

  /**
   * Reserves (or waits for the key's reservation in flight), then decides.
   * Each turn either spends what a reservation took, is refused by it, or
   * finds the allowance spent by the requests that waited with it and
   * reserves again.
   */
  private async reserveThenHit(key: string): Promise<RateLimitDecision> {
    for (;;) {
      const a = this.allowances.get(key)!;
      await (a.pending ?? this.startReserve(key, a, this.now()));
      const decision = this.decide(key, this.now());
      if (decision) return decision;
    }
  }

  /** Starts the key's reservation; it never rejects (a failure is logged and counted locally). */
  private startReserve(key: string, a: Allowance, now: number): Promise<void> {
    const pending = this.reserve(key, a, now).finally(() => {
      a.pending = undefined;
    });
    a.pending = pending;
    return pending;
  }

  private async reserve(key: string, a: Allowance, now: number): Promise<void> {
    const w = this.windowMs;
    const elapsed = now - a.windowStart;
    let counts: RefillResult;
    try {
      counts = await this.counts.refill({
        key,
        windowStart: a.windowStart,
        previousStart: a.windowStart - w,
        limit: this.limit,
        chunk: this.chunk,
        weight: 1 - elapsed / w,
      });
    } catch (err) {
      this.degradedUntil = this.monotonic() + SHARED_RETRY_MS;
      if (!this.degraded) {
        this.degraded = true;
        this.logger.warn(
          `the shared rate limit could not be counted (${loggableMessage(err)}): this process counts ` +
            `on its own until the database answers (retried every ${SHARED_RETRY_MS / 1000} s)`,
        );
      }
      return;
    }
    if (this.degraded) {
      this.degraded = false;
      this.logger.log('the shared rate limit is counted in the database again');
    }
    a.previous = counts.previous;
    a.used = counts.used;
    a.left += counts.granted;
    a.full = counts.granted === 0;
  }

  /** Forgets keys not seen for two windows, at most once a window. */
  private sweep(windowStart: number): void {
    if (windowStart === this.lastSweep) return;
    this.lastSweep = windowStart;
    for (const [key, a] of this.allowances) {
      if (a.windowStart < windowStart - this.windowMs && !a.pending) this.allowances.delete(key);
    }
  }
}
