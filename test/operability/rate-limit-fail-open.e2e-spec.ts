import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { createAppLogger } from '../../src/logging/app-logger';
import { SHARED_RETRY_MS } from '../../src/limits/shared-rate-limiter';
import { bootTestApp, type TestApp } from '../support/app';
import { captureLogs } from '../support/boot';
import { ManualClock, useClock } from '../support/clock';
import { createEngineDatabase, type EngineDatabase } from '../support/engine';
import { expectProblem } from '../support/problem-matcher';
import { testEnv } from '../support/test-env';
import { bearer, newOwner, tokenFor } from '../support/tokens';
import { sleep } from '../support/wait';

const LIMIT = 5;
/** A route that needs no database: what the shared count must not take down with it. */
const ACTIONS = '/api/actions/bulk/actions';

/**
 * The shared per-principal count when the database cannot count it: the
 * process fails open to its own window (still a limit, per process), says so
 * once, and counts in the database again once it answers. On a database of
 * its own, whose counting table the test takes away and gives back.
 */
describe('rate limit per principal, when the database cannot count it', () => {
  const clock = new ManualClock();
  const logs = captureLogs();
  let db: EngineDatabase;
  let t: TestApp;

  before(async () => {
    db = await createEngineDatabase();
    const env = {
      LOG_LEVEL: 'log',
      LOG_FORMAT: 'json',
      RATE_LIMIT_PER_MINUTE: String(LIMIT),
      RATE_LIMIT_CHUNK: '1',
    };
    t = await bootTestApp({
      databaseUrl: db.url,
      env,
      logger: createAppLogger(testEnv(env), logs),
      overrides: [useClock(clock)],
    });
  });
  after(async () => {
    await t?.close();
    await db?.drop();
  });

  const counted = async (sub: string) =>
    (
      await t.db.query<{ used: number }[]>(`SELECT used FROM rate_limit_windows WHERE key = $1`, [
        `principal:${sub}`,
      ])
    ).map((r) => r.used);
  /** GET of the actions, as `sub`. */
  const getActions = (sub: string) =>
    t
      .http()
      .get(ACTIONS)
      .set(bearer(tokenFor(sub)));
  const rateLimitLines = () => logs.lines.filter((l) => l.context === 'RateLimit').map((l) => String(l.msg));

  it('admits on its own window, still up to the limit, while the count fails; then counts in the database again', async () => {
    const before = newOwner('before');
    expect((await getActions(before)).status).toBe(200);
    expect(await counted(before)).toEqual([1]);

    await t.db.query('ALTER TABLE rate_limit_windows RENAME TO rate_limit_windows_away');
    const during = newOwner('during');
    try {
      const statuses: number[] = [];
      for (let i = 0; i < LIMIT; i++) {
        const res = await getActions(during);
        statuses.push(res.status);
        expect(res.headers['x-ratelimit-limit']).toBe(String(LIMIT));
        expect(res.headers['x-ratelimit-remaining']).toBe(String(LIMIT - 1 - i));
      }
      expect(statuses).toEqual(new Array(LIMIT).fill(200));
      // The process's own window still holds the caller to the limit.
      const refused = await getActions(during);
      expectProblem(refused, 429, { type: 'about:blank', title: 'Too Many Requests' });
      expect(rateLimitLines()).toEqual([
        expect.stringContaining('the shared rate limit could not be counted'),
      ]);
      // Said once, however many requests it decided alone, and without the statement.
      expect(rateLimitLines().join('\n')).not.toMatch(/INSERT|SELECT/);
    } finally {
      await t.db.query('ALTER TABLE rate_limit_windows_away RENAME TO rate_limit_windows');
    }

    // Until SHARED_RETRY_MS has passed the process keeps deciding alone, then asks the database again.
    await sleep(SHARED_RETRY_MS + 200);
    const afterwards = newOwner('after');
    expect((await getActions(afterwards)).status).toBe(200);
    expect(await counted(afterwards)).toEqual([1]);
    expect(rateLimitLines()).toEqual([
      expect.stringContaining('the shared rate limit could not be counted'),
      'the shared rate limit is counted in the database again',
    ]);
  });
});
