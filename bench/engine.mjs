// engine: one noop job of N items through the real worker processes, next to
// (i) the SQL-only ceiling: the same claim and complete cycles as plain statements
//     from a loop with no application code, on the same tables, indexes and server;
// (ii) BullMQ on the local Redis working N no-op jobs added in bulk.
import { fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { connect } from 'node:net';
import { Queue } from 'bullmq';
import { cpuMsOf, machineCpuMs, ROOT, round, sleep, startWorkers, tracked, withClient } from './support.mjs';

/**
 * Items per claim of the SQL loop: as many as the engine claims and writes at a time with its defaults
 * (WORKER_BATCH_SIZE 4000 in quarters: two claims in flight, one part running, one being written).
 */
const SQL_BATCH = 1000;

/**
 * Inserts a pending noop job of n items (as the streaming create leaves one), then vacuums.
 * `fresh` empties the job tables first, so that each side of a comparison starts from the same state.
 */
export async function insertJob(c, n, owner = 'bench', { fresh = false } = {}) {
  if (fresh) await c.query('TRUNCATE bulk_job_items, bulk_jobs CASCADE');
  const id = randomUUID();
  await c.query(`INSERT INTO bulk_jobs (id, owner, action, total_items) VALUES ($1, $2, 'noop', $3)`, [
    id,
    owner,
    n,
  ]);
  // In chunks, so that a 10M-item job does not need one giant statement.
  for (let start = 0; start < n; start += 1_000_000) {
    await c.query(
      `INSERT INTO bulk_job_items (job_id, seq, target_id)
       SELECT $1, g, 'target-' || g FROM generate_series($2::int, $3::int - 1) g`,
      [id, start, Math.min(n, start + 1_000_000)],
    );
  }
  await c.query('VACUUM ANALYZE bulk_job_items');
  await c.query('VACUUM ANALYZE bulk_jobs');
  await c.query('CHECKPOINT');
  return id;
}

/**
 * The SQL-only ceiling: `clients` loops, each claiming up to 1,000 pending items
 * of the job (SKIP LOCKED, leased, attempts + 1, the job's running count) in one
 * statement and completing them (succeeded, lease cleared, the job's counters and
 * its end) in a second, until nothing is left.
 */
async function sqlCeiling(url, jobId, clients) {
  const loop = (k) =>
    withClient(url, async (c) => {
      const me = `sql-${k}`;
      for (;;) {
        const { rows } = await c.query(
          `WITH picked AS (
             SELECT seq FROM bulk_job_items WHERE job_id = $1 AND status = 'pending'
             ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED
           ), claimed AS (
             UPDATE bulk_job_items i SET status = 'running', attempts = i.attempts + 1, lease_owner = $3,
               lease_expires_at = now() + interval '30 seconds', started_at = now()
             FROM picked p WHERE i.job_id = $1 AND i.seq = p.seq
             RETURNING i.seq, i.target_id, i.data, i.attempts
           ), job AS (
             UPDATE bulk_jobs SET running_items = running_items + (SELECT count(*) FROM claimed),
               status = 'running', started_at = COALESCE(started_at, now())
             WHERE id = $1
           )
           SELECT array_agg(seq) AS seqs FROM claimed`,
          [jobId, SQL_BATCH, me],
        );
        const seqs = rows[0].seqs;
        if (!seqs) return;
        await c.query(
          `WITH done AS (
             UPDATE bulk_job_items SET status = 'succeeded', finished_at = now(), lease_owner = NULL,
               lease_expires_at = NULL
             WHERE job_id = $1 AND seq = ANY($2::int[]) AND status = 'running' AND lease_owner = $3
             RETURNING 1
           ), n AS (SELECT count(*)::int AS k FROM done)
           UPDATE bulk_jobs j SET running_items = j.running_items - n.k, succeeded_items = j.succeeded_items + n.k,
             status = CASE WHEN j.succeeded_items + n.k = j.total_items THEN 'completed' ELSE j.status END,
             finished_at = CASE WHEN j.succeeded_items + n.k = j.total_items THEN now() END
           FROM n WHERE j.id = $1`,
          [jobId, `{${seqs.join(',')}}`, me],
        );
      }
    });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, (_, k) => loop(k)));
  return (performance.now() - t0) / 1000;
}

/**
 * Holds the job back until every worker process has started, so that no worker
 * claims while another one still starts (a start costs about 2.5 s of CPU, which
 * a worker already at work would otherwise share the cores with), then lets them in.
 */
