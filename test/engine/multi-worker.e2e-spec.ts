import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import type { BulkJobResponseDto } from '../../src/bulk-jobs/dto/bulk-job-response.dto';
import type { TestApp } from '../support/app';
import { createJob } from '../support/api';
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
import { bearer, newOwner, tokenFor } from '../support/tokens';

const BATCH = 200;
const WORKER_ENV = {
  // Renewed every 2 s: a live worker keeps its leases even when the machine is busy.
  WORKER_LEASE_MS: '6000',
  WORKER_SWEEP_INTERVAL_MS: '500',
  WORKER_BATCH_SIZE: String(BATCH),
  WORKER_CONCURRENCY: '20',
  WORKER_POLL_INTERVAL_MS: '100',
};

const targets = (n: number, prefix = 't') => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/**
 * Records in a table of the test's own which workers have held leases on
 * which job: every statement that writes items leaves its lease owners there,
 * so the database, not a sampling test, says who took part.
 */
async function recordLeaseOwners(t: TestApp): Promise<void> {
  await t.db.query(
    `CREATE TABLE test_lease_owners (job_id uuid, lease_owner text, PRIMARY KEY (job_id, lease_owner))`,
  );
  await t.db.query(
    `CREATE FUNCTION test_record_lease_owners() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
       INSERT INTO test_lease_owners
         SELECT DISTINCT job_id, lease_owner FROM written WHERE lease_owner IS NOT NULL
         ON CONFLICT DO NOTHING;
       RETURN NULL;
     END $$`,
  );
  await t.db.query(
    `CREATE TRIGGER test_record_lease_owners AFTER UPDATE ON bulk_job_items
     REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION test_record_lease_owners()`,
  );
}

async function leaseOwners(t: TestApp, jobId: string): Promise<string[]> {
  const rows: { lease_owner: string }[] = await t.db.query(
    'SELECT lease_owner FROM test_lease_owners WHERE job_id = $1 ORDER BY lease_owner',
    [jobId],
  );
  return rows.map((r) => r.lease_owner);
}

/** How many items of the job have been attempted more than once, and with which lease error. */
async function reRuns(
  t: TestApp,
  jobId: string,
): Promise<{ again: number; expired: number; unfinished: number }> {
  const rows: { again: number; expired: number; unfinished: number }[] = await t.db.query(
    `SELECT count(*) FILTER (WHERE attempts > 1)::int AS again,
            count(*) FILTER (WHERE last_error->>'code' = 'LEASE_EXPIRED')::int AS expired,
            count(*) FILTER (WHERE lease_owner IS NOT NULL OR finished_at IS NULL)::int AS unfinished
     FROM bulk_job_items WHERE job_id = $1`,
    [jobId],
  );
  return rows[0];
}

