#!/usr/bin/env node
// npm run bench [-- options]: builds the service, gives the run a database of its own
// (a new database on DATABASE_URL's server, or the embedded bench server), runs each
// benchmark beside its baseline, prints a table and writes bench/results/*.json.
//
//   --quick            small sizes (seconds), for CI: checks the benchmarks work; exits 0 on missed targets
//   --only=a,b         run some of: engine, workers, ingest, api, list, pages, bigjob, dashboard, export (bigjob: full runs only)
//   --workers=N        worker processes of the engine benchmark (default 1)
//   --workers-ab=A,B   the workers benchmark's two counts of worker processes on one job (default 1,2)
//   --items=N …        override a size (also --targets, --seconds, --list-jobs, --bigjob-targets, --api-runs)
//   --engine-baselines=sql,bullmq  which baselines the engine benchmark runs (profiling runs)
//   --bullmq-concurrency=N[,M…]  BullMQ's worker concurrency (default 100); with several, each is run
//                      and the fastest is the baseline (e.g. 50,100,200,500 to tune it on a machine)
//   --statements       print the engine and workers benchmarks' costliest statements (pg_stat_statements, embedded server)
//   --api-floors       the api benchmark also serves the raw baseline's logic through a bare Fastify
//                      app and a bare NestJS app (the frameworks' floors) and prints each one's figures
//   --cpu-prof         write CPU profiles of the service processes (and the raw API server) to bench/results/
//   --soak             the 10M-item soak instead (bench/soak.mjs)
//   --pooler           the engine benchmark also runs its workers through PgBouncer in transaction
//                      mode (POOLER_URL), beside the direct figure (DIRECT_DATABASE_URL): run it as
//                      `scripts/with-pgbouncer.sh npm run bench -- --only=engine --pooler`
import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { apiBench } from './api.mjs';
import { bigjobBench } from './bigjob.mjs';
import { dashboardBench } from './dashboard.mjs';
import { engineBench, workersBench } from './engine.mjs';
import { exportBench } from './export.mjs';
import { ingestBench } from './ingest.mjs';
import { listBench } from './list.mjs';
import { pagesBench } from './pages.mjs';
import { soak } from './soak.mjs';
import { build, EMBEDDED_FLAGS, openDatabase, ROOT, round, startApi } from './support.mjs';

const ALL = ['engine', 'workers', 'ingest', 'api', 'list', 'pages', 'bigjob', 'dashboard', 'export'];
const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const option = (name) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const quick = flag('quick');
const profile = flag('cpu-prof');
const only = option('only')?.split(',') ?? ALL;
for (const name of only)
  if (!ALL.includes(name)) throw new Error(`unknown benchmark ${name}; known: ${ALL.join(', ')}`);
const workers = Number(option('workers') ?? 1);
// --pooler: the run's database is made on the server directly; only the second engine run goes through the pooler.
const poolerUrl = flag('pooler') ? process.env.POOLER_URL : undefined;
if (flag('pooler')) {
  if (!poolerUrl || !process.env.DIRECT_DATABASE_URL)
    throw new Error(
      '--pooler needs POOLER_URL and DIRECT_DATABASE_URL: run it under scripts/with-pgbouncer.sh',
    );
  process.env.DATABASE_URL = process.env.DIRECT_DATABASE_URL;
}

const SIZES = quick
  ? {
      items: 10_000,
      targets: 10_000,
      seconds: 1,
      deletes: 20_000,
      listJobs: 1_000,
      bigjobTargets: 0,
      apiRuns: 1,
    }
  : {
      items: 1_000_000,
      targets: 1_000_000,
      seconds: 10,
      deletes: 250_000,
      // The api benchmark's target is the median of three runs (each ABBA, see api.mjs).
      apiRuns: 3,
      listJobs: 1_000_000,
      // The advertised size (BULK_JOBS_MAX_TARGETS); --quick skips it (minutes, and gigabytes of rows).
      bigjobTargets: 10_000_000,
    };
