import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { RateLimitSweeper } from '../../src/limits/rate-limit-sweeper';
import { bootTestApp, type TestApp } from '../support/app';
import { JOBS } from '../support/api';
import { ManualClock, useClock } from '../support/clock';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const LIMIT = 60;
const CHUNK = 5;

/** The shared count of a principal's windows, as the database holds it. */
async function windowsOf(t: TestApp, sub: string): Promise<{ used: number }[]> {
  return t.db.query<{ used: number }[]>(
    `SELECT used FROM rate_limit_windows WHERE key = $1 ORDER BY window_start`,
    [`principal:${sub}`],
  );
}

/**
 * Two API processes (two AppModule instances with pools of their own) on one
 * database, as two replicas behind a load balancer: the per-principal limit
 * is one limit for both.
 */
describe('rate limit per principal, shared by the API processes', () => {
  // The limit's minutes are this clock's: it stands 30 s into a minute, so no window rolls mid-test.
  const clock = new ManualClock();
  let a: TestApp;
  let b: TestApp;
  before(async () => {
    const env = { RATE_LIMIT_PER_MINUTE: String(LIMIT), RATE_LIMIT_CHUNK: String(CHUNK) };
    [a, b] = await Promise.all([
      bootTestApp({ env, overrides: [useClock(clock)] }),
      bootTestApp({ env, overrides: [useClock(clock)] }),
    ]);
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
  });

  it('admits one limit in total to a caller whose requests alternate between the two, not one each', async () => {
    const alice = newOwner('alice');
    const auth = bearer(tokenFor(alice));
    const admitted = { a: 0, b: 0 };
    for (let i = 0; i < 2 * LIMIT; i++) {
      const [name, app] = i % 2 === 0 ? (['a', a] as const) : (['b', b] as const);
      const res = await app.http().get(JOBS).set(auth);
      if (res.status === 200) admitted[name] += 1;
      else expectProblem(res, 429, { type: 'about:blank', title: 'Too Many Requests' });
    }
    const total = admitted.a + admitted.b;
    // Each process may hold under a chunk reserved and unspent when the other takes the rest.
    expect({ total, atMost: total <= LIMIT, atLeast: total >= LIMIT - 2 * (CHUNK - 1) }).toEqual({
      total,
      atMost: true,
      atLeast: true,
    });
    expect(admitted.a).toBeGreaterThan(0);
    expect(admitted.b).toBeGreaterThan(0);
    // The database counted every reservation once, and never past the limit.
    const [row] = await windowsOf(a, alice);
    expect(row.used).toBeGreaterThanOrEqual(total);
    expect(row.used).toBeLessThanOrEqual(LIMIT);

    // Both refuse now, with the headers and Retry-After of one window: it ends in 30 s.
    for (const app of [a, b]) {
      const res = await app.http().get(JOBS).set(auth);
      expectProblem(res, 429, { detail: `More than ${LIMIT} requests in a minute. Retry after 31 seconds.` });
      expect(res.headers['retry-after']).toBe('31');
      expect(res.headers['x-ratelimit-limit']).toBe(String(LIMIT));
      expect(res.headers['x-ratelimit-remaining']).toBe('0');
      expect(res.headers['x-ratelimit-reset']).toBe('30');
    }
  });

  it('leaves another caller its whole limit meanwhile', async () => {
    const carol = newOwner('carol');
    const busy = bearer(tokenFor(newOwner('dave')));
    const auth = bearer(tokenFor(carol));
    // dave spends his limit first.
    for (let i = 0; i < LIMIT + 10; i++) await (i % 2 ? a : b).http().get(JOBS).set(busy);
    expectProblem(await a.http().get(JOBS).set(busy), 429);
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT - 2 * CHUNK; i++)
      statuses.push((await (i % 2 ? a : b).http().get(JOBS).set(auth)).status);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(statuses).toHaveLength(LIMIT - 2 * CHUNK);
  });

  it('holds the limit when both are hit at once: the database settles the race', async () => {
    const erin = newOwner('erin');
    const auth = bearer(tokenFor(erin));
    const responses = await Promise.all(
      Array.from({ length: 3 * LIMIT }, (_, i) => (i % 2 ? a : b).http().get(JOBS).set(auth)),
    );
    const statuses = responses.map((r) => r.status);
    const ok = statuses.filter((s) => s === 200).length;
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    expect({ ok, atMost: ok <= LIMIT, atLeast: ok >= LIMIT - 2 * (CHUNK - 1) }).toEqual({
      ok,
      atMost: true,
      atLeast: true,
    });
    const [row] = await windowsOf(a, erin);
    expect(row.used).toBeLessThanOrEqual(LIMIT);
  });

  it('reserves a chunk at a time, the next one ahead of need, and still counts exactly for one process', async () => {
    const frank = newOwner('frank');
    const auth = bearer(tokenFor(frank));
    for (let i = 0; i < 4 * CHUNK; i++) {
      const res = await a.http().get(JOBS).set(auth);
      expect(res.status).toBe(200);
      expect(res.headers['x-ratelimit-remaining']).toBe(String(LIMIT - i - 1));
    }
    // Whole chunks only, and at most one ahead of what was spent (the next may still be on its way).
    const used = (await windowsOf(a, frank))[0].used;
    expect({ used, whole: used % CHUNK === 0 }).toEqual({ used, whole: true });
    expect(used).toBeGreaterThanOrEqual(4 * CHUNK);
    expect(used).toBeLessThanOrEqual(5 * CHUNK);
  });

  // Moves the clock on: the tests above stand in one window.
  it('moves on to the next window, where the last one still weighs as the sliding window has it', async () => {
    const grace = newOwner('grace');
    const auth = bearer(tokenFor(grace));
    // Past the limit: the window is full, and no reservation ahead can change its count any more.
    for (let i = 0; i < LIMIT + 10; i++) await (i % 2 ? a : b).http().get(JOBS).set(auth);
    const [full] = await windowsOf(a, grace);
    expect(full.used).toBe(LIMIT);
    // 45 s into the next window the previous one weighs a quarter of what it counted.
    clock.advance(60_000 + 15_000);
    const res = await b.http().get(JOBS).set(auth);
    expect(res.status).toBe(200);
    const previousShare = Math.floor(full.used * 0.25);
    expect(res.headers['x-ratelimit-remaining']).toBe(String(LIMIT - previousShare - 1));
    expect(await windowsOf(a, grace)).toEqual([{ used: full.used }, { used: CHUNK }]);
  });

  it('deletes past windows in its sweep, and none that a process may still count in', async () => {
    const key = `principal:${newOwner('sweep')}`;
    await a.db.query(
      `INSERT INTO rate_limit_windows (key, window_start, used, granted)
       SELECT $1, t, 1, 1 FROM unnest(ARRAY[now() - interval '10 minutes', now() - interval '1 minute',
                                             now() + interval '1 day']) t`,
      [key],
    );
    await a.app.get(RateLimitSweeper).sweep();
    const left = await a.db.query<{ ago: string }[]>(
      `SELECT CASE WHEN window_start > now() THEN 'ahead' ELSE 'recent' END AS ago
       FROM rate_limit_windows WHERE key = $1 ORDER BY window_start`,
      [key],
    );
    // The window of ten minutes ago went; last minute's may still weigh, and the one of a process whose
    // clock runs ahead (this one's: it stands in 2030) is kept by the database's own clock.
    expect(left.map((r) => r.ago)).toEqual(['recent', 'ahead']);
  });
});
