export interface BackoffPolicy {
  /** Delay after the first failed attempt, before jitter. */
  baseMs: number;
  /** Upper bound of any delay. */
  maxMs: number;
}

/**
 * The delay before the next attempt after attempt number `attempt` (from 1)
 * failed: exponential (base, 2·base, 4·base, …, capped at maxMs) with "equal
 * jitter": half of it fixed, half random. The fixed half keeps a minimum
 * spacing; the random half keeps items that failed together from coming back
 * together. A Retry-After from the other side is honoured as a lower bound,
 * itself capped at maxMs.
 */
export function retryDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(attempt, 1) - 1, 40);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  const jittered = Math.round(ceiling / 2 + (random() * ceiling) / 2);
  if (retryAfterMs === undefined || !Number.isFinite(retryAfterMs) || retryAfterMs <= 0) return jittered;
  return Math.max(jittered, Math.min(Math.ceil(retryAfterMs), policy.maxMs));
}
