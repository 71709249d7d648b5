#!/usr/bin/env node
// The worker's own CPU per noop item, without a database: the real WorkerService
// (claim loop, ItemRunner, ResultRecorder, EngineStore.record's parameters, events,
// metrics) over a store whose statements answer after a short timer. Claims come as
// the JSON text a claim's row carries (parsed as the driver would), and every write's
// parameters are serialised as the driver would (pg's prepareValue).
//
//   node bench/engine-noop-path.mjs <compiled src dir> [items] [rounds]
//
// Prints, per round, CPU µs per item, the share of it in garbage collection, and the
// wall time. The compiled src must lie inside the project (its modules resolve from
// node_modules): `.bench-build`, which `npm run bench` makes, by default, or
// `tsc -p tsconfig.build.json --outDir <dir>` with a dir in the project.
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

const require = createRequire(import.meta.url);
const dir = resolve(process.argv[2] ?? '.bench-build');
const total = Number(process.argv[3] ?? 600_000);
const rounds = Number(process.argv[4] ?? 3);
const DB_MS = 3;

require('reflect-metadata');
const { prepareValue } = require('pg/lib/utils');
const { WorkerService } = require(`${dir}/engine/worker.service.js`);
const { EngineStore } = require(`${dir}/engine/engine-store.js`);
const { Metrics } = require(`${dir}/metrics/metrics.js`);
const { Env } = require(`${dir}/config/env.js`);
const { NoopAction } = require(`${dir}/actions/noop.action.js`);

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

async function round(jobId) {
  let claimed = 0;
  let recorded = 0;
  let done;
  const finished = new Promise((r) => (done = r));
  const pool = {
    async query(config, values) {
      for (const v of values ?? config.values) prepareValue(v);
      await sleep(DB_MS);
      return { rows: [{ id: jobId, status: 'running' }], rowCount: 1 };
    },
  };
  const store = Object.create(EngineStore.prototype);
  store.pool = pool;
  store.claim = async (_worker, wanted) => {
    if (claimed >= total) {
      await sleep(DB_MS);
      return { kind: 'idle', waitMs: null };
    }
    const n = Math.min(wanted, total - claimed);
    const seqs = [];
    const targets = [];
    const datas = [];
    const attempts = [];
    for (let i = 0; i < n; i++) {
      seqs.push(claimed + i);
      targets.push(`"target-${claimed + i}"`);
      datas.push('null');
      attempts.push(1);
    }
    claimed += n;
    // What the driver hands over: a row whose json columns it parsed.
    const text = [
      `[${seqs.join(',')}]`,
      `[${targets.join(',')}]`,
      `[${datas.join(',')}]`,
      `[${attempts.join(',')}]`,
    ];
    await sleep(DB_MS);
    const row = {
      id: jobId,
      action: 'noop',
      params: {},
      options: {},
      status: 'running',
      limited: false,
      seqs: JSON.parse(text[0]),
      target_ids: JSON.parse(text[1]),
      datas: JSON.parse(text[2]),
      attempts: JSON.parse(text[3]),
    };
    return { kind: 'claimed', job: row, items: row };
  };
  const record = store.record;
  store.record = async function (worker, items) {
    const jobs = await record.call(this, worker, items);
    recorded += items.length;
    if (recorded >= total) done();
    return jobs;
  };
  store.extendLeases = async () => new Map();
  store.stillLeased = async () => new Map();
  store.sweepExpiredLeases = async () => [];
  store.sweepCancelled = async () => undefined;
  const noop = new NoopAction();
  const registry = { list: () => [noop], get: () => noop };
  const env = new Env();
  const worker = new WorkerService(store, registry, env, new Metrics());
  const gc0 = gcMs;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  worker.onApplicationBootstrap();
  await finished;
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  await worker.stop();
  const cpuUs = cpu.user + cpu.system;
  return {
    cpuUsPerItem: cpuUs / total,
    gcShare: (gcMs - gc0) / (cpuUs / 1000),
    wallS: wall / 1000,
  };
}

// Quiet the worker's log lines.
process.env.LOG_LEVEL = 'error';
const { Logger } = require('@nestjs/common');
Logger.overrideLogger(['error']);

for (let r = 0; r < rounds; r++) {
  const res = await round(`00000000-0000-4000-8000-${String(r).padStart(12, '0')}`);
  console.log(
    `round ${r + 1}: ${res.cpuUsPerItem.toFixed(2)} µs CPU/item, GC ${(res.gcShare * 100).toFixed(1)}% of it, ` +
      `${res.wallS.toFixed(2)} s wall`,
  );
}
process.exit(0);
