// ingest: a streaming create (application/x-ndjson) of N targets through the API
// process, targets/s and the API's peak RSS, next to a raw COPY of the same rows
// into the same table from a plain pg client.
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pgCopy from 'pg-copy-streams';
import { JOBS_PATH, memoryOf, round, startApi, tokenFor, withClient } from './support.mjs';

/** Every tenth target carries data; the others are plain ids. */
const targetOf = (i) => (i % 10 === 0 ? { id: `user-${i}`, data: { vip: true, n: i } } : `user-${i}`);

/** Lines (or rows) i..n built by `line`, in chunks of about 64 KiB. */
function* chunks(n, line) {
  let chunk = '';
  for (let i = 0; i < n; i++) {
    chunk += line(i);
    if (chunk.length >= 65_536) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}

export function ndjsonBody(n) {
  return Readable.from(
    (function* () {
      yield `${JSON.stringify({ action: 'noop' })}\n`;
      yield* chunks(n, (i) => `${JSON.stringify(targetOf(i))}\n`);
    })(),
  );
}

export function postNdjson(base, token, body) {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${JOBS_PATH}`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, text }));
      },
    );
    req.on('error', reject);
    body.pipe(req);
  });
}

/** COPY's text format for one row (ids and data here need no escaping). */
function copyRow(jobId, i) {
  const t = targetOf(i);
  return typeof t === 'string'
    ? `${jobId}\t${i}\t${t}\t\\N\n`
    : `${jobId}\t${i}\t${t.id}\t${JSON.stringify(t.data)}\n`;
}

export async function rawCopy(url, n) {
  return withClient(url, async (c) => {
    const t0 = performance.now();
    const id = randomUUID();
    await c.query('BEGIN');
    await c.query(
      `INSERT INTO bulk_jobs (id, owner, action, total_items) VALUES ($1, 'bench-copy', 'noop', 0)`,
      [id],
    );
    await pipeline(
      Readable.from(chunks(n, (i) => copyRow(id, i))),
      c.query(pgCopy.from('COPY bulk_job_items (job_id, seq, target_id, data) FROM STDIN')),
    );
    await c.query('UPDATE bulk_jobs SET total_items = $2 WHERE id = $1', [id, n]);
    await c.query('COMMIT');
    return (performance.now() - t0) / 1000;
  });
}

async function prepare(url) {
  await withClient(url, async (c) => {
    await c.query('VACUUM ANALYZE bulk_job_items');
    await c.query('CHECKPOINT');
  });
}

export async function ingestBench({ url, targets, profile, log }) {
  log(`ingest: raw COPY of ${targets} rows`);
  await prepare(url);
  const copySeconds = await rawCopy(url, targets);

  log(`ingest: streaming create of ${targets} targets`);
  await prepare(url);
  const api = await startApi(url, { profile });
  let seconds;
  let memory;
  let idle;
  try {
    idle = memoryOf(api.pid);
    const t0 = performance.now();
    const res = await postNdjson(api.base, tokenFor('bench-ingest'), ndjsonBody(targets));
    seconds = (performance.now() - t0) / 1000;
    if (res.status !== 202)
      throw new Error(`the streaming create answered ${res.status}: ${res.text.slice(0, 500)}`);
    const job = JSON.parse(res.text);
    if (job.total_items !== targets) throw new Error(`the job has ${job.total_items} items, not ${targets}`);
    memory = memoryOf(api.pid);
  } finally {
    await api.stop();
  }
  return {
    targets,
    api_targets_per_s: round(targets / seconds),
    raw_copy_rows_per_s: round(targets / copySeconds),
    ratio_vs_copy: round(copySeconds / seconds, 3),
    api_peak_rss_mb: round(memory.peak / 2 ** 20, 1),
    api_rss_before_mb: round(idle.current / 2 ** 20, 1),
  };
}
