// export: GET /jobs/{id}/results of a job of N items, as NDJSON and as CSV, through
// the API process (rows/s, the API's peak RSS), next to a raw COPY (SELECT …) TO STDOUT
// of the same statement (the same rows, the same bytes) from a plain pg client, drained
// the same way; and, for scale, a COPY of the plain columns with no formatting.
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import pgCopy from 'pg-copy-streams';
import { BUILD_DIR, JOBS_PATH, memoryOf, round, startApi, tokenFor, withClient } from './support.mjs';

/** The export's own COPY statement, from the build the API runs (its decorators want reflect-metadata). */
function exportStatement(jobId, format) {
  const require = createRequire(import.meta.url);
  require('reflect-metadata');
  return require(`${BUILD_DIR}/bulk-jobs/bulk-jobs.repository.js`).exportStatement(jobId, undefined, format);
}

const OWNER = 'bench-export';

/** A finished job of n items: every tenth with data, nine in ten succeeded with a result, the rest failed. */
async function insertJob(url, n) {
  const id = randomUUID();
  await withClient(url, async (c) => {
    await c.query(
      `INSERT INTO bulk_jobs (id, owner, action, status, total_items, succeeded_items, failed_items,
         started_at, finished_at)
       VALUES ($1, $2, 'noop', 'failed', $3, $3 - $3 / 10, $3 / 10, now(), now())`,
      [id, OWNER, n],
    );
    await c.query(
      `INSERT INTO bulk_job_items (job_id, seq, target_id, data, status, attempts, result, last_error, finished_at)
       SELECT $1, g, 'user-' || g,
              CASE WHEN g % 10 = 0 THEN jsonb_build_object('vip', true, 'n', g) END,
              CASE WHEN g % 10 = 9 THEN 'failed' ELSE 'succeeded' END,
              CASE WHEN g % 10 = 9 THEN 3 ELSE 1 END,
              CASE WHEN g % 10 <> 9 THEN jsonb_build_object('status', 200) END,
              CASE WHEN g % 10 = 9 THEN '{"code":"HTTP_503","message":"Upstream answered 503"}'::jsonb END,
              now()
       FROM generate_series(0, $2 - 1) g`,
      [id, n],
    );
    await c.query('VACUUM ANALYZE bulk_job_items');
  });
  return id;
}

/** The plain columns of the export's rows, with no formatting (neither JSON nor timestamps in UTC). */
const plainColumns = (jobId) =>
  `COPY (SELECT target_id, data, status, attempts, result, last_error->>'code', last_error->>'message',
                finished_at
         FROM bulk_job_items WHERE job_id = '${jobId}' ORDER BY seq) TO STDOUT WITH (FORMAT csv)`;

/** A raw COPY … TO STDOUT from a plain pg client, drained; seconds and bytes. */
function rawCopy(url, statement) {
  return withClient(url, async (c) => {
    const t0 = performance.now();
    const stream = c.query(pgCopy.to(statement));
    let bytes = 0;
    for await (const chunk of stream) bytes += chunk.length;
    return { seconds: (performance.now() - t0) / 1000, bytes };
  });
}

/** The export through the API, drained; seconds, bytes and lines (records). */
function apiExport(base, jobId, accept) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(
      `${base}${JOBS_PATH}/${jobId}/results`,
      { headers: { authorization: `Bearer ${tokenFor(OWNER)}`, accept } },
      (res) => {
        if (res.statusCode !== 200) reject(new Error(`the export answered ${res.statusCode}`));
        let bytes = 0;
        let lines = 0;
        res.on('data', (chunk) => {
          bytes += chunk.length;
          for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines++;
        });
        res.on('end', () => resolve({ seconds: (performance.now() - t0) / 1000, bytes, lines }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export async function exportBench({ url, items, profile, log }) {
  log(`export: a job of ${items} items`);
  const jobId = await insertJob(url, items);
  // Warms the cache, so that the first measured run does not read the table from disk alone.
  await rawCopy(url, plainColumns(jobId));
  log('export: raw COPY TO STDOUT of the plain columns');
  const plain = await rawCopy(url, plainColumns(jobId));
  const api = await startApi(url, { profile });
  const results = {};
  try {
    const idle = memoryOf(api.pid);
    for (const [format, accept] of [
      ['ndjson', 'application/x-ndjson'],
      ['csv', 'text/csv'],
    ]) {
      log(`export: raw COPY TO STDOUT of the ${format} statement`);
      const raw = await rawCopy(url, exportStatement(jobId, format));
      log(`export: through the API as ${format}`);
      const r = await apiExport(api.base, jobId, accept);
      const expectedLines = format === 'csv' ? items + 1 : items;
      if (r.lines < expectedLines)
        throw new Error(`the ${format} export has ${r.lines} lines, not ${expectedLines}`);
      results[format] = {
        rows_per_s: round(items / r.seconds),
        mib: round(r.bytes / 2 ** 20, 1),
        seconds: round(r.seconds, 2),
        raw_copy_rows_per_s: round(items / raw.seconds),
        raw_copy_mib: round(raw.bytes / 2 ** 20, 1),
        ratio_vs_copy: round(raw.seconds / r.seconds, 3),
        ratio_vs_plain_columns: round(plain.seconds / r.seconds, 3),
      };
    }
    results.api_rss_before_mb = round(idle.current / 2 ** 20, 1);
    results.api_peak_rss_mb = round(memoryOf(api.pid).peak / 2 ** 20, 1);
  } finally {
    await api.stop();
  }
  return {
    items,
    plain_columns_copy_rows_per_s: round(items / plain.seconds),
    plain_columns_copy_mib: round(plain.bytes / 2 ** 20, 1),
    ...results,
  };
}
