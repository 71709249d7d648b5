import { expect } from 'expect';
import { describe, it } from 'node:test';
import { SlidingWindowRateLimiter } from './rate-limiter';
import type { RefillRequest, RefillResult } from './rate-limit.repository';
import { SHARED_RETRY_MS, SharedRateLimiter, type SharedCounts } from './shared-rate-limiter';

const MINUTE = 60_000;

/**
 * The arithmetic of RateLimitRepository's reservation statement, on a Map:
 * the allowance's rules are checked here, the statement itself on PostgreSQL
 * by test/operability/shared-rate-limit.e2e-spec.ts.
 */
class CountsModel implements SharedCounts {
  readonly windows = new Map<string, number>();
  calls = 0;
  /** Set: every reservation waits for it. */
  gate?: Promise<void>;
  failing = false;

  async refill(req: RefillRequest): Promise<RefillResult> {
    this.calls += 1;
    await this.gate;
    if (this.failing) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
    const previous = this.windows.get(`${req.key}@${req.previousStart}`) ?? 0;
    const room = req.limit - Math.floor(previous * req.weight);
    const id = `${req.key}@${req.windowStart}`;
    const used = this.windows.get(id) ?? 0;
    if (used >= room) return { previous, used: Math.max(used, room), granted: 0 };
    const granted = Math.min(req.chunk, room - used);
    this.windows.set(id, used + granted);
    return { previous, used: used + granted, granted };
  }
}

/** A process's limiter on a clock the test moves (starting at a window's start), and its log. */
function limiter(limit: number, chunk: number, counts: SharedCounts, clock = { now: 10 * MINUTE, mono: 0 }) {
  const log: string[] = [];
  const logger = { warn: (m: string) => log.push(`warn ${m}`), log: (m: string) => log.push(`log ${m}`) };
  const l = new SharedRateLimiter(
    limit,
    chunk,
    MINUTE,
    counts,
    () => clock.now,
    logger,
    () => clock.mono,
  );
  return { l, clock, log };
}

