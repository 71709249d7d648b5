// list: paging through every job of an owner with N jobs (GET /jobs, default page
// size, following next_cursor) on the API process; latency per page.
import { performance } from 'node:perf_hooks';
import { JOBS_PATH, percentile, round, startApi, tokenFor, withClient } from './support.mjs';

const OWNER = 'bench-list';

export async function listBench({ url, jobs, profile, log }) {
  log(`list: inserting ${jobs} jobs of one owner (and as many of others)`);
  await withClient(url, async (c) => {
    // The owner's jobs, spread over time with some at the same millisecond (the id breaks ties),
    // a few deleted, interleaved with another owner's jobs.
    for (const owner of [OWNER, 'bench-list-other']) {
      for (let start = 0; start < jobs; start += 500_000) {
        await c.query(
          `INSERT INTO bulk_jobs (id, owner, action, status, total_items, succeeded_items, created_at, started_at,
                                  finished_at, claimable_at, deleted_at, purge_at)
           SELECT gen_random_uuid(), $1, 'noop', 'completed', 10, 10,
                  timestamp '2026-01-01' + (g / 2) * interval '7 ms', now(), now(), NULL,
                  CASE WHEN g % 100 = 0 THEN now() END, CASE WHEN g % 100 = 0 THEN now() + interval '30 days' END
           FROM generate_series($2::int, $3::int - 1) g`,
          [owner, start, Math.min(jobs, start + 500_000)],
        );
      }
    }
    await c.query('VACUUM ANALYZE bulk_jobs');
  });
  // One client paging as fast as it can: the rate limiter stays on, with a limit it cannot reach.
  const api = await startApi(url, { profile, env: { RATE_LIMIT_PER_MINUTE: '10000000' } });
  const headers = { authorization: `Bearer ${tokenFor(OWNER)}` };
  const times = [];
  let seen = 0;
  try {
    log('list: paging');
    let cursor = null;
    do {
      const t0 = performance.now();
      const res = await globalThis.fetch(`${api.base}${JOBS_PATH}${cursor ? `?cursor=${cursor}` : ''}`, {
        headers,
      });
      const body = await res.json();
      times.push(performance.now() - t0);
      if (res.status !== 200) throw new Error(`GET /jobs answered ${res.status}: ${JSON.stringify(body)}`);
      seen += body.items.length;
      cursor = body.next_cursor;
    } while (cursor);
  } finally {
    await api.stop();
  }
  const expected = jobs - Math.floor((jobs - 1) / 100) - 1;
  if (seen !== expected) throw new Error(`paging saw ${seen} jobs, expected ${expected}`);
  const total = times.reduce((a, b) => a + b, 0);
  times.sort((a, b) => a - b);
  return {
    jobs,
    pages: times.length,
    jobs_seen: seen,
    p50_ms: round(percentile(times, 50), 2),
    p99_ms: round(percentile(times, 99), 2),
    max_ms: round(times[times.length - 1], 2),
    pages_per_s: round(times.length / (total / 1000)),
  };
}