// --items=N, --targets=N, --seconds=N, --list-jobs=N override the sizes (for profiling runs).
for (const [key, name] of [
  ['items', 'items'],
  ['targets', 'targets'],
  ['seconds', 'seconds'],
  ['listJobs', 'list-jobs'],
  ['bigjobTargets', 'bigjob-targets'],
  ['apiRuns', 'api-runs'],
]) {
  if (option(name)) SIZES[key] = Number(option(name));
}

const started = Date.now();
const log = (msg) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

/**
 * Each method's figures from the run whose req/s ratio is the median of the
 * runs (the whole invocation shares one database and one load), its p99
 * ratio the median of the runs' p99 ratios, and every run's two ratios.
 */
function medianApiRun(runs) {
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  const result = { connections: runs[0].connections, seconds: runs[0].seconds, rounds: runs[0].rounds };
  for (const op of ['get', 'delete']) {
    const each = runs.map((r) => ({
      ...r[op],
      p99_ratio: round(r[op].service.p99_ms / r[op].baseline.p99_ms, 2),
    }));
    const ratio = median(each.map((r) => r.ratio));
    result[op] = {
      ...each.find((r) => r.ratio === ratio),
      p99_ratio: median(each.map((r) => r.p99_ratio)),
      runs: each.map((r) => ({ ratio: r.ratio, p99_ratio: r.p99_ratio })),
    };
  }
  if (runs[0].get.floors) result.floors = apiFloors(runs);
  return result;
}

const API_SERVERS = {
  baseline: 'node:http (raw)',
  fastify: 'bare Fastify',
  nest: 'bare Nest',
  service: 'service',
};

/**
 * --api-floors: per method, each server's req/s and CPU per request in every
 * run, its ratios to the raw server's in the same run, and their medians.
 */
function apiFloors(runs) {
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  const floors = {};
  for (const op of ['get', 'delete']) {
    floors[op] = {};
    for (const name of Object.keys(API_SERVERS)) {
      const each = runs.map((r) => {
        const raw = r[op].baseline;
        const s = r[op].floors[name] ?? r[op][name];
        return {
          req_per_s: s.req_per_s,
          cpu_us_per_req: s.cpu_us_per_req,
          p99_ms: s.p99_ms,
          ratio: round(s.req_per_s / raw.req_per_s, 3),
          cpu_ratio: round(s.cpu_us_per_req / raw.cpu_us_per_req, 3),
        };
      });
      floors[op][name] = {
        ratio: median(each.map((r) => r.ratio)),
        cpu_us_per_req: median(each.map((r) => r.cpu_us_per_req)),
        cpu_ratio: median(each.map((r) => r.cpu_ratio)),
        runs: each,
      };
    }
  }
  return floors;
}

/**
 * Where a request's share of the machine went, per method and server (the run
 * of median ratio): the server's CPU in user space and in the kernel,
 * autocannon's, the rest of the busy time (the database's backends, the
 * kernel's interrupts), and idle time, in µs summed over the cores. They add
 * up to cores / req/s, so the req/s ratio is the ratio of their sums, and the
 * service's row minus the raw server's says which part makes the difference.
 */
function apiCpuTable(api) {
  const md = (cells) => `| ${cells.join(' | ')} |`;
  const lines = [
    md([
      'api: µs per request',
      'server, user',
      'server, kernel',
      'autocannon',
      'database and the rest',
      'idle',
      'sum (cores / req/s)',
    ]),
    md(['---', '---', '---', '---', '---', '---', '---']),
  ];
  for (const op of ['get', 'delete']) {
    const sides = { service: api[op].service, baseline: api[op].baseline, ...(api[op].floors ?? {}) };
    for (const [name, s] of Object.entries(sides)) {
      const rest = s.machine_busy_us_per_req - s.cpu_us_per_req - s.client_cpu_us_per_req;
      lines.push(
        md([
          `${op.toUpperCase()} ${API_SERVERS[name]}`,
          s.cpu_user_us_per_req,
          s.cpu_system_us_per_req,
          s.client_cpu_us_per_req,
          round(rest),
          s.machine_idle_us_per_req,
          round(s.machine_busy_us_per_req + s.machine_idle_us_per_req),
        ]),
      );
    }
  }
  return lines.join('\n');
}

