// dashboard: what the server pays for the jobs list's live progress, the two ways the page
// could get it, with the same N running jobs of one owner whose counters move every 100 ms:
//   sse   one GET /jobs/{id}/events stream per running job (N connections held open);
//   poll  one GET /jobs?status=running a second, and GET /job-counts every 5 s (what the page does).
// Measured on the API process: HTTP requests/s, database statements/s (the database's committed
// transactions, less the updater's own; every API read is one autocommit statement), CPU ms/s
// of the API process, and bytes/s sent to the page. An idle phase (no page) is the baseline.
import { Client } from 'pg';
import { performance } from 'node:perf_hooks';
import { cpuMsOf, JOBS_PATH, round, sleep, startApi, tokenFor } from './support.mjs';

const OWNER = 'bench-dashboard';
const UPDATE_EVERY_MS = 100;
const POLL_MS = 1000;
const COUNTS_MS = 5000;
/**
 * An idle backend reports its transactions to pg_stat_database up to 10 s late
 * (PGSTAT_IDLE_INTERVAL), so each reading waits that long first; --quick waits
 * less, and its statement counts are rough.
 */
const STATS_SETTLE_MS = { full: 11_000, quick: 1_500 };

export async function dashboardBench({ url, jobs, seconds, quick, log }) {
  const settleMs = quick ? STATS_SETTLE_MS.quick : STATS_SETTLE_MS.full;
  const updater = new Client({ connectionString: url, application_name: 'bench-dashboard-updater' });
  await updater.connect();
  let updaterStatements = 0;
  const q = async (text, params) => {
    updaterStatements++;
    return updater.query(text, params);
  };
  const { rows } = await q(
    `INSERT INTO bulk_jobs (id, owner, action, status, total_items, started_at)
     SELECT gen_random_uuid(), $1, 'noop', 'running', 1000000, now() FROM generate_series(1, $2::int)
     RETURNING id`,
    [OWNER, jobs],
  );
  const ids = rows.map((r) => r.id);
  const api = await startApi(url, { env: { RATE_LIMIT_PER_MINUTE: '0' } });
  const headers = { authorization: `Bearer ${tokenFor(OWNER, 'bulk-jobs:read')}` };
  let stopUpdates = false;
  const updates = (async () => {
    while (!stopUpdates) {
      await q(
        `UPDATE bulk_jobs SET succeeded_items = succeeded_items + 1, updated_at = now() WHERE id = ANY($1::uuid[])`,
        [ids],
      );
      await sleep(UPDATE_EVERY_MS);
    }
  })();

  const snapshot = async () => {
    await sleep(settleMs);
    const r = await q(
      `SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()`,
    );
    return {
      at: performance.now(),
      xacts: Number(r.rows[0].n),
      updater: updaterStatements,
      cpu: cpuMsOf(api.pid),
    };
  };

  /** Runs `load` for the phase's seconds and reports what the server paid per second. */
  const phase = async (name, load) => {
    log(`dashboard: ${name}, ${jobs} running jobs, ${seconds} s`);
    const counters = { requests: 0, bytes: 0, events: 0 };
    const stop = await load(counters);
    await sleep(1000);
    const start = { ...(await snapshot()), ...counters };
    await sleep(seconds * 1000);
    const end = { ...(await snapshot()), ...counters };
    await stop();
    const elapsed = (end.at - start.at) / 1000;
    // The updater's statements (and the two snapshots' own) are not the API's.
    const apiStatements = end.xacts - start.xacts - (end.updater - start.updater);
    return {
      requests_per_s: round((end.requests - start.requests) / elapsed, 2),
      statements_per_s: round(apiStatements / elapsed, 2),
      api_cpu_ms_per_s: round((end.cpu - start.cpu) / elapsed, 1),
      kbytes_per_s: round((end.bytes - start.bytes) / 1024 / elapsed, 1),
      events_per_s: round((end.events - start.events) / elapsed, 2),
      open_connections: name === 'sse' ? jobs : 0,
    };
  };

  try {
    const idle = await phase('idle', async () => async () => undefined);

    const sse = await phase('sse', async (counters) => {
      const abort = new globalThis.AbortController();
      const readers = ids.map(async (id) => {
        counters.requests++;
        const res = await globalThis.fetch(`${api.base}${JOBS_PATH}/${id}/events`, {
          headers,
          signal: abort.signal,
        });
        if (res.status !== 200) throw new Error(`events of ${id} answered ${res.status}`);
        try {
          for await (const chunk of res.body) {
            counters.bytes += chunk.length;
            counters.events += (String(Buffer.from(chunk)).match(/^event: progress$/gm) ?? []).length;
          }
        } catch (err) {
          if (!abort.signal.aborted) throw err;
        }
      });
      return async () => {
        abort.abort();
        await Promise.allSettled(readers);
      };
    });

    const poll = await phase('poll', async (counters) => {
      let stopped = false;
      const get = async (path) => {
        counters.requests++;
        const res = await globalThis.fetch(`${api.base}${path}`, { headers });
        const body = Buffer.from(await res.arrayBuffer());
        if (res.status !== 200) throw new Error(`${path} answered ${res.status}: ${body}`);
        counters.bytes += body.length;
        return JSON.parse(String(body));
      };
      const loop = (async () => {
        let sinceCounts = Infinity;
        while (!stopped) {
          const t0 = performance.now();
          const page = await get(`${JOBS_PATH}?status=running&limit=500`);
          counters.events += page.items.length;
          if (sinceCounts >= COUNTS_MS) {
            await get('/api/actions/bulk/job-counts');
            sinceCounts = 0;
          }
          await sleep(Math.max(0, POLL_MS - (performance.now() - t0)));
          sinceCounts += POLL_MS;
        }
      })();
      return async () => {
        stopped = true;
        await loop;
      };
    });

    return { running_jobs: jobs, seconds, idle, sse, poll };
  } finally {
    stopUpdates = true;
    await updates;
    await api.stop();
    await updater.end();
  }
}