/** Seeded, so that a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('SharedRateLimiter', () => {
  it('with chunks of one, decides exactly as the in-process window: allowed, remaining, reset, retry', async () => {
    const next = random(21);
    const counts = new CountsModel();
    const { l, clock } = limiter(7, 1, counts);
    const local = new SlidingWindowRateLimiter(7, MINUTE, () => clock.now);
    for (let i = 0; i < 2_000; i++) {
      clock.now += Math.floor(next() * 4_000);
      const key = next() < 0.8 ? 'a' : 'b';
      expect({ i, ...(await l.hit(key)) }).toEqual({ i, ...local.hit(key) });
    }
  });

  it('asks the database once per chunk, ahead of need: only the first request waits for it', async () => {
    const counts = new CountsModel();
    const { l } = limiter(1_000, 10, counts);
    const remaining: number[] = [];
    const waited: number[] = [];
    for (let i = 0; i < 100; i++) {
      const d = l.hit('a');
      if (d instanceof Promise) waited.push(i);
      remaining.push((await d).remaining);
      // A steady caller: the next request comes after the event loop has turned.
      await new Promise(setImmediate);
    }
    expect(waited).toEqual([0]);
    // The first, then one each time two of the allowance are left: after 8, 18, …, 98 requests.
    expect(counts.calls).toBe(11);
    // Alone, the process knows the exact count: the headers are those of the in-process window.
    expect(remaining).toEqual(Array.from({ length: 100 }, (_, i) => 999 - i));
  });

  it('with chunks under 4, reserves only when a request needs it', async () => {
    const counts = new CountsModel();
    const { l } = limiter(1_000, 3, counts);
    const waited: number[] = [];
    for (let i = 0; i < 9; i++) {
      const d = l.hit('a');
      if (d instanceof Promise) waited.push(i);
      await d;
      await new Promise(setImmediate);
    }
    expect(waited).toEqual([0, 3, 6]);
    expect(counts.windows.get(`a@${10 * MINUTE}`)).toBe(9);
  });

  it('makes the requests that find the allowance spent share one reservation', async () => {
    const counts = new CountsModel();
    let open!: () => void;
    counts.gate = new Promise((r) => (open = r));
    const { l } = limiter(100, 5, counts);
    const waiting = Array.from({ length: 8 }, () => Promise.resolve(l.hit('a')));
    expect(counts.calls).toBe(1);
    open();
    const decisions = await Promise.all(waiting);
    // Five spent the first reservation (the fourth started the next one, ahead); the three left over
    // waited for that one together.
    expect(counts.calls).toBe(2);
    expect(decisions.every((d) => d.allowed)).toBe(true);
    expect(decisions.map((d) => d.remaining).sort((a, b) => b - a)).toEqual([99, 98, 97, 96, 95, 94, 93, 92]);
  });

  it('never lets processes that share the counts admit more than the limit together, and at most N × 1.25 chunks fewer', async () => {
    for (const [processes, chunk] of [
      [2, 6],
      [3, 10],
      [5, 1],
    ]) {
      const next = random(processes * 100 + chunk);
      const counts = new CountsModel();
      const clock = { now: 10 * MINUTE, mono: 0 };
      const ls = Array.from({ length: processes }, () => limiter(600, chunk, counts, clock).l);
      let admitted = 0;
      for (let i = 0; i < 2_000; i++) {
        if ((await ls[Math.floor(next() * processes)].hit('a')).allowed) admitted += 1;
      }
      // One window, no time passing: the limit, less what the processes hold unspent.
      expect({ processes, chunk, over: admitted > 600 }).toEqual({ processes, chunk, over: false });
      expect(admitted).toBeGreaterThan(600 - processes * (chunk + Math.floor(chunk / 4)));
    }
  });

  it('keeps admitting at most the sliding window across windows, whatever the processes hold unspent', async () => {
    const next = random(7);
    const counts = new CountsModel();
    const clock = { now: 10 * MINUTE, mono: 0 };
    const ls = [limiter(50, 5, counts, clock).l, limiter(50, 5, counts, clock).l];
    /** Admission times, to recount the sliding window afterwards. */
    const times: number[] = [];
    for (let i = 0; i < 5_000; i++) {
      clock.now += Math.floor(next() * 200);
      if ((await ls[i % 2].hit('a')).allowed) times.push(clock.now);
      const windowStart = clock.now - (clock.now % MINUTE);
      const inWindow = times.filter((t) => t >= windowStart).length;
      const inPrevious = times.filter((t) => t >= windowStart - MINUTE && t < windowStart).length;
      const weight = 1 - (clock.now - windowStart) / MINUTE;
      expect(Math.floor(inPrevious * weight) + inWindow).toBeLessThanOrEqual(50);
    }
    expect(times.length).toBeGreaterThan(0);
  });

  it('remembers a refusal until its Retry-After, without asking again', async () => {
    const counts = new CountsModel();
    const { l, clock } = limiter(3, 1, counts);
    clock.now += 30_000;
    for (let i = 0; i < 3; i++) expect((await l.hit('a')).allowed).toBe(true);
    const refused = await l.hit('a');
    expect(refused).toMatchObject({ allowed: false, remaining: 0, retryAfterSeconds: 31, resetSeconds: 30 });
    const calls = counts.calls;
    for (let i = 0; i < 50; i++) {
      const d = l.hit('a');
      expect(d instanceof Promise).toBe(false);
      expect(await d).toMatchObject({ allowed: false, retryAfterSeconds: 31 });
    }
    clock.now += 20_000;
    expect(await l.hit('a')).toMatchObject({ allowed: false, retryAfterSeconds: 11 });
    expect(counts.calls).toBe(calls);
    // At Retry-After: the next window, where the three weigh floor(3 × 59/60) = 2, so one fits.
    clock.now += 11_000;
    expect(await l.hit('a')).toMatchObject({ allowed: true, remaining: 0 });
    expect(await l.hit('a')).toMatchObject({ allowed: false });
  });

  it('counts on its own window while the database fails, says so once, and asks again after a while', async () => {
    const counts = new CountsModel();
    const { l, clock, log } = limiter(3, 1, counts);
    counts.failing = true;
    const statuses: boolean[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await l.hit('a')).allowed);
    // Fails open: the in-process window still holds each process to the limit.
    expect(statuses).toEqual([true, true, true, false, false]);
    expect(counts.calls).toBe(1);
    expect(log).toEqual([
      expect.stringMatching(/^warn the shared rate limit could not be counted \(connect ECONNREFUSED/),
    ]);
    clock.mono += SHARED_RETRY_MS;
    await l.hit('b');
    expect(counts.calls).toBe(2);
    expect(log).toHaveLength(1);
    counts.failing = false;
    clock.mono += SHARED_RETRY_MS;
    expect(await l.hit('b')).toMatchObject({ allowed: true });
    expect(log).toEqual([expect.any(String), 'log the shared rate limit is counted in the database again']);
    // Back on the shared counts: the database has seen none of 'a', whose window starts again there.
    expect(await l.hit('a')).toMatchObject({ allowed: true, remaining: 2 });
  });

  it('refuses a chunk larger than the limit', () => {
    expect(() => new SharedRateLimiter(5, 6, MINUTE, new CountsModel())).toThrow(/chunk/);
  });
});
