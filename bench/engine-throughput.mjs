#!/usr/bin/env node
// Throughput of the job engine on noop items, next to a plain-SQL baseline.
//
//   npm run build && DATABASE_URL=postgres://… node bench/engine-throughput.mjs [items] [workers]
//
// It creates a scratch database (bulk_jobs_bench_…) on that server and drops it at the end.
// 1. baseline: two clients claim 1,000 pending items with FOR UPDATE SKIP LOCKED and mark them
//    done, in a loop, on the same tables and indexes;
// 2. engine: `workers` worker processes (dist/worker.js) run one noop job of `items` items.
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';

const items = Number(process.argv[2] ?? 100_000);
const workers = Number(process.argv[3] ?? 1);
const serverUrl = process.env.DATABASE_URL;
if (!serverUrl)
  throw new Error('set DATABASE_URL to a PostgreSQL server (a scratch database is created on it)');
const workerEntry = resolve(process.env.WORKER_ENTRY ?? 'dist/worker.js');

const dbName = `bulk_jobs_bench_${Date.now()}_${randomBytes(2).toString('hex')}`;
const admin = new URL(serverUrl);
admin.pathname = '/postgres';
const url = new URL(serverUrl);
url.pathname = `/${dbName}`;

async function withClient(u, fn) {
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function insertJob(c, n) {
  const id = randomUUID();
  await c.query(`INSERT INTO bulk_jobs (id, owner, action, total_items) VALUES ($1, 'bench', 'noop', $2)`, [
    id,
    n,
  ]);
  await c.query(
    `INSERT INTO bulk_job_items (job_id, seq, target_id) SELECT $1, g, 't-' || g FROM generate_series(0, $2 - 1) g`,
    [id, n],
  );
  await c.query('VACUUM ANALYZE bulk_job_items');
  return id;
}

async function baseline(jobId) {
  const loop = async () => {
    await withClient(url, async (c) => {
      for (;;) {
        await c.query('BEGIN');
        const { rows } = await c.query(
          `UPDATE bulk_job_items i SET status = 'running', attempts = attempts + 1, lease_owner = 'b',
             lease_expires_at = now() + interval '30 seconds'
           FROM (SELECT seq FROM bulk_job_items WHERE job_id = $1 AND status = 'pending'
                 ORDER BY seq LIMIT 1000 FOR UPDATE SKIP LOCKED) p
           WHERE i.job_id = $1 AND i.seq = p.seq RETURNING i.seq`,
          [jobId],
        );
        await c.query('COMMIT');
        if (rows.length === 0) return;
        await c.query(
          `UPDATE bulk_job_items SET status = 'succeeded', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL
           WHERE job_id = $1 AND seq = ANY($2::int[])`,
          [jobId, rows.map((r) => r.seq)],
        );
        await c.query(`UPDATE bulk_jobs SET succeeded_items = succeeded_items + $2 WHERE id = $1`, [
          jobId,
          rows.length,
        ]);
      }
    });
  };
  const t0 = performance.now();
  await Promise.all([loop(), loop()]);
  return performance.now() - t0;
}

async function engine(c, jobId) {
  const env = {
    ...process.env,
    DATABASE_URL: url.toString(),
    NODE_ENV: 'production',
    AUTH_JWT_SECRET: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'warn',
  };
  const procs = [];
  for (let i = 0; i < workers; i++)
    procs.push(spawn(process.execPath, [workerEntry], { env, stdio: 'inherit' }));
  // Wait for the first claim, so that start-up time is not counted.
  let t0;
  for (;;) {
    const { rows } = await c.query(
      'SELECT status, succeeded_items + failed_items AS done FROM bulk_jobs WHERE id = $1',
      [jobId],
    );
    if (t0 === undefined && rows[0].status !== 'pending') t0 = performance.now();
    if (rows[0].status === 'completed' || rows[0].status === 'failed') break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const ms = performance.now() - t0;
  for (const p of procs) p.kill('SIGTERM');
  await Promise.all(procs.map((p) => new Promise((r) => p.on('exit', r))));
  return ms;
}

await withClient(admin, (c) => c.query(`CREATE DATABASE "${dbName}"`));
try {
  // Migrate by booting one worker against the empty database, and stopping it once it is ready.
  await new Promise((res, rej) => {
    const p = spawn(process.execPath, [workerEntry], {
      env: {
        ...process.env,
        DATABASE_URL: url.toString(),
        NODE_ENV: 'test',
        NO_COLOR: '1',
        AUTH_JWT_SECRET: 'x'.repeat(32),
        LOG_LEVEL: 'log',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    p.stdout.on('data', (chunk) => {
      if (chunk.toString().includes('worker process ready')) p.kill('SIGTERM');
    });
    p.on('exit', (code) => (code === 0 ? res() : rej(new Error(`migration worker exited ${code}`))));
  });
  await withClient(url, async (c) => {
    const b = await insertJob(c, items);
    const baseMs = await baseline(b);
    const e = await insertJob(c, items);
    const engMs = await engine(c, e);
    const { rows } = await c.query(
      `SELECT count(*) FILTER (WHERE status = 'succeeded')::int AS ok, count(*) FILTER (WHERE attempts > 1)::int AS again
       FROM bulk_job_items WHERE job_id = $1`,
      [e],
    );
    const rate = (ms) => Math.round(items / (ms / 1000));
    console.log(`items ${items}, worker processes ${workers}`);
    console.log(`baseline (plain SQL, 2 clients, batches of 1000): ${rate(baseMs)} items/s`);
    console.log(
      `engine: ${rate(engMs)} items/s (${Math.round((100 * baseMs) / engMs)}% of baseline); succeeded ${rows[0].ok}, re-run ${rows[0].again}`,
    );
  });
} finally {
  await withClient(admin, (c) => c.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`));
}