async function releaseWhenStarted(c, jobId, procs) {
  const deadline = Date.now() + 60_000;
  while (!procs.every((p) => p.output.join('').includes('worker process ready'))) {
    for (const p of procs) if (!p.alive()) throw p.fail('a worker process exited');
    if (Date.now() > deadline) throw procs[0].fail('the worker processes did not start within 60 s');
    await sleep(50);
  }
  await c.query('UPDATE bulk_jobs SET claimable_at = now() WHERE id = $1', [jobId]);
}

/**
 * The engine: worker processes run the job; timed from its first claim to its
 * end (the job's own timestamps), with every worker started before the first.
 */
async function engineRun(url, c, jobId, workers, profile) {
  await c.query(`UPDATE bulk_jobs SET claimable_at = now() + interval '1 day' WHERE id = $1`, [jobId]);
  // At level log, for the line that says a worker process is ready (a worker logs a handful of lines at that level).
  const procs = startWorkers(url, workers, {
    profile,
    env: { LOG_LEVEL: process.env.BENCH_LOG_LEVEL || 'log' },
  });
  let cpuMs = 0;
  let startCpuMs = 0;
  let machine0;
  let machine1;
  try {
    await releaseWhenStarted(c, jobId, procs);
    machine0 = machineCpuMs();
    for (const p of procs) startCpuMs += cpuMsOf(p.child.pid);
    for (;;) {
      const { rows } = await c.query('SELECT status FROM bulk_jobs WHERE id = $1', [jobId]);
      if (rows[0].status === 'completed' || rows[0].status === 'failed') break;
      for (const p of procs) if (!p.alive()) throw p.fail('a worker process exited');
      await sleep(50);
    }
    // The worker processes' CPU time, steadier than items/s on a busy machine: start-up included
    // (cpuMs), and from the job's release on (runCpuMs).
    for (const p of procs) cpuMs += cpuMsOf(p.child.pid);
    // The whole machine's from the release until the end was seen (within a 50 ms poll).
    machine1 = machineCpuMs();
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
  const { rows } = await c.query(
    `SELECT status, succeeded_items, EXTRACT(EPOCH FROM finished_at - started_at)::float8 AS seconds,
            (SELECT count(*)::int FROM bulk_job_items WHERE job_id = $1 AND attempts > 1) AS rerun
     FROM bulk_jobs WHERE id = $1`,
    [jobId],
  );
  return {
    ...rows[0],
    cpuMs,
    runCpuMs: cpuMs - startCpuMs,
    machineBusyMs: machine1.busyMs - machine0.busyMs,
    machineIdleMs: machine1.idleMs - machine0.idleMs,
  };
}

/** Fails at once when nothing listens where Redis should be (BullMQ would wait for it for ever). */
async function assertReachable({ host, port }) {
  await new Promise((res, rej) => {
    const socket = connect({ host, port, timeout: 3000 });
    const fail = (why) => {
      socket.destroy();
      rej(
        new Error(
          `Redis is not reachable at ${host}:${port} (${why}): the BullMQ baseline needs it; --engine-baselines=sql leaves it out`,
        ),
      );
    };
    socket.once('connect', () => {
      socket.end();
      res();
    });
    socket.once('timeout', () => fail('timed out'));
    socket.once('error', (err) => fail(err.code ?? err.message));
  });
}

/** BullMQ: n no-op jobs added with addBulk, then `workers` worker processes of `concurrency` work them. */
async function bullmqRun(n, workers, concurrency) {
  const name = `bulk-jobs-bench-${randomBytes(4).toString('hex')}`;
  const connection = {
    host: process.env.REDIS_HOST || '127.0.0.1',
    port: Number(process.env.REDIS_PORT || 6379),
  };
  await assertReachable(connection);
  const queue = new Queue(name, { connection });
  const procs = [];
  try {
    const t0 = performance.now();
    const chunk = 10_000;
    for (let start = 0; start < n; start += chunk) {
      const jobs = [];
      for (let i = start; i < Math.min(n, start + chunk); i++) {
        jobs.push({
          name: 'noop',
          data: { target: `target-${i}` },
          opts: { removeOnComplete: true, removeOnFail: true },
        });
      }
      await queue.addBulk(jobs);
    }
    const addSeconds = (performance.now() - t0) / 1000;
    for (let i = 0; i < workers; i++) {
      procs.push(
        tracked(
          fork(join(ROOT, 'bench', 'bullmq-worker.mjs'), [name, String(concurrency)], { stdio: 'inherit' }),
        ),
      );
    }
    await Promise.all(procs.map((p) => new Promise((r) => p.once('message', r))));
    const t1 = performance.now();
    for (const p of procs) p.send('go');
    for (;;) {
      const [waiting, active] = await Promise.all([queue.count(), queue.getActiveCount()]);
      if (waiting + active === 0) break;
      await sleep(20);
    }
    const seconds = (performance.now() - t1) / 1000;
    return { seconds, addSeconds };
  } finally {
    await Promise.all(
      procs.map((p) => new Promise((r) => (p.exitCode !== null ? r() : (p.once('exit', r), p.send('stop'))))),
    );
    // Only this run's own keys.
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
  }
}

/** With --statements (embedded server): the statements that took the most database time since the last call. */
async function topStatements(c, enabled, label, log) {
  if (!enabled) return;
  const { rows } = await c.query(
    `SELECT calls, round(total_exec_time)::int AS total_ms, round(mean_exec_time::numeric, 2)::float8 AS mean_ms, rows,
            shared_blks_hit + shared_blks_read AS blocks, regexp_replace(left(query, 90), '[[:space:]]+', ' ', 'g') AS query
     FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
     ORDER BY total_exec_time DESC LIMIT 6`,
  );
  log(
    `statements of ${label}:\n${rows.map((r) => `  ${r.total_ms} ms, ${r.calls} calls, ${r.mean_ms} ms each, ${r.rows} rows, ${r.blocks} blocks: ${r.query}`).join('\n')}`,
  );
  await c.query('SELECT pg_stat_statements_reset()');
}

export async function engineBench({
  url,
  items,
  workers,
  sqlClients,
  bullmqConcurrency,
  baselines = ['sql', 'bullmq'],
  statements = false,
  poolerUrl,
  profile,
  log,
}) {
  return withClient(url, async (c) => {
    if (statements) {
      await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      await c.query('SELECT pg_stat_statements_reset()');
    }
    // The engine and the SQL loop take turns in ABBA order (SQL, engine, engine,
    // SQL), each turn half the items on a fresh job, so that load that comes and
    // goes on a shared machine weighs on both sides alike.
    const withSql = baselines.includes('sql');
    const half = Math.ceil(items / 2);
    const turns = withSql ? ['sql', 'engine', 'engine', 'sql'] : ['engine', 'engine'];
    let sqlSeconds = withSql ? 0 : NaN;
    const eng = { seconds: 0, rerun: 0, cpuMs: 0 };
    for (const [i, side] of turns.entries()) {
      const n = i < turns.length / 2 ? half : items - half;
      const job = await insertJob(c, n, 'bench', { fresh: true });
      await topStatements(c, statements, 'the set-up', () => undefined);
      if (side === 'sql') {
        log(`engine: SQL-only ceiling, ${n} items, ${sqlClients} clients`);
        sqlSeconds += await sqlCeiling(url, job, sqlClients);
        await topStatements(c, statements, 'the SQL loop', log);
        const sqlCheck = await c.query('SELECT status, succeeded_items FROM bulk_jobs WHERE id = $1', [job]);
        if (sqlCheck.rows[0].succeeded_items !== n)
          throw new Error(`SQL loop left ${n - sqlCheck.rows[0].succeeded_items} items`);
      } else {
        log(`engine: ${workers} worker process(es), ${n} items`);
        const run = await engineRun(url, c, job, workers, profile);
        await topStatements(c, statements, 'the engine', log);
        if (run.status !== 'completed' || run.succeeded_items !== n) {
          throw new Error(`the engine's job ended ${run.status} with ${run.succeeded_items}/${n} succeeded`);
        }
        eng.seconds += run.seconds;
        eng.rerun += run.rerun;
        eng.cpuMs += run.cpuMs;
      }
    }

    // The same run with the workers' connections through a pooler in transaction mode (--pooler).
    let pooled;
    if (poolerUrl) {
      log(`engine: ${workers} worker process(es), ${items} items, through the pooler`);
      const pooledJob = await insertJob(c, items, 'bench', { fresh: true });
      pooled = await engineRun(poolerUrl, c, pooledJob, workers, false);
      if (pooled.status !== 'completed' || pooled.succeeded_items !== items) {
        throw new Error(
          `the pooled engine's job ended ${pooled.status} with ${pooled.succeeded_items}/${items} succeeded`,
        );
      }
    }

    // BullMQ at each concurrency asked for (--bullmq-concurrency=50,100,200,500), the fastest kept:
    // the comparison is with BullMQ at its best on this machine.
    let bull = { seconds: NaN, addSeconds: NaN, concurrency: NaN };
    const bullByConcurrency = {};
    if (baselines.includes('bullmq')) {
      for (const concurrency of [bullmqConcurrency].flat()) {
        log(`engine: BullMQ, ${items} jobs, ${workers} worker process(es) of concurrency ${concurrency}`);
        const run = await bullmqRun(items, workers, concurrency);
        bullByConcurrency[concurrency] = round(items / run.seconds);
        if (!(run.seconds >= bull.seconds)) bull = { ...run, concurrency };
      }
    }

    const rate = (s) => round(items / s);
    return {
      items,
      worker_processes: workers,
      engine_items_per_s: rate(eng.seconds),
      engine_rerun_items: eng.rerun,
      engine_worker_cpu_us_per_item: round((eng.cpuMs * 1000) / items, 1),
      sql_ceiling_items_per_s: rate(sqlSeconds),
      sql_ceiling_clients: sqlClients,
      bullmq_jobs_per_s: rate(bull.seconds),
      bullmq_add_bulk_jobs_per_s: rate(bull.addSeconds),
      bullmq_concurrency: bull.concurrency,
      bullmq_jobs_per_s_by_concurrency: bullByConcurrency,
      ratio_vs_sql: round(eng.seconds > 0 ? sqlSeconds / eng.seconds : 0, 3),
      ratio_vs_bullmq: round(bull.seconds / eng.seconds, 2),
      ...(pooled
        ? {
            pooler_items_per_s: rate(pooled.seconds),
            ratio_pooler_vs_direct: round(eng.seconds / pooled.seconds, 3),
          }
        : {}),
    };
  });
}

/**
 * One job's items/s with `counts[0]` worker processes against `counts[1]`
 * (1 and 2 by default), in turns of half the items each, in ABBA order.
 */
export async function workersBench({ url, items, counts = [1, 2], statements = false, profile, log }) {
  return withClient(url, async (c) => {
    if (statements) {
      await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      await c.query('SELECT pg_stat_statements_reset()');
    }
    const half = Math.ceil(items / 2);
    // By side (A, B), not by count, so that --workers-ab=1,1 shows the run-to-run noise.
    const sides = counts.map(() => ({ seconds: 0, items: 0, runCpuMs: 0, busyMs: 0, idleMs: 0 }));
    for (const side of [0, 1, 1, 0]) {
      const workers = counts[side];
      log(`workers: ${workers} worker process(es), ${half} items`);
      const job = await insertJob(c, half, 'bench', { fresh: true });
      await topStatements(c, statements, 'the set-up', () => undefined);
      const run = await engineRun(url, c, job, workers, profile);
      await topStatements(c, statements, `${workers} worker process(es)`, log);
      if (run.status !== 'completed' || run.succeeded_items !== half) {
        throw new Error(`the engine's job ended ${run.status} with ${run.succeeded_items}/${half} succeeded`);
      }
      log(`workers: ${workers} worker process(es): ${round(half / run.seconds)} items/s`);
      sides[side].seconds += run.seconds;
      sides[side].items += half;
      sides[side].runCpuMs += run.runCpuMs;
      sides[side].busyMs += run.machineBusyMs;
      sides[side].idleMs += run.machineIdleMs;
    }
    const rates = sides.map((t) => round(t.items / t.seconds));
    return {
      items: 2 * half,
      counts,
      items_per_s: rates,
      // Start-up left out: the CPU the worker processes used while they ran the job.
      worker_cpu_us_per_item: sides.map((t) => round((t.runCpuMs * 1000) / t.items, 1)),
      // The whole machine's time per item over the same spans, summed over the cores: busy (the
      // workers, the database, the kernel) and idle. Idle that grows with more workers is time they
      // spend waiting on each other (locks) rather than working.
      machine_busy_us_per_item: sides.map((t) => round((t.busyMs * 1000) / t.items, 1)),
      machine_idle_us_per_item: sides.map((t) => round((t.idleMs * 1000) / t.items, 1)),
      ratio: round(rates[1] / rates[0], 3),
    };
  });
}
