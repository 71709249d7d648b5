#!/usr/bin/env node
// EXPLAIN (ANALYZE, BUFFERS) of the engine's hot statements, as a worker runs them,
// part-way through a noop job: each statement's custom plan (what an unnamed
// statement gets) and its generic plan (what a prepared statement may settle on).
//
//   DATABASE_URL=postgres://…/<a migrated database> node bench/explain-engine.mjs [items] [done]
//
// Needs `npm run bench -- --quick` (or any bench run) to have compiled src into
// .bench-build/. It empties the job tables of that database: point it at a
// database of its own. Every EXPLAINed statement runs in a transaction that is
// rolled back, so each one sees the same state.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import process from 'node:process';
import { insertJob } from './engine.mjs';
import { ROOT, withClient } from './support.mjs';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL: a migrated database of its own');
const items = Number(process.argv[2] ?? 300_000);
const done = Number(process.argv[3] ?? 150_000);
const PART = 1000;
const sqlModule = await import(pathToFileURL(join(ROOT, '.bench-build', 'engine', 'engine.sql.js')).href);
const { CLAIM_NEXT, RECORD_FINAL_RESULTS, RECORD_FINAL_RANGE, EXTEND_LEASES } = sqlModule;
const worker = 'explain-worker';
const leaseMs = 30_000;

const literal = (values) => `{${values.join(',')}}`;
const recordParams = (jobId, seqs) => ({
  worker,
  jobIds: [jobId],
  jobIndexes: literal(seqs.map(() => 1)),
  seqs: literal(seqs),
  outcomes: literal(seqs.map(() => 'succeeded')),
  results: null,
  errors: null,
  delays: null,
});
const claimParams = { actions: ['noop'], avoid: [], worker, leaseMs, count: PART, fromJob: null, fromSeq: 0 };

/** A parameter's value as a SQL literal (arrays as array literals). */
function sqlValue(c, v) {
  if (v === null) return 'NULL';
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v))
    return c.escapeLiteral(`{${v.map((x) => (x === null ? 'NULL' : JSON.stringify(String(x)))).join(',')}}`);
  return c.escapeLiteral(String(v));
}

/** The plan's top lines and its totals. */
function summary(rows) {
  const lines = rows.map((r) => r['QUERY PLAN']);
  const keep = lines.filter(
    (l) => /Execution Time|Planning Time|Planning:|Buffers:/.test(l) || !l.startsWith(' '),
  );
  return [
    lines[0],
    ...lines.filter((l) => /Index Scan|Seq Scan|Hash Join|Nested Loop|Bitmap/.test(l)).slice(0, 8),
    ...keep.slice(1),
  ].join('\n');
}

async function explain(c, label, statement, params) {
  for (const mode of ['auto', 'force_generic_plan']) {
    await c.query('BEGIN');
    try {
      await c.query(`SET LOCAL plan_cache_mode = ${mode}`);
      const name = `explain_${Math.random().toString(36).slice(2, 8)}`;
      await c.query(`PREPARE ${name} AS ${statement.text}`);
      // EXECUTE takes no bound parameters: the values as literals.
      const args = statement.values(params).map((v) => sqlValue(c, v));
      const res = await c.query(`EXPLAIN (ANALYZE, BUFFERS) EXECUTE ${name}(${args.join(', ')})`);
      console.log(
        `\n--- ${label}, ${mode === 'auto' ? 'custom plan (first execution)' : 'generic plan'}\n${summary(res.rows)}`,
      );
    } finally {
      await c.query('ROLLBACK');
    }
  }
}

await withClient(url, async (c) => {
  if (process.env.EXPLAIN_SETTINGS) await c.query(process.env.EXPLAIN_SETTINGS);
  const jobId = await insertJob(c, items, 'explain', { fresh: true });
  // Run `done` items through as a worker would: claim, record.
  for (let n = 0; n < done; n += PART) {
    const [row] = await CLAIM_NEXT.rows(c, claimParams);
    await RECORD_FINAL_RESULTS.query(c, recordParams(jobId, row.seqs));
  }
  console.log(`job of ${items} items, ${done} done, autovacuum left to run as it does`);
  const [held] = await CLAIM_NEXT.rows(c, claimParams);
  await explain(c, `claim of ${PART} (CLAIM_NEXT)`, CLAIM_NEXT, claimParams);
  await explain(
    c,
    `record of ${PART} (RECORD_FINAL_RESULTS)`,
    RECORD_FINAL_RESULTS,
    recordParams(jobId, held.seqs),
  );
  await explain(c, `record of ${PART} by its seq range (RECORD_FINAL_RANGE)`, RECORD_FINAL_RANGE, {
    ...recordParams(jobId, held.seqs),
    jobId,
    lo: Math.min(...held.seqs),
    hi: Math.max(...held.seqs),
  });
  await explain(c, `lease renewal of ${PART} (EXTEND_LEASES)`, EXTEND_LEASES, {
    worker,
    leaseMs,
    jobIds: [jobId],
    jobIndexes: literal(held.seqs.map(() => 1)),
    seqs: literal(held.seqs),
  });
});