function floorsTable(floors) {
  const md = (cells) => `| ${cells.join(' | ')} |`;
  const lines = [
    md([
      'api floors',
      'req/s (runs)',
      'ratio to raw: median (runs)',
      'CPU µs/req: median (runs)',
      'CPU ratio: median (runs)',
    ]),
    md(['---', '---', '---', '---', '---']),
  ];
  for (const [op, servers] of Object.entries(floors)) {
    for (const [name, f] of Object.entries(servers)) {
      const runs = (field) => f.runs.map((r) => r[field]).join(', ');
      lines.push(
        md([
          `${op.toUpperCase()} ${API_SERVERS[name]}`,
          runs('req_per_s'),
          `${f.ratio} (${runs('ratio')})`,
          `${f.cpu_us_per_req} (${runs('cpu_us_per_req')})`,
          `${f.cpu_ratio} (${runs('cpu_ratio')})`,
        ]),
      );
    }
  }
  return lines.join('\n');
}

/** The targets of the issue, as ratios and bounds read from one run. */
function targets(r) {
  const t = [];
  const add = (name, value, op, bound) =>
    t.push({ name, value, target: `${op} ${bound}`, pass: op === '>=' ? value >= bound : value <= bound });
  if (r.engine) {
    add('engine / SQL-only ceiling', r.engine.ratio_vs_sql, '>=', 0.85);
    add('engine / BullMQ', r.engine.ratio_vs_bullmq, '>=', 2);
  }
  if (r.workers)
    add(`engine: ${r.workers.counts[1]} worker processes / ${r.workers.counts[0]}`, r.workers.ratio, '>=', 1);
  if (r.ingest) {
    add('ingest / raw COPY', r.ingest.ratio_vs_copy, '>=', 0.7);
    add('ingest: API peak RSS (MB)', r.ingest.api_peak_rss_mb, '<=', 300);
  }
  if (r.api) {
    for (const op of ['get', 'delete']) {
      const a = r.api[op];
      // Medians of the runs (--api-runs). p99 relative to the raw server's in the same run: at 64
      // connections on two cores no server meets an absolute p99 of a few ms (bench/README.md, "Misses").
      add(`api ${op.toUpperCase()} / raw baseline (req/s)`, a.ratio, '>=', 0.9);
      add(`api ${op.toUpperCase()} p99 / raw p99`, a.p99_ratio, '<=', 1.25);
    }
  }
  if (r.list) add('list p99 per page (ms)', r.list.p99_ms, '<=', 20);
  if (r.export) {
    add('export NDJSON / raw COPY', r.export.ndjson.ratio_vs_copy, '>=', 0.7);
    add('export CSV / raw COPY', r.export.csv.ratio_vs_copy, '>=', 0.7);
    add('export: API peak RSS (MB)', r.export.api_peak_rss_mb, '<=', 200);
  }
  if (r.pages) {
    for (const [name, c] of Object.entries(r.pages.cases)) {
      // A page of the largest rows stays within a few MiB, and so does the API's memory for it.
      add(`pages, ${name}: page (MiB)`, c.service.page_mib, '<=', 4.5);
    }
  }
  if (r.bigjob) {
    const b = r.bigjob;
    add('bigjob upload / raw COPY', b.upload_ratio_vs_copy, '>=', 0.7);
    add('bigjob cancel answered in (ms)', b.cancel_ms, '<=', 100);
    add('bigjob cancel / cancel of a 10,000-target job', b.cancel_ratio_vs_small, '<=', 1.5);
    for (const [status, f] of Object.entries(b.filters))
      add(`bigjob items first page, status=${status} (ms)`, f.first_page_ms, '<=', 50);
    add('bigjob purge / raw batched DELETE', b.purge_ratio_vs_raw_delete, '>=', 0.5);
  }
  return t;
}

