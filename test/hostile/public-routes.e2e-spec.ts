import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { createTestApp, type TestApp } from '../support/app';
import { PoliteOwner } from '../support/polite-client';
import { sleep } from '../support/wait';

/** Each request of a flood: 200 paths that need no token, many at once, from one address. */
async function flood(t: TestApp, paths: string[], concurrency: number): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const res = await t.http().get(paths[next++]);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return statuses;
}

describe('hostile client: a flood of the routes that need no token', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  it('answers one address past RATE_LIMIT_PUBLIC_PER_MINUTE with 429s, and a polite client is served meanwhile', async (tc) => {
    const polite = await PoliteOwner.start(t);
    await polite.measureBaseline();
    // Readiness reads the database on every request; the document is the largest answer there is.
    const paths = Array.from(
      { length: 1500 },
      (_, i) => ['/health/ready', '/docs-json', '/metrics', '/no-such-page'][i % 4],
    );
    // The limiter's windows are whole minutes of the clock, and a sliding window that crosses one
    // admits what its previous window's weight loses meanwhile: start the flood with 20 s of this
    // minute left at least, so that the whole flood counts against one budget of 600.
    const leftOfMinute = 60_000 - (Date.now() % 60_000);
    if (leftOfMinute < 20_000) await sleep(leftOfMinute + 100);
    const served = await polite.duringExpectServed(() => flood(t, paths, 16));
    const statuses = served.result;
    const summary = Object.fromEntries([...statuses].sort(([a], [b]) => a - b));
    tc.diagnostic(
      `flood: ${JSON.stringify(summary)}; polite: ${served.rounds} rounds, median ${served.medianMs.toFixed(1)} ms ` +
        `(baseline ${served.baselineMs.toFixed(1)} ms)`,
    );
    // 600 a minute from one address, the boot's own fetch of the document included; the rest refused.
    expect({ summary, refused: (statuses.get(429) ?? 0) >= 1500 - 600 }).toEqual({ summary, refused: true });
    expect((statuses.get(200) ?? 0) + (statuses.get(404) ?? 0)).toBeLessThanOrEqual(600);
  });
});
