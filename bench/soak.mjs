// Soak: one noop job of 10,000,000 items (SOAK_ITEMS) through the real worker
// processes. Records the throughput of every million items (the last million is
// compared with the first) and, every 10 s, the dead and live tuples, autovacuum
// runs and sizes of the hot tables from pg_stat_user_tables. Writes
// bench/results/soak.json.   npm run bench -- --soak [--workers=N]
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { insertJob } from './engine.mjs';
import { build, openDatabase, ROOT, round, sleep, startApi, startWorkers, withClient } from './support.mjs';

const STEP = 1_000_000;

export async function soak({ workers, log, profile }) {
  const items = Number(process.env.SOAK_ITEMS || 10_000_000);
  log('building the service');
  await build();
  const db = await openDatabase(log);
  try {
    const api = await startApi(db.url);
    await api.stop();
    return await withClient(db.url, async (c) => {
      log(`soak: inserting a job of ${items} items`);
      const jobId = await insertJob(c, items, 'bench-soak');
      const stats = async (elapsed, done) => {
        const { rows } = await c.query(
          `SELECT relname, n_live_tup::bigint AS live, n_dead_tup::bigint AS dead, autovacuum_count::int AS autovacuums,
                  n_tup_hot_upd::bigint AS hot_updates, n_tup_upd::bigint AS updates,
                  pg_total_relation_size(relid)::bigint AS bytes
           FROM pg_stat_user_tables WHERE relname IN ('bulk_jobs', 'bulk_job_items') ORDER BY relname`,
        );
        return {
          t_s: round(elapsed, 1),
          done,
          tables: rows.map((r) => ({
            ...r,
            live: Number(r.live),
            dead: Number(r.dead),
            hot_updates: Number(r.hot_updates),
            updates: Number(r.updates),
            mb: round(Number(r.bytes) / 2 ** 20),
          })),
        };
      };
      log(`soak: ${workers} worker process(es)`);
      const procs = startWorkers(db.url, workers, { profile });
      const marks = [];
      const samples = [];
      let t0;
      let lastStats = -Infinity;
      try {
        for (;;) {
          const { rows } = await c.query(
            'SELECT status, succeeded_items AS done FROM bulk_jobs WHERE id = $1',
            [jobId],
          );
          const now = performance.now();
          const { status, done } = rows[0];
          if (t0 === undefined && status !== 'pending') {
            t0 = now;
            marks.push({ done: 0, t: 0 });
          }
          if (t0 !== undefined) {
            const elapsed = (now - t0) / 1000;
            marks.push({ done, t: elapsed });
            if (now - lastStats >= 10_000) {
              lastStats = now;
              const s = await stats(elapsed, done);
              samples.push(s);
              const items_ = s.tables.find((x) => x.relname === 'bulk_job_items');
              log(
                `soak: ${done} done, ${round(done / Math.max(elapsed, 0.001))} items/s overall; items table: ${items_.dead} dead, ${items_.autovacuums} autovacuums, ${items_.mb} MB`,
              );
            }
          }
          if (status === 'completed' || status === 'failed') break;
          for (const p of procs) if (!p.alive()) throw p.fail('a worker process exited');
          await sleep(100);
        }
      } finally {
        await Promise.all(procs.map((p) => p.stop()));
      }
      samples.push(await stats((performance.now() - t0) / 1000, items));
      // Throughput of each million, interpolated between the samples around its bounds.
      const at = (n) => {
        for (let i = 1; i < marks.length; i++) {
          if (marks[i].done >= n) {
            const a = marks[i - 1];
            const b = marks[i];
            return a.t + ((n - a.done) / Math.max(1, b.done - a.done)) * (b.t - a.t);
          }
        }
        return marks[marks.length - 1].t;
      };
      const millions = [];
      for (let m = 0; m * STEP < items; m++) {
        const from = m * STEP;
        const to = Math.min(items, from + STEP);
        millions.push({ from, to, items_per_s: round((to - from) / (at(to) - at(from))) });
      }
      const { rows: end } = await c.query(
        `SELECT EXTRACT(EPOCH FROM finished_at - started_at)::float8 AS seconds, status, succeeded_items FROM bulk_jobs WHERE id = $1`,
        [jobId],
      );
      const first = millions[0].items_per_s;
      const last = millions[millions.length - 1].items_per_s;
      const report = {
        finished_at: new Date().toISOString(),
        items,
        worker_processes: workers,
        postgresql: db.version,
        database: db.embedded ? 'embedded' : 'DATABASE_URL server',
        status: end[0].status,
        overall_items_per_s: round(items / end[0].seconds),
        first_million_items_per_s: first,
        last_million_items_per_s: last,
        last_vs_first: round(last / first, 3),
        target: 'last million within 20% of the first (last_vs_first >= 0.8)',
        pass: last / first >= 0.8,
        millions,
        table_samples: samples,
      };
      const dir = join(ROOT, 'bench', 'results');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'soak.json'), `${JSON.stringify(report, null, 2)}\n`);
      log(
        `soak: first million ${first} items/s, last ${last} items/s (${report.last_vs_first}); wrote bench/results/soak.json`,
      );
      return report;
    });
  } finally {
    await db.drop();
  }
}
