// bigjob: one job at the advertised size (BULK_JOBS_MAX_TARGETS, 10,000,000 targets), end to end:
//  - upload: a streaming NDJSON create through the API, targets/s beside a raw COPY of the same rows;
//  - cancel: the latency of POST /cancel on the job with every item pending, and the time until the
//    job is `cancelled` (a worker process runs meanwhile);
//  - filters: the first page of GET /items for each item status (and unfiltered) on a job of the same
//    size whose items are in every status, each status starting at a different depth of the job;
//  - purge: the deleted job's rows removed by the service's periodic purge, rows/s beside a raw batched
//    DELETE of the same number of rows.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { rawCopy, ndjsonBody, postNdjson } from './ingest.mjs';
import {
  JOBS_PATH,
  memoryOf,
  percentile,
  round,
  sleep,
  startApi,
  startWorkers,
  tokenFor,
  withClient,
} from './support.mjs';

const OWNER = 'bench-bigjob';
const PAGE = 500;
/** Targets of the small jobs whose cancel is the big cancel's baseline. */
const SMALL_JOB = 10_000;
/** Rows per statement of the raw DELETE baseline. */
const RAW_DELETE_BATCH = 10_000;

async function timed(fn) {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

/**
 * Items of a job of n items spread over every status, so that the first page
 * of each status lies at a different depth: succeeded from the start (every
 * 1,000th failed) to 60%, skipped to 90%, pending to the last 1,000, running
 * at the very end.
 */
async function insertMixedJob(c, n) {
  const id = randomUUID();
  const pendingFrom = Math.floor(n * 0.9);
  const runningFrom = Math.max(pendingFrom, n - 1000);
  const counts = { succeeded: 0, failed: 0, skipped: 0, pending: 0, running: 0 };
  const statusOf = (seq) => {
    if (seq >= runningFrom) return 'running';
    if (seq >= pendingFrom) return 'pending';
    if (seq >= Math.floor(n * 0.6)) return 'skipped';
    return seq % 1000 === 999 ? 'failed' : 'succeeded';
  };
  for (let seq = 0; seq < n; seq++) counts[statusOf(seq)]++;
  await c.query('BEGIN');
  await c.query(
    `INSERT INTO bulk_jobs (id, owner, action, status, total_items, succeeded_items, failed_items, skipped_items,
                            running_items, started_at)
     VALUES ($1, $2, 'bench-never-claimed', 'running', $3, $4, $5, $6, $7, now())`,
    [id, OWNER, n, counts.succeeded, counts.failed, counts.skipped, counts.running],
  );
  for (let start = 0; start < n; start += 1_000_000) {
    await c.query(
      `INSERT INTO bulk_job_items (job_id, seq, target_id, status, attempts, lease_owner, lease_expires_at, finished_at)
       SELECT $1, g, 'user-' || g, s.status, CASE WHEN s.status = 'pending' THEN 0 ELSE 1 END,
              CASE WHEN s.status = 'running' THEN 'bench-nobody' END,
              CASE WHEN s.status = 'running' THEN now() + interval '1 day' END,
              CASE WHEN s.status IN ('succeeded', 'failed', 'skipped') THEN now() END
       FROM generate_series($2::int, $3::int - 1) g,
            LATERAL (SELECT CASE WHEN g >= $6 THEN 'running' WHEN g >= $5 THEN 'pending'
                                 WHEN g >= $4 THEN 'skipped' WHEN g % 1000 = 999 THEN 'failed'
                                 ELSE 'succeeded' END AS status) s`,
      [id, start, Math.min(n, start + 1_000_000), Math.floor(n * 0.6), pendingFrom, runningFrom],
    );
  }
  await c.query('COMMIT');
  return { id, counts };
}

async function getJson(api, path, token) {
  const res = await globalThis.fetch(`${api.base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

/** Median latency of `runs` first-page requests, and the second page's. */
async function pageLatency(api, token, jobId, status, runs = 5) {
  const query = status ? `?status=${status}&limit=${PAGE}` : `?limit=${PAGE}`;
  const times = [];
  let first;
  for (let i = 0; i < runs; i++) {
    const { value, ms } = await timed(() => getJson(api, `${JOBS_PATH}/${jobId}/items${query}`, token));
    times.push(ms);
    first = value;
  }
  if (status && first.items.some((item) => item.status !== status))
    throw new Error(`the ${status} filter returned items of another status`);
  let nextMs = null;
  if (first.next_cursor) {
    const { ms } = await timed(() =>
      getJson(
        api,
        `${JOBS_PATH}/${jobId}/items${query}&cursor=${encodeURIComponent(first.next_cursor)}`,
        token,
      ),
    );
    nextMs = round(ms, 1);
  }
  times.sort((a, b) => a - b);
  return { first_page_ms: round(percentile(times, 50), 1), next_page_ms: nextMs, items: first.items.length };
}

async function waitForStatus(api, token, jobId, statuses, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await getJson(api, `${JOBS_PATH}/${jobId}`, token);
    if (statuses.includes(job.status)) return job;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${job.status} after ${timeoutMs} ms`);
    await sleep(250);
  }
}

async function rawBatchedDelete(c, jobId, n) {
  const t0 = performance.now();
  for (let start = 0; start < n; start += RAW_DELETE_BATCH) {
    await c.query('DELETE FROM bulk_job_items WHERE job_id = $1 AND seq >= $2 AND seq < $3', [
      jobId,
      start,
      start + RAW_DELETE_BATCH,
    ]);
  }
  await c.query('DELETE FROM bulk_jobs WHERE id = $1', [jobId]);
  return (performance.now() - t0) / 1000;
}

