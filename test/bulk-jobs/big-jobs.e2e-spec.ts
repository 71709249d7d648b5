import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { BulkJobsPurger } from '../../src/bulk-jobs/bulk-jobs-purger';
import { BulkJobsService } from '../../src/bulk-jobs/bulk-jobs.service';
import { poolerMode } from '../../src/database/pooler';
import type { ItemStatus } from '../../src/jobs/job-status';
import { JOBS, itemListBody, jobBody } from '../support/api';
import type { TestApp } from '../support/app';
import {
  createEngineDatabase,
  createEngineTestApp,
  describeJob,
  itemStatusCounts,
  jobCounters,
  killAll,
  startWorker,
  waitFor,
  waitForJob,
  type EngineDatabase,
  type WorkerProcess,
} from '../support/engine';
import { insertJob, jobRow } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';
import { sleep } from '../support/wait';

/**
 * Jobs of a size CI can afford (200,000 items), with the batch sizes turned
 * down so that cancel, purge and the listing really run in many batches;
 * bench/bigjob.mjs carries the advertised 10,000,000.
 */
const BIG = 200_000;
const CANCEL_BATCH = 5000;
const PURGE_BATCH = 7000;
const DAY_MS = 86_400_000;
/** Node checks requestTimeout every 30 s: an upload of 35 s outlasts this one whatever the check's phase. */
const REQUEST_TIMEOUT_MS = 2000;

const count = async (t: TestApp, sql: string, params: unknown[]) =>
  (await t.db.query<{ n: number }[]>(sql, params))[0].n;
const itemCount = (t: TestApp, id: string) =>
  count(t, 'SELECT count(*)::int AS n FROM bulk_job_items WHERE job_id = $1', [id]);

describe('cancel at size, under workers that claim and record', () => {
  let db: EngineDatabase;
  let t: TestApp;
  let workers: WorkerProcess[] = [];
  const env = {
    BULK_JOBS_CANCEL_BATCH_SIZE: String(CANCEL_BATCH),
    WORKER_BATCH_SIZE: '500',
    WORKER_POLL_INTERVAL_MS: '50',
    BULK_JOBS_MAX_ACTIVE_PER_OWNER: '0',
  };

  before(async () => {
    db = await createEngineDatabase();
    t = await createEngineTestApp(db.url, { worker: true, env });
    workers = [startWorker(db.url, env)];
  });
  after(async () => {
    await killAll(workers);
    await t?.close();
    await db?.drop();
  });

  const cancel = (owner: string, id: string) =>
    t
      .http()
      .post(`${JOBS}/${id}/cancel`)
      .set(bearer(tokenFor(owner)));

  /** The job's counters add up, and agree with its items: each item counted once. */
  async function expectSettled(id: string): Promise<void> {
    const c = await waitForJob(t.db, id, ['cancelled'], 120_000);
    const items = await itemStatusCounts(t.db, id);
    expect(c.running_items).toBe(0);
    expect(c.succeeded_items + c.failed_items + c.skipped_items).toBe(c.total_items);
    expect({
      succeeded: items.succeeded ?? 0,
      failed: items.failed ?? 0,
      skipped: items.skipped ?? 0,
    }).toEqual({
      succeeded: c.succeeded_items,
      failed: c.failed_items,
      skipped: c.skipped_items,
    });
    expect(items.pending ?? 0).toBe(0);
    expect(items.running ?? 0).toBe(0);
  }

  it(`answers a cancel of ${BIG} items with one batch skipped, and the workers skip the rest`, async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'pending', items: BIG, action: 'noop' });
    await waitFor(
      'the workers to record some items',
      async () => (await jobCounters(t.db, id)).succeeded_items > 0,
      {
        describeState: () => describeJob(t.db, id),
      },
    );
    const res = await cancel(owner, id);
    expect(res.status).toBe(200);
    const answered = jobBody(res);
    expect(answered.status).toBe('cancelling');
    // The request skipped one batch (the workers' sweep may have skipped one beside it); the rest is
    // left to the sweep, many batches more.
    expect(answered.skipped_items).toBeGreaterThanOrEqual(CANCEL_BATCH);
    const pendingThen = BIG - answered.succeeded_items - answered.failed_items - answered.skipped_items;
    expect(pendingThen).toBeGreaterThan(3 * CANCEL_BATCH);
    await expectSettled(id);
    expect((await jobCounters(t.db, id)).skipped_items).toBeGreaterThan(3 * CANCEL_BATCH);
    // A second cancel of a cancelled job is a 409 naming its status.
    expectProblem(await cancel(owner, id), 409, { type: '/problems/job-not-cancellable' });
  });

  it('goes back for pending items that its sweep passed while another transaction held them', async () => {
    const owner = newOwner();
    // An action no worker runs: only the cancel and its sweep touch these items.
    const id = await insertJob(t.db, { owner, status: 'pending', items: 40_000, action: 'not-run-here' });
    const held = [10, 25_000];
    const locker = new Client({ connectionString: db.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM bulk_job_items WHERE job_id = $1 AND seq = ANY($2) FOR UPDATE', [
        id,
        held,
      ]);
      expect((await cancel(owner, id)).status).toBe(200);
      // The sweep passes both held items (SKIP LOCKED) and reaches the job's last seq.
      await waitFor('the sweep to skip every item but the held ones', async () => {
        const c = await jobCounters(t.db, id);
        return c.skipped_items === c.total_items - held.length;
      });
      await sleep(300);
      expect((await jobCounters(t.db, id)).status).toBe('cancelling');
      await locker.query('ROLLBACK');
    } finally {
      await locker.end();
    }
    // Let go, the two items are still pending behind the sweep's cursor: it must come back for them.
    await expectSettled(id);
    expect((await jobCounters(t.db, id)).skipped_items).toBe(40_000);
  });

  it('keeps every count exact when cancels race claims and recordings, many times over', async () => {
    const owner = newOwner();
    for (let round = 0; round < 8; round++) {
      const id = await insertJob(t.db, { owner, status: 'pending', items: 20_000, action: 'noop' });
      // Cancel at a different moment each round: before any claim, and while items are in flight.
      if (round > 0) {
        await waitFor('a claim', async () => (await jobCounters(t.db, id)).status !== 'pending', {
          intervalMs: 5 * round,
        });
      }
      const [a, b] = await Promise.all([cancel(owner, id), cancel(owner, id)]);
      expect([a.status, b.status]).toEqual([200, 200]);
      await expectSettled(id);
    }
  });
});

