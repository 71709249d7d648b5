import type { JobOptions } from '../jobs/job-types';

export const DEFAULT_MAX_ATTEMPTS = 3;

/**
 * A rate-limited job's token bucket holds a fifth of a second's worth of
 * starts (at least one), so that starts are spread over each second instead
 * of arriving in one burst per second.
 */
export function bucketCapacity(ratePerSecond: number): number {
  return Math.max(1, ratePerSecond / 5);
}

export interface ClaimPlanInput {
  /** Items the worker has room for. */
  wanted: number;
  options: JobOptions;
  /** The job's items claimed and not yet recorded, by every worker. */
  runningItems: number;
  /** The bucket as last stored (null: never used). */
  tokens: number | null;
  /** Seconds since the bucket was last stored (null: never). */
  elapsedSeconds: number | null;
}

export interface ClaimPlan {
  /** Items to claim now. */
  count: number;
  /** The bucket after refilling, before this claim takes from it; null without a rate limit. */
  tokens: number | null;
  /** When count is 0 because of the rate limit: how long until the next token. */
  waitMs: number;
}

/** How many items of a job a worker may claim now, under the job's concurrency and rate limits. */
export function planClaim(input: ClaimPlanInput): ClaimPlan {
  let count = Math.max(0, input.wanted);
  const { concurrency, rate_limit_per_second: rate } = input.options;
  if (concurrency !== undefined && concurrency !== null) {
    count = Math.min(count, Math.max(0, concurrency - input.runningItems));
  }
  if (rate === undefined || rate === null || !(rate > 0)) return { count, tokens: null, waitMs: 0 };

  const capacity = bucketCapacity(rate);
  const tokens =
    input.tokens === null || input.elapsedSeconds === null
      ? capacity
      : Math.min(capacity, input.tokens + Math.max(0, input.elapsedSeconds) * rate);
  // The epsilon absorbs float error in tokens that were refilled to a whole number.
  const whole = Math.floor(tokens + 1e-9);
  count = Math.min(count, whole);
  const waitMs = whole < 1 ? Math.max(1, Math.ceil(((1 - tokens) / rate) * 1000)) : 0;
  return { count, tokens, waitMs };
}

export function maxAttemptsOf(options: JobOptions): number {
  const n = options.max_attempts;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 ? n : DEFAULT_MAX_ATTEMPTS;
}