export async function bigjobBench({ url, targets, profile, log }) {
  const token = tokenFor(OWNER);
  const result = { targets };

  log(`bigjob: raw COPY of ${targets} rows`);
  const copySeconds = await rawCopy(url, targets);
  result.raw_copy_rows_per_s = round(targets / copySeconds);

  const api = await startApi(url, {
    profile,
    env: {
      BULK_JOBS_MAX_TARGETS: String(targets),
      BULK_JOBS_PURGE_INTERVAL_MS: '1000',
      RATE_LIMIT_PER_MINUTE: '0',
    },
  });
  let workers = [];
  try {
    log(`bigjob: streaming create of ${targets} targets`);
    const t0 = performance.now();
    const res = await postNdjson(api.base, token, ndjsonBody(targets));
    const uploadSeconds = (performance.now() - t0) / 1000;
    result.upload_status = res.status;
    result.upload_seconds = round(uploadSeconds, 1);
    if (res.status !== 202) {
      throw new Error(
        `the streaming create of ${targets} targets answered ${res.status} after ${round(uploadSeconds, 1)} s: ${res.text.slice(0, 500)}`,
      );
    }
    const job = JSON.parse(res.text);
    result.upload_targets_per_s = round(targets / uploadSeconds);
    result.upload_ratio_vs_copy = round(copySeconds / uploadSeconds, 3);
    result.api_peak_rss_mb = round(memoryOf(api.pid).peak / 2 ** 20, 1);

    const cancelJob = (id) =>
      timed(async () => {
        const r = await globalThis.fetch(`${api.base}${JOBS_PATH}/${id}/cancel`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
        });
        const body = await r.json();
        if (r.status !== 200) throw new Error(`cancel answered ${r.status}: ${JSON.stringify(body)}`);
        return body;
      });

    // The baseline: the same cancel of small jobs (SMALL_JOB targets each, no worker running), median of 5.
    log(`bigjob: cancel of jobs of ${SMALL_JOB} targets (baseline)`);
    const small = [];
    for (let i = 0; i < 5; i++) {
      const created = await postNdjson(api.base, token, ndjsonBody(SMALL_JOB));
      if (created.status !== 202) throw new Error(`a small create answered ${created.status}`);
      small.push((await cancelJob(JSON.parse(created.text).id)).ms);
    }
    small.sort((a, b) => a - b);
    result.small_cancel_ms = round(percentile(small, 50), 1);

    log('bigjob: cancel with every item pending');
    const cancel = await cancelJob(job.id);
    result.cancel_ms = round(cancel.ms, 1);
    result.cancel_ratio_vs_small = round(cancel.ms / result.small_cancel_ms, 2);
    result.cancel_answered_status = cancel.value.status;
    // The rest of the cancel runs off the request path: a worker process is what a deployment has.
    workers = startWorkers(url, 1);
    const settled = await timed(() => waitForStatus(api, token, job.id, ['cancelled'], 30 * 60_000));
    result.cancelled_after_s = round((cancel.ms + settled.ms) / 1000, 1);
    if (settled.value.skipped_items !== targets)
      throw new Error(`the cancelled job has ${settled.value.skipped_items} skipped items, not ${targets}`);
    await Promise.all(workers.map((w) => w.stop()));
    workers = [];

    log(`bigjob: a job of ${targets} items in every status, first pages per status filter`);
    const mixed = await withClient(url, async (c) => {
      const m = await insertMixedJob(c, targets);
      await c.query('VACUUM ANALYZE bulk_job_items');
      return m;
    });
    result.filters = {};
    for (const status of [null, 'pending', 'running', 'succeeded', 'failed', 'skipped']) {
      result.filters[status ?? 'none'] = await pageLatency(api, token, mixed.id, status);
    }

    log('bigjob: delete, then purge');
    const del = await globalThis.fetch(`${api.base}${JOBS_PATH}/${job.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    });
    if (del.status !== 200) throw new Error(`DELETE answered ${del.status}: ${await del.text()}`);
    const purge = await timed(async () => {
      await withClient(url, (c) => c.query(`UPDATE bulk_jobs SET purge_at = now() WHERE id = $1`, [job.id]));
      const deadline = Date.now() + 30 * 60_000;
      for (;;) {
        const left = await withClient(url, async (c) => {
          const { rows } = await c.query('SELECT 1 FROM bulk_jobs WHERE id = $1', [job.id]);
          return rows.length;
        });
        if (left === 0) return;
        if (Date.now() > deadline) throw new Error('the purge did not finish within 30 minutes');
        await sleep(250);
      }
    });
    result.purge_seconds = round(purge.ms / 1000, 1);
    result.purge_rows_per_s = round(targets / (purge.ms / 1000));
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await api.stop();
  }

  log('bigjob: raw batched DELETE of the raw COPY job');
  const rawSeconds = await withClient(url, async (c) => {
    const { rows } = await c.query(
      `SELECT id FROM bulk_jobs WHERE owner = 'bench-copy' ORDER BY created_at DESC LIMIT 1`,
    );
    return rawBatchedDelete(c, rows[0].id, targets);
  });
  result.raw_delete_rows_per_s = round(targets / rawSeconds);
  result.purge_ratio_vs_raw_delete = round(rawSeconds / (result.purge_seconds ?? Infinity), 3);
  return result;
}