describe('worker processes on one database', () => {
  let db: EngineDatabase;
  let t: TestApp;
  const workers: WorkerProcess[] = [];
  const owner = newOwner();

  before(async () => {
    db = await createEngineDatabase();
    // The API only: the items are run by the worker processes.
    t = await createEngineTestApp(db.url);
    await recordLeaseOwners(t);
    for (let i = 0; i < 3; i++) workers.push(startWorker(db.url, WORKER_ENV));
    await Promise.all(workers.map((w) => w.ready));
  });

  after(async () => {
    await killAll(workers);
    await t?.close();
    await db?.drop();
  });

  it('three workers run a 20,000-item job: every item succeeds exactly once and the counters match', async () => {
    const job = await createJob(t, owner, {
      action: 'simulate',
      params: { delay_ms: 2 },
      targets: targets(20_000),
    });
    const done = await waitFor(
      'the job to complete',
      async () => {
        const c = await jobCounters(t.db, job.id);
        return c.status === 'completed' ? c : undefined;
      },
      {
        timeoutMs: 180_000,
        describeState: async () =>
          `${await describeJob(t.db, job.id)}\n${workers.map((w) => w.output.slice(-15).join('\n')).join('\n')}`,
      },
    );

    expect(done).toEqual({
      status: 'completed',
      total_items: 20_000,
      succeeded_items: 20_000,
      failed_items: 0,
      skipped_items: 0,
      running_items: 0,
    });
    expect(await itemStatusCounts(t.db, job.id)).toEqual({ succeeded: 20_000 });
    // Nothing ran twice: a second attempt would show as attempts = 2.
    const attempts: { attempts: number; n: number }[] = await t.db.query(
      `SELECT attempts, count(*)::int AS n FROM bulk_job_items WHERE job_id = $1 GROUP BY attempts`,
      [job.id],
    );
    expect(attempts).toEqual([{ attempts: 1, n: 20_000 }]);
    expect((await reRuns(t, job.id)).unfinished).toBe(0);
    // Every worker took part.
    expect(await leaseOwners(t, job.id)).toEqual(workers.map((w) => w.id).sort());

    const res = await t
      .http()
      .get(`/api/actions/bulk/jobs/${job.id}`)
      .set(bearer(tokenFor(owner)));
    const body = res.body as BulkJobResponseDto;
    expect(body).toMatchObject({ status: 'completed', progress: 1, succeeded_items: 20_000 });
    expect(body.started_at).not.toBeNull();
    expect(body.finished_at).not.toBeNull();
  });

  it('loses no item when a worker is killed mid-job, and re-runs at most one batch', async () => {
    const victim = workers[0];
    const job = await createJob(t, owner, {
      action: 'simulate',
      params: { delay_ms: 40 },
      targets: targets(4000),
    });
    // Kill it while it holds items, a good way into the job.
    await waitFor(
      'the victim to hold items mid-job',
      async () => {
        const rows: { held: number; done: number }[] = await t.db.query(
          `SELECT count(*) FILTER (WHERE status = 'running' AND lease_owner = $2)::int AS held,
                count(*) FILTER (WHERE status = 'succeeded')::int AS done
         FROM bulk_job_items WHERE job_id = $1`,
          [job.id, victim.id],
        );
        return rows[0].held > 0 && rows[0].done > 400;
      },
      { intervalMs: 20, timeoutMs: 120_000 },
    );
    victim.child.kill('SIGKILL');
    expect((await victim.exited).signal).toBe('SIGKILL');

    const done = await waitForJob(t.db, job.id, ['completed', 'failed'], 180_000);
    expect(done).toMatchObject({
      status: 'completed',
      succeeded_items: 4000,
      failed_items: 0,
      running_items: 0,
    });
    expect(await itemStatusCounts(t.db, job.id)).toEqual({ succeeded: 4000 });
    const again = await reRuns(t, job.id);
    // The dead worker's items came back through lease expiry, and only those.
    expect(again.again).toBeGreaterThan(0);
    expect(again.again).toBeLessThanOrEqual(BATCH);
    expect(again.expired).toBe(again.again);
    expect(again.unfinished).toBe(0);
  });

  it('drains on SIGTERM: running items finish, waiting ones are released, exit code 0', async () => {
    const leaving = workers[1];
    const job = await createJob(t, owner, {
      action: 'simulate',
      params: { delay_ms: 300 },
      targets: targets(600),
    });
    await waitFor(
      'the leaving worker to hold items',
      async () => {
        const rows: { held: number }[] = await t.db.query(
          `SELECT count(*)::int AS held FROM bulk_job_items WHERE job_id = $1 AND status = 'running' AND lease_owner = $2`,
          [job.id, leaving.id],
        );
        return rows[0].held > 0;
      },
      { intervalMs: 20, timeoutMs: 120_000 },
    );
    leaving.child.kill('SIGTERM');
    const exit = await leaving.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(leaving.output.join('\n')).toMatch(
      /stopping: released \d+ waiting item\(s\), letting \d+ running item\(s\) finish/,
    );
    const left: { n: number }[] = await t.db.query(
      `SELECT count(*)::int AS n FROM bulk_job_items WHERE lease_owner = $1`,
      [leaving.id],
    );
    expect(left[0].n).toBe(0);

    const done = await waitForJob(t.db, job.id, ['completed', 'failed'], 180_000);
    expect(done).toMatchObject({ status: 'completed', succeeded_items: 600, running_items: 0 });
    // Released items were given back with their attempt: nothing counts twice.
    expect((await reRuns(t, job.id)).again).toBe(0);
  });
});