function table(r, checks) {
  const n = (x) => (typeof x === 'number' ? x.toLocaleString('en-US') : String(x));
  const rows = [['benchmark', 'service', 'baseline', 'ratio']];
  if (r.engine) {
    const e = r.engine;
    rows.push([
      `engine: ${n(e.items)} noop items, ${e.worker_processes} worker process(es)`,
      `${n(e.engine_items_per_s)} items/s, worker CPU ${e.engine_worker_cpu_us_per_item} µs/item`,
      `SQL-only ${n(e.sql_ceiling_items_per_s)} items/s`,
      `${e.ratio_vs_sql}`,
    ]);
    const tried = Object.keys(e.bullmq_jobs_per_s_by_concurrency ?? {});
    const at =
      tried.length > 1 ? ` (concurrency ${e.bullmq_concurrency}, fastest of ${tried.join(', ')})` : '';
    rows.push(['', '', `BullMQ ${n(e.bullmq_jobs_per_s)} jobs/s${at}`, `${e.ratio_vs_bullmq}×`]);
    if (e.pooler_items_per_s !== undefined)
      rows.push([
        '  through PgBouncer (transaction mode)',
        `${n(e.pooler_items_per_s)} items/s`,
        `direct ${n(e.engine_items_per_s)} items/s`,
        `${e.ratio_pooler_vs_direct}`,
      ]);
  }
  if (r.workers) {
    const w = r.workers;
    rows.push([
      `engine: ${n(w.items)} noop items, ${w.counts[1]} worker processes against ${w.counts[0]}`,
      `${n(w.items_per_s[1])} items/s, worker CPU ${w.worker_cpu_us_per_item[1]} µs/item (start-up left out); machine ${w.machine_busy_us_per_item[1]} busy, ${w.machine_idle_us_per_item[1]} idle µs/item`,
      `${n(w.items_per_s[0])} items/s, worker CPU ${w.worker_cpu_us_per_item[0]} µs/item; machine ${w.machine_busy_us_per_item[0]} busy, ${w.machine_idle_us_per_item[0]} idle µs/item`,
      `${w.ratio}`,
    ]);
  }
  if (r.ingest) {
    const g = r.ingest;
    rows.push([
      `ingest: ${n(g.targets)} targets, NDJSON`,
      `${n(g.api_targets_per_s)} targets/s, peak RSS ${g.api_peak_rss_mb} MB`,
      `raw COPY ${n(g.raw_copy_rows_per_s)} rows/s`,
      `${g.ratio_vs_copy}`,
    ]);
  }
  if (r.api) {
    for (const op of ['get', 'delete']) {
      const a = r.api[op];
      rows.push([
        `api: ${op.toUpperCase()} /jobs/{id}, ${r.api.connections} connections`,
        `${n(a.service.req_per_s)} req/s, p50 ${a.service.p50_ms} ms, p99 ${a.service.p99_ms} ms`,
        `${n(a.baseline.req_per_s)} req/s, p50 ${a.baseline.p50_ms} ms, p99 ${a.baseline.p99_ms} ms`,
        a.runs.length > 1 ? `${a.ratio} (runs: ${a.runs.map((x) => x.ratio).join(', ')})` : `${a.ratio}`,
      ]);
    }
  }
  if (r.list) {
    const l = r.list;
    rows.push([
      `list: ${n(l.pages)} pages over ${n(l.jobs)} jobs of one owner`,
      `p50 ${l.p50_ms} ms, p99 ${l.p99_ms} ms, max ${l.max_ms} ms`,
      '-',
      '-',
    ]);
  }
  if (r.pages) {
    for (const [name, c] of Object.entries(r.pages.cases)) {
      const s = c.service;
      rows.push([
        `pages: GET ?limit=${r.pages.limit}, ${name}`,
        `p50 ${s.p50_ms} ms, ${s.rows_per_page} rows, ${s.page_mib} MiB/page, API peak RSS ${s.api_peak_rss_mb} MB`,
        `unbudgeted statement p50 ${c.raw_statement.p50_ms} ms, ${c.raw_statement.read_mib} MiB read`,
        `${c.ratio}`,
      ]);
    }
  }
  if (r.bigjob) {
    const b = r.bigjob;
    rows.push([
      `bigjob: upload of ${n(b.targets)} targets, NDJSON`,
      `${n(b.upload_targets_per_s)} targets/s (${b.upload_seconds} s), peak RSS ${b.api_peak_rss_mb} MB`,
      `raw COPY ${n(b.raw_copy_rows_per_s)} rows/s`,
      `${b.upload_ratio_vs_copy}`,
    ]);
    rows.push([
      `bigjob: cancel with ${n(b.targets)} items pending`,
      `answered in ${b.cancel_ms} ms (${b.cancel_answered_status}), cancelled after ${b.cancelled_after_s} s`,
      `cancel of a 10,000-target job ${b.small_cancel_ms} ms`,
      `${b.cancel_ratio_vs_small}`,
    ]);
    for (const [status, f] of Object.entries(b.filters)) {
      rows.push([
        `bigjob: GET /items?status=${status} on ${n(b.targets)} items`,
        `first page ${f.first_page_ms} ms, next page ${f.next_page_ms ?? '-'} ms`,
        '-',
        '-',
      ]);
    }
    rows.push([
      `bigjob: purge of ${n(b.targets)} items`,
      `${n(b.purge_rows_per_s)} rows/s (${b.purge_seconds} s)`,
      `raw batched DELETE ${n(b.raw_delete_rows_per_s)} rows/s`,
      `${b.purge_ratio_vs_raw_delete}`,
    ]);
  }
  if (r.export) {
    const x = r.export;
    for (const format of ['ndjson', 'csv']) {
      rows.push([
        `export: ${n(x.items)} items as ${format.toUpperCase()}`,
        `${n(x[format].rows_per_s)} rows/s (${x[format].mib} MiB), API peak RSS ${x.api_peak_rss_mb} MB`,
        `raw COPY ${n(x[format].raw_copy_rows_per_s)} rows/s (plain columns ${n(x.plain_columns_copy_rows_per_s)})`,
        `${x[format].ratio_vs_copy} (${x[format].ratio_vs_plain_columns})`,
      ]);
    }
  }
  if (r.dashboard) {
    const d = r.dashboard;
    for (const [name, p] of [
      ['idle (no page)', d.idle],
      [`${d.running_jobs} SSE streams`, d.sse],
      ['one poll a second', d.poll],
    ]) {
      rows.push([
        `dashboard: ${d.running_jobs} running jobs, ${name}`,
        `${p.requests_per_s} req/s, ${p.statements_per_s} statements/s, API CPU ${p.api_cpu_ms_per_s} ms/s, ${p.kbytes_per_s} kB/s`,
        '-',
        '-',
      ]);
    }
  }
  const md = (cells) => `| ${cells.join(' | ')} |`;
  const lines = [md(rows[0]), md(rows[0].map(() => '---')), ...rows.slice(1).map(md)];
  lines.push('', md(['target', 'measured', 'wanted', 'result']), md(['---', '---', '---', '---']));
  for (const c of checks) lines.push(md([c.name, String(c.value), c.target, c.pass ? 'pass' : 'MISS']));
  return lines.join('\n');
}