describe('purge, retention, filters and uploads at size', () => {
  let db: EngineDatabase;
  let t: TestApp;

  before(async () => {
    db = await createEngineDatabase();
    t = await createEngineTestApp(db.url, {
      env: { BULK_JOBS_PURGE_BATCH_SIZE: String(PURGE_BATCH), BULK_JOBS_FINISHED_RETENTION_DAYS: '1' },
    });
  });
  after(async () => {
    await t?.close();
    await db?.drop();
  });

  it(`purges ${BIG} items in batches, and finishes a purge cut short between batches`, async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, {
      owner,
      status: 'completed',
      items: BIG,
      deletedAt: new Date(Date.now() - 31 * DAY_MS),
      purgeAt: new Date(Date.now() - 60_000),
    });
    // Each DELETE statement on the items is counted; the fourth fails, as a crash between batches would.
    await t.db.query(`CREATE SEQUENCE purge_batches`);
    await t.db.query(`
      CREATE FUNCTION count_purge_batch() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('purge_batches') = 4 AND current_setting('test.allow_purge', true) IS DISTINCT FROM 'on' THEN
          RAISE EXCEPTION 'the purge stops here';
        END IF;
        RETURN NULL;
      END $$`);
    await t.db.query(`
      CREATE TRIGGER count_purge_batch AFTER DELETE ON bulk_job_items
      FOR EACH STATEMENT EXECUTE FUNCTION count_purge_batch()`);
    try {
      const service = t.app.get(BulkJobsService);
      await expect(service.purgeExpired()).rejects.toThrow();
      // Three batches went; the job is still there, past its purge time, and hidden from clients.
      expect(await itemCount(t, id)).toBe(BIG - 3 * PURGE_BATCH);
      expect(await jobRow(t.db, id)).toMatchObject({ status: 'completed' });
      const res = await t
        .http()
        .get(`${JOBS}/${id}`)
        .set(bearer(tokenFor(owner)));
      expectProblem(res, 404, { type: '/problems/job-not-found' });

      expect(await service.purgeExpired()).toBe(1);
      expect(await itemCount(t, id)).toBe(0);
      expect(await jobRow(t.db, id)).toBeUndefined();
      const statements = await count(t, `SELECT last_value::int AS n FROM purge_batches`, []);
      // Every batch its own statement: at least BIG / PURGE_BATCH of them.
      expect(statements).toBeGreaterThanOrEqual(Math.ceil(BIG / PURGE_BATCH));
    } finally {
      await t.db.query(`DROP TRIGGER count_purge_batch ON bulk_job_items`);
      await t.db.query(`DROP FUNCTION count_purge_batch()`);
      await t.db.query(`DROP SEQUENCE purge_batches`);
    }
  });

  it('purges a job whose seqs have gaps wider than a batch', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, {
      owner,
      status: 'completed',
      items: 5 * PURGE_BATCH,
      deletedAt: new Date(Date.now() - 31 * DAY_MS),
      purgeAt: new Date(Date.now() - 60_000),
    });
    // Left: the first 10 items, one in the middle, and the last 10, with gaps of several batches between.
    await t.db.query(
      'DELETE FROM bulk_job_items WHERE job_id = $1 AND seq >= 10 AND seq < $2 AND seq <> $3',
      [id, 5 * PURGE_BATCH - 10, Math.floor(2.5 * PURGE_BATCH)],
    );
    expect(await itemCount(t, id)).toBe(21);
    expect(await t.app.get(BulkJobsService).purgeExpired()).toBe(1);
    expect(await itemCount(t, id)).toBe(0);
    expect(await jobRow(t.db, id)).toBeUndefined();
  });

  it('purges finished jobs nobody deleted after BULK_JOBS_FINISHED_RETENTION_DAYS, and nothing else', async () => {
    const owner = newOwner();
    const old = (status: 'completed' | 'failed' | 'cancelled') =>
      insertJob(t.db, { owner, status, items: 5, createdAt: new Date(Date.now() - 2 * DAY_MS) });
    const expired = [await old('completed'), await old('failed'), await old('cancelled')];
    const recent = await insertJob(t.db, { owner, status: 'completed', items: 5 });
    const running = await insertJob(t.db, {
      owner,
      status: 'running',
      items: 5,
      createdAt: new Date(Date.now() - 3 * DAY_MS),
    });
    const deleted = await insertJob(t.db, {
      owner,
      status: 'completed',
      createdAt: new Date(Date.now() - 2 * DAY_MS),
      deletedAt: new Date(),
      purgeAt: new Date(Date.now() + DAY_MS),
    });

    await t.app.get(BulkJobsPurger).tick();

    for (const id of expired) {
      expect(await jobRow(t.db, id)).toBeUndefined();
      expect(await itemCount(t, id)).toBe(0);
    }
    expect(await jobRow(t.db, recent)).toMatchObject({ status: 'completed', deleted_at: null });
    expect(await jobRow(t.db, running)).toMatchObject({ status: 'running', deleted_at: null });
    // A deleted job keeps its own retention (BULK_JOBS_RETENTION_DAYS): it can still be restored.
    expect(await jobRow(t.db, deleted)).toMatchObject({ deleted_at: expect.any(Date) });
  });

  it(`lists each item status of a ${BIG}-item job from its own index, page after page by cursor`, async () => {
    const owner = newOwner();
    const statusOf = (seq: number): ItemStatus => {
      if (seq >= BIG - 100) return 'running';
      if (seq >= BIG * 0.9) return 'pending';
      if (seq >= BIG * 0.6) return 'skipped';
      return seq % 1000 === 999 ? 'failed' : 'succeeded';
    };
    const itemStatuses = Array.from({ length: BIG }, (_, seq) => statusOf(seq));
    const id = await insertJob(t.db, { owner, status: 'running', itemStatuses });
    await t.db.query('ANALYZE bulk_job_items');

    for (const status of ['succeeded', 'failed', 'skipped', 'pending', 'running'] as const) {
      const expected = itemStatuses.flatMap((s, seq) => (s === status ? [seq] : []));
      const seen: number[] = [];
      let cursor: string | null = null;
      for (let page = 0; page < 3; page++) {
        const query: Record<string, string> = { status, limit: '100', ...(cursor ? { cursor } : {}) };
        const res = await t
          .http()
          .get(`${JOBS}/${id}/items`)
          .query(query)
          .set(bearer(tokenFor(owner)));
        expect(res.status).toBe(200);
        const body = itemListBody(res);
        expect(body.items.every((i) => i.status === status)).toBe(true);
        seen.push(...body.items.map((i) => i.seq));
        cursor = body.next_cursor;
        if (!cursor) break;
      }
      expect(seen).toEqual(expected.slice(0, Math.min(300, expected.length)));

      // Any later page, deep in the job, comes from the status's index, not a walk over the job's items.
      const [{ 'QUERY PLAN': plan }] = await t.db.query<{ 'QUERY PLAN': unknown }[]>(
        `EXPLAIN (FORMAT JSON) SELECT seq FROM bulk_job_items
         WHERE job_id = $1 AND status = '${status}' AND seq > $2 ORDER BY seq LIMIT 100`,
        [id, expected[Math.floor(expected.length / 2)]],
      );
      const indexes = JSON.stringify(plan).match(/"Index Name":"([a-z_]+)"/g) ?? [];
      expect({ status, indexes }).toEqual({
        status,
        indexes: [`"Index Name":"bulk_job_items_${status === 'running' ? 'running_seq' : status}_idx"`],
      });
    }
  });
});

