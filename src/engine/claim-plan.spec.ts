import { expect } from 'expect';
import { describe, it } from 'node:test';
import { bucketCapacity, maxAttemptsOf, planClaim } from './claim-plan';

const base = { wanted: 500, runningItems: 0, tokens: null, elapsedSeconds: null };

describe('planClaim', () => {
  it('claims what the worker has room for when the job has no limits', () => {
    expect(planClaim({ ...base, options: {} })).toEqual({ count: 500, tokens: null, waitMs: 0 });
  });

  it('keeps the job under its concurrency across all workers', () => {
    expect(planClaim({ ...base, options: { concurrency: 10 }, runningItems: 4 }).count).toBe(6);
    expect(planClaim({ ...base, options: { concurrency: 10 }, runningItems: 10 }).count).toBe(0);
    expect(planClaim({ ...base, options: { concurrency: 10 }, runningItems: 12 }).count).toBe(0);
  });

  it('starts a rate-limited job with a full bucket of a fifth of a second', () => {
    const plan = planClaim({ ...base, options: { rate_limit_per_second: 100 } });
    expect(plan).toEqual({ count: 20, tokens: 20, waitMs: 0 });
    expect(bucketCapacity(0.5)).toBe(1);
  });

  it('refills the bucket with the time that passed, up to its capacity', () => {
    const options = { rate_limit_per_second: 10 };
    expect(planClaim({ ...base, options, tokens: 0, elapsedSeconds: 0.1 })).toMatchObject({
      count: 1,
      waitMs: 0,
    });
    expect(planClaim({ ...base, options, tokens: 0.5, elapsedSeconds: 100 }).tokens).toBe(2);
  });

  it('says how long to wait for the next token when the bucket is empty', () => {
    const plan = planClaim({
      ...base,
      options: { rate_limit_per_second: 2 },
      tokens: 0,
      elapsedSeconds: 0.1,
    });
    expect(plan.count).toBe(0);
    expect(plan.waitMs).toBe(400);
  });

  it('applies both limits together', () => {
    const plan = planClaim({
      ...base,
      options: { concurrency: 3, rate_limit_per_second: 100 },
      runningItems: 1,
    });
    expect(plan.count).toBe(2);
  });
});

describe('maxAttemptsOf', () => {
  it('defaults to 3', () => {
    expect(maxAttemptsOf({})).toBe(3);
    expect(maxAttemptsOf({ max_attempts: 5 })).toBe(5);
  });
});