/** `url` (a pooler's) on the database of `dbUrl`, keeping its query (`?pooler=transaction`). */
function onDatabase(url, dbUrl) {
  const u = new URL(url);
  u.pathname = new URL(dbUrl).pathname;
  return u.toString();
}

async function main() {
  if (flag('soak')) {
    await soak({ workers, log, profile });
    return;
  }
  log('building the service');
  await build();
  const db = await openDatabase(log);
  const results = {};
  const loadBefore = loadavg();
  try {
    // Migrations: the first API start applies them.
    const api = await startApi(db.url);
    await api.stop();
    if (only.includes('engine')) {
      results.engine = await engineBench({
        url: db.url,
        items: SIZES.items,
        workers,
        sqlClients: Number(option('sql-clients') ?? 2),
        bullmqConcurrency: (option('bullmq-concurrency') ?? '100').split(',').map(Number),
        baselines: option('engine-baselines')?.split(',') ?? ['sql', 'bullmq'],
        statements: flag('statements'),
        poolerUrl: poolerUrl && onDatabase(poolerUrl, db.url),
        profile,
        log,
      });
    }
    // Two worker processes on one job against one (--workers-ab=1,2): more workers must not be slower.
    if (only.includes('workers'))
      results.workers = await workersBench({
        url: db.url,
        items: SIZES.items,
        counts: (option('workers-ab') ?? '1,2').split(',').map(Number),
        statements: flag('statements'),
        profile,
        log,
      });
    if (only.includes('ingest'))
      results.ingest = await ingestBench({ url: db.url, targets: SIZES.targets, profile, log });
    if (only.includes('api')) {
      const runs = [];
      for (let i = 0; i < SIZES.apiRuns; i++) {
        runs.push(
          await apiBench({
            url: db.url,
            seconds: SIZES.seconds,
            deletesPerSide: SIZES.deletes,
            floors: flag('api-floors'),
            profile,
            log,
          }),
        );
      }
      results.api = medianApiRun(runs);
    }
    if (only.includes('list'))
      results.list = await listBench({ url: db.url, jobs: SIZES.listJobs, profile, log });
    // The jobs list's live progress: N event streams or one poll, N running jobs (a handful, as a page shows).
    if (only.includes('dashboard'))
      results.dashboard = await dashboardBench({
        url: db.url,
        jobs: quick ? 3 : 8,
        seconds: quick ? 3 : 20,
        quick,
        log,
      });
    if (only.includes('export'))
      results.export = await exportBench({ url: db.url, items: SIZES.items, profile, log });
    if (only.includes('pages')) results.pages = await pagesBench({ url: db.url, quick, profile, log });
    if (only.includes('bigjob') && SIZES.bigjobTargets > 0)
      results.bigjob = await bigjobBench({ url: db.url, targets: SIZES.bigjobTargets, profile, log });
  } finally {
    await db.drop();
  }
  const checks = targets(results);
  const cpu = cpus();
  const report = {
    mode: quick ? 'quick' : 'full',
    finished_at: new Date().toISOString(),
    seconds: round((Date.now() - started) / 1000),
    machine: {
      cores: cpu.length,
      cpu: cpu[0]?.model,
      ram_gib: round(totalmem() / 2 ** 30, 1),
      node: process.version,
      postgresql: db.version,
      database: db.embedded ? `embedded (flags: ${EMBEDDED_FLAGS.join(' ')})` : 'DATABASE_URL server',
      load_average_before: loadBefore.map((x) => round(x, 2)),
      load_average_after: loadavg().map((x) => round(x, 2)),
    },
    results,
    targets: checks,
    all_targets_met: checks.every((c) => c.pass),
  };
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = quick ? 'quick.json' : only.length === ALL.length ? 'latest.json' : 'partial.json';
  writeFileSync(join(dir, file), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\n${table(results, checks)}\n`);
  if (results.api) console.log(`${apiCpuTable(results.api)}\n`);
  if (results.api?.floors) console.log(`${floorsTable(results.api.floors)}\n`);
  console.log(
    `${report.machine.cores} cores, ${report.machine.ram_gib} GiB, Node ${report.machine.node}, PostgreSQL ${report.machine.postgresql} (${db.embedded ? 'embedded' : 'DATABASE_URL'}); load ${report.machine.load_average_before.join(' ')} → ${report.machine.load_average_after.join(' ')}`,
  );
  log(`wrote bench/results/${file}`);
  // A full run reports misses in the table and the JSON; neither mode fails on them.
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