describe('uploads longer than the statement timeout', () => {
  let db: EngineDatabase;
  let t: TestApp;

  before(async () => {
    db = await createEngineDatabase();
    t = await createEngineTestApp(db.url, {
      env: { DATABASE_STATEMENT_TIMEOUT_MS: '1000', REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) },
    });
    // A target named slow-… takes 1.5 s to store: longer than any statement may take here.
    await t.db.query(`
      CREATE FUNCTION slow_target() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.target_id LIKE 'slow-%' THEN PERFORM pg_sleep(1.5); END IF;
        IF NEW.target_id = 'boom' THEN RAISE EXCEPTION 'the disk is full, say'; END IF;
        RETURN NEW;
      END $$`);
    await t.db.query(`
      CREATE TRIGGER slow_target BEFORE INSERT ON bulk_job_items
      FOR EACH ROW EXECUTE FUNCTION slow_target()`);
  });
  after(async () => {
    await t?.close();
    await db?.drop();
  });

  const ndjson = (targets: string[]) =>
    [JSON.stringify({ action: 'noop' }), ...targets.map((id) => JSON.stringify(id))].join('\n') + '\n';
  const upload = (owner: string, body: string) =>
    t
      .http()
      .post(JOBS)
      .set(bearer(tokenFor(owner)))
      .set('Content-Type', 'application/x-ndjson')
      .send(body);
  const jobsOf = (owner: string) =>
    count(t, 'SELECT count(*)::int AS n FROM bulk_jobs WHERE owner = $1', [owner]);

  it(`accepts a streamed create of ${BIG} targets whose COPY outlasts statement_timeout`, async () => {
    const owner = newOwner();
    const targets = Array.from({ length: BIG }, (_, i) => (i === 1000 ? 'slow-1' : `t-${i}`));
    const res = await upload(owner, ndjson(targets));
    expect(res.status).toBe(202);
    const job = jobBody(res);
    expect(job.total_items).toBe(BIG);
    // Counting 200,000 rows could itself outlast this app's 1 s statement timeout on a busy machine.
    const stored = await count(
      t,
      'SELECT count(*)::int AS n FROM bulk_job_items WHERE job_id = $1 AND seq = ANY($2::int[])',
      [job.id, [0, 1000, BIG - 1]],
    );
    expect(stored).toBe(3);

    // The same slow target in a JSON create is cut by the statement timeout: the clock is on.
    // Behind a pooler in transaction mode the pool sends no statement_timeout (the role's or the
    // pooler's applies, README "Behind a connection pooler"), so this app's 1 s is not the clock.
    const json = await t
      .http()
      .post(JOBS)
      .set(bearer(tokenFor(owner)))
      .send({ action: 'noop', targets: ['slow-json'] });
    if (poolerMode(process.env.DATABASE_URL) === 'transaction') expect(json.status).toBe(202);
    else expect(json.status).toBeGreaterThanOrEqual(500);
  });

  it('accepts an upload that takes longer than REQUEST_TIMEOUT_MS, its client pausing under the idle timeout', async () => {
    const owner = newOwner();
    const req = t
      .http()
      .post(JOBS)
      .set(bearer(tokenFor(owner)))
      .set('Content-Type', 'application/x-ndjson');
    void req.write(`${JSON.stringify({ action: 'noop' })}\n`);
    for (let i = 0; i < 35; i++) {
      await sleep(1000);
      void req.write(`"paused-${i}"\n`);
    }
    const res = await req;
    expect(res.status).toBe(202);
    expect(jobBody(res).total_items).toBe(35);
  });

  it('answers a database error in the middle of an upload with a 500 problem, and stores nothing', async () => {
    const owner = newOwner();
    const targets = Array.from({ length: BIG }, (_, i) => (i === BIG / 2 ? 'boom' : `t-${i}`));
    const res = await upload(owner, ndjson(targets));
    expectProblem(res, 500, { type: 'about:blank' });
    expect(res.text).not.toMatch(/disk is full|COPY|bulk_job_items/);
    expect(await jobsOf(owner)).toBe(0);
  });
});
