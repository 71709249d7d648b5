import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/app';
import { createJob } from '../support/api';
import {
  createEngineDatabase,
  createEngineTestApp,
  killAll,
  startWorker,
  waitFor,
  type EngineDatabase,
  type WorkerProcess,
} from '../support/engine';
import { newOwner } from '../support/tokens';

describe('a worker whose shutdown grace runs out', () => {
  let db: EngineDatabase;
  let t: TestApp;
  let worker: WorkerProcess | undefined;

  before(async () => {
    db = await createEngineDatabase();
    t = await createEngineTestApp(db.url);
  });

  after(async () => {
    if (worker) await killAll([worker]);
    await t?.close();
    await db?.drop();
  });

  it('aborts the actions still running, gives their items back with their attempt, and exits 0', async () => {
    worker = startWorker(db.url, {
      WORKER_SHUTDOWN_GRACE_MS: '300',
      WORKER_CONCURRENCY: '3',
      WORKER_BATCH_SIZE: '6',
      WORKER_POLL_INTERVAL_MS: '50',
    });
    await worker.ready;
    // Actions that would run for a minute: only the grace's end stops them.
    const job = await createJob(t, newOwner(), {
      action: 'simulate',
      params: { delay_ms: 60_000 },
      targets: ['a', 'b', 'c', 'd', 'e', 'f'],
    });
    await waitFor('the six items to be claimed', async () => {
      const [{ n }]: { n: number }[] = await t.db.query(
        `SELECT count(*)::int AS n FROM bulk_job_items WHERE job_id = $1 AND status = 'running'`,
        [job.id],
      );
      return n === 6;
    });
    const asked = Date.now();
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    // The grace (0.3 s) and the abort's settling, not the actions' minute.
    expect(Date.now() - asked).toBeLessThan(10_000);
    const output = worker.output.join('\n');
    expect(output).toMatch(/stopping: released 3 waiting item\(s\), letting 3 running item\(s\) finish/);
    expect(output).toContain('shutdown grace over: aborting and releasing 3 item(s)');

    // Every item is pending again, unleased, and the attempts it did not finish are taken back.
    const items: { status: string; attempts: number; lease_owner: string | null; last_error: unknown }[] =
      await t.db.query(
        `SELECT status, attempts, lease_owner, last_error FROM bulk_job_items WHERE job_id = $1 ORDER BY seq`,
        [job.id],
      );
    expect(items).toEqual(
      Array.from({ length: 6 }, () => ({
        status: 'pending',
        attempts: 0,
        lease_owner: null,
        last_error: null,
      })),
    );
    const [counters]: { status: string; running_items: number }[] = await t.db.query(
      'SELECT status, running_items FROM bulk_jobs WHERE id = $1',
      [job.id],
    );
    expect(counters.running_items).toBe(0);
  });
});
