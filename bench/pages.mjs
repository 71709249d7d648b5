// pages: what one list page costs when its rows carry as much as a client may store (params of
// BULK_JOBS_MAX_PARAMS_BYTES, target data of BULK_JOBS_MAX_TARGET_DATA_BYTES), and more than that
// (params stored before the limit existed), beside a page of small jobs, and beside the page's
// statement without the byte budget, run on a plain pg connection.
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { JOBS_PATH, memoryOf, percentile, round, startApi, tokenFor, withClient } from './support.mjs';

const MIB = 2 ** 20;
/** One md5 hex string and its JSON punctuation: incompressible text, so that TOAST cannot shrink it. */
const ELEMENT_BYTES = 35;

/** `n` jobs of `owner` whose params are `bytes` bytes of JSON (random hex strings, in an array). */
async function insertJobs(c, owner, n, bytes) {
  const elements = Math.max(0, Math.floor((bytes - 20) / ELEMENT_BYTES));
  await c.query(
    `INSERT INTO bulk_jobs (id, owner, action, status, params, created_at, updated_at)
     SELECT gen_random_uuid(), $1, 'simulate', 'completed',
            jsonb_build_object('fail_targets',
              COALESCE((SELECT jsonb_agg(md5(random()::text || g || e)) FROM generate_series(1, $3::int) e),
                       '[]'::jsonb)),
            now() - g * interval '1 ms', now()
     FROM generate_series(1, $2::int) g`,
    [owner, n, elements],
  );
}

/** A job of `owner` with `n` items whose data is `bytes` bytes of JSON; returns its id. */
async function insertItems(c, owner, n, bytes) {
  const elements = Math.floor((bytes - 20) / ELEMENT_BYTES);
  const { rows } = await c.query(
    `INSERT INTO bulk_jobs (id, owner, action, status, total_items, succeeded_items)
     VALUES (gen_random_uuid(), $1, 'noop', 'completed', $2, $2) RETURNING id`,
    [owner, n],
  );
  await c.query(
    `INSERT INTO bulk_job_items (job_id, seq, target_id, status, attempts, data)
     SELECT $1, g - 1, 't-' || g, 'succeeded', 1,
            jsonb_build_object('notes', (SELECT jsonb_agg(md5(random()::text || g || e)) FROM generate_series(1, $3::int) e))
     FROM generate_series(1, $2::int) g`,
    [rows[0].id, n, elements],
  );
  return rows[0].id;
}

/** `rounds` GETs of one page in a fresh API process: latency, size and rows of the page, the API's peak RSS. */
async function measurePages(url, path, owner, rounds, profile) {
  const api = await startApi(url, { profile, env: { RATE_LIMIT_PER_MINUTE: '10000000' } });
  const headers = { authorization: `Bearer ${tokenFor(owner)}` };
  const times = [];
  let bytes = 0;
  let rows = 0;
  let more = false;
  try {
    const idle = memoryOf(api.pid).current;
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      const res = await globalThis.fetch(`${api.base}${path}`, { headers });
      const text = await res.text();
      times.push(performance.now() - t0);
      if (res.status !== 200) throw new Error(`${path} answered ${res.status}: ${text.slice(0, 300)}`);
      const body = JSON.parse(text);
      bytes = Buffer.byteLength(text);
      rows = body.items.length;
      more = body.next_cursor !== null;
    }
    const memory = memoryOf(api.pid);
    times.sort((a, b) => a - b);
    return {
      p50_ms: round(percentile(times, 50), 1),
      max_ms: round(times[times.length - 1], 1),
      rows_per_page: rows,
      next_cursor: more,
      page_mib: round(bytes / MIB, 2),
      api_rss_idle_mb: round(idle / MIB, 1),
      api_peak_rss_mb: round(memory.peak / MIB, 1),
    };
  } finally {
    await api.stop();
  }
}

/** The page's rows as the statement without a budget reads them: limit + 1 rows, every column. */
async function measureRaw(url, sql, params, rounds) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const times = [];
  let bytes = 0;
  try {
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      const { rows } = await client.query({
        text: sql,
        values: params,
        types: { getTypeParser: () => (v) => v },
      });
      times.push(performance.now() - t0);
      bytes = rows.reduce((sum, r) => sum + Object.values(r).reduce((s, v) => s + (v ? v.length : 0), 0), 0);
    }
  } finally {
    await client.end();
  }
  times.sort((a, b) => a - b);
  return { p50_ms: round(percentile(times, 50), 1), read_mib: round(bytes / MIB, 2) };
}

export async function pagesBench({ url, quick, profile, log }) {
  const limit = 500;
  const rounds = quick ? 3 : 15;
  const cases = [
    { name: 'small params', owner: 'bench-pages-small', jobs: limit + 1, bytes: 0 },
    { name: '64 KiB params (the limit)', owner: 'bench-pages-max', jobs: limit + 1, bytes: 64 * 1024 },
    {
      name: '1 MiB params (stored before the limit)',
      owner: 'bench-pages-legacy',
      jobs: quick ? 20 : 100,
      bytes: MIB,
    },
  ];
  const itemsOwner = 'bench-pages-items';
  let itemsJob;
  await withClient(url, async (c) => {
    for (const k of cases) {
      log(`pages: inserting ${k.jobs} jobs with ${k.name}`);
      await insertJobs(c, k.owner, k.jobs, k.bytes);
    }
    log(`pages: inserting a job of ${limit + 1} items with 16 KiB of data each`);
    itemsJob = await insertItems(c, itemsOwner, limit + 1, 16 * 1024);
    await c.query('VACUUM ANALYZE bulk_jobs');
    await c.query('VACUUM ANALYZE bulk_job_items');
  });
  const out = {};
  for (const k of cases) {
    log(`pages: GET /jobs?limit=${limit}, ${k.name}`);
    const service = await measurePages(url, `${JOBS_PATH}?limit=${limit}`, k.owner, rounds, profile);
    const raw = await measureRaw(
      url,
      `SELECT id, owner, action, params, options, status, error, created_at
       FROM bulk_jobs WHERE owner = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $2`,
      [k.owner, limit + 1],
      rounds,
    );
    out[k.name] = { jobs: k.jobs, service, raw_statement: raw, ratio: round(service.p50_ms / raw.p50_ms, 2) };
  }
  log(`pages: GET /jobs/{id}/items?limit=${limit}, 16 KiB of data per item`);
  const service = await measurePages(
    url,
    `${JOBS_PATH}/${itemsJob}/items?limit=${limit}`,
    itemsOwner,
    rounds,
    profile,
  );
  const raw = await measureRaw(
    url,
    `SELECT seq, target_id, data, status, last_error, result FROM bulk_job_items
     WHERE job_id = $1 ORDER BY seq LIMIT $2`,
    [itemsJob, limit + 1],
    rounds,
  );
  out['items, 16 KiB data (the limit)'] = {
    items: limit + 1,
    service,
    raw_statement: raw,
    ratio: round(service.p50_ms / raw.p50_ms, 2),
  };
  return { limit, rounds, cases: out };
}
