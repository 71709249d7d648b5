import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { NoopAction } from '../../src/actions/noop.action';
import type { EngineStore } from '../../src/engine/engine-store';
import { newRunningItem, type RunningItem } from '../../src/engine/types';
import { createJob } from '../support/api';
import type { TestApp } from '../support/app';
import {
  createEngineDatabase,
  createEngineTestApp,
  itemStatusCounts,
  jobCounters,
  type EngineDatabase,
  handDrivenStore,
} from '../support/engine';
import { newOwner } from '../support/tokens';

const WORKER_A = 'worker-a:1:batches';
const WORKER_B = 'worker-b:1:batches';

interface ItemRow {
  seq: number;
  status: string;
  lease_owner: string | null;
  result: unknown;
  last_error: { code: string } | null;
}

/**
 * Batches of final results written through the engine's store, as a worker
 * writes them: a batch of neighbouring seqs (read by its seq range) and a
 * batch whose seqs lie far apart (looked up item by item). Either way only
 * the items still leased to the writer change, and the job's counters follow.
 */
describe('final results written in batches', () => {
  let db: EngineDatabase;
  let t: TestApp;
  let store: EngineStore;
  const noop = new NoopAction();

  before(async () => {
    db = await createEngineDatabase();
    // The API only (it also applies the migrations): the two workers are this spec's hands.
    t = await createEngineTestApp(db.url);
    store = handDrivenStore(db.url);
  });

  after(async () => {
    await store?.onApplicationShutdown();
    await t?.close();
    await db?.drop();
  });

  const claim = async (worker: string, wanted: number): Promise<{ jobId: string; seqs: number[] }> => {
    const res = await store.claim(worker, wanted, ['noop'], 60_000, []);
    if (res.kind !== 'claimed' || !res.items?.seqs) throw new Error(`${worker} claimed nothing: ${res.kind}`);
    return { jobId: res.job.id, seqs: res.items.seqs };
  };

  const outcome = (jobId: string, seq: number, failed = false): RunningItem => {
    const job = { id: jobId, action: 'noop', params: {}, handler: noop, maxAttempts: 1 };
    const item = newRunningItem(job, seq, `target-${seq}`, null, 1);
    if (failed) {
      item.outcome = 'failed';
      item.error = { code: 'BROKEN', message: `item ${seq} failed` };
    } else {
      item.outcome = 'succeeded';
      item.result = JSON.stringify({ seq });
    }
    return item;
  };

  const items = async (jobId: string, seqs: number[]): Promise<ItemRow[]> =>
    t.db.query(
      `SELECT seq, status, lease_owner, result, last_error FROM bulk_job_items
       WHERE job_id = $1 AND seq = ANY($2::int[]) ORDER BY seq`,
      [jobId, seqs],
    );

  it('records every item of the writer, whatever the spread of its seqs, and none of another worker', async () => {
    const job = await createJob(t, newOwner(), {
      action: 'noop',
      targets: Array.from({ length: 100 }, (_, i) => `target-${i}`),
      options: { max_attempts: 1 },
    });
    const a = await claim(WORKER_A, 50);
    const b = await claim(WORKER_B, 50);
    expect(a).toEqual({ jobId: job.id, seqs: Array.from({ length: 50 }, (_, i) => i) });
    expect(b).toEqual({ jobId: job.id, seqs: Array.from({ length: 50 }, (_, i) => 50 + i) });

    // Two items far apart: one succeeded, one failed.
    await store.record(WORKER_A, [outcome(job.id, 3), outcome(job.id, 49, true)]);
    expect(await items(job.id, [3, 49])).toEqual([
      { seq: 3, status: 'succeeded', lease_owner: null, result: { seq: 3 }, last_error: null },
      {
        seq: 49,
        status: 'failed',
        lease_owner: null,
        result: null,
        last_error: expect.objectContaining({ code: 'BROKEN' }),
      },
    ]);
    expect(await jobCounters(t.db, job.id)).toMatchObject({
      status: 'running',
      succeeded_items: 1,
      failed_items: 1,
      running_items: 98,
    });

    // A's other items in one batch of neighbours, with two of B's items that A does not hold.
    const rest = a.seqs.filter((s) => s !== 3 && s !== 49);
    await store.record(WORKER_A, [
      ...rest.map((s) => outcome(job.id, s, s === 10)),
      outcome(job.id, 50),
      outcome(job.id, 51),
    ]);
    expect(await items(job.id, [10, 11, 50, 51])).toEqual([
      {
        seq: 10,
        status: 'failed',
        lease_owner: null,
        result: null,
        last_error: expect.objectContaining({ code: 'BROKEN' }),
      },
      { seq: 11, status: 'succeeded', lease_owner: null, result: { seq: 11 }, last_error: null },
      { seq: 50, status: 'running', lease_owner: WORKER_B, result: null, last_error: null },
      { seq: 51, status: 'running', lease_owner: WORKER_B, result: null, last_error: null },
    ]);
    expect(await jobCounters(t.db, job.id)).toMatchObject({
      status: 'running',
      succeeded_items: 48,
      failed_items: 2,
      running_items: 50,
    });

    // A batch of items nobody holds any more changes nothing.
    await store.record(WORKER_A, [outcome(job.id, 0), outcome(job.id, 40)]);
    expect(await jobCounters(t.db, job.id)).toMatchObject({
      succeeded_items: 48,
      failed_items: 2,
      running_items: 50,
    });

    // B's items, in two batches of each kind, end the job.
    await store.record(WORKER_B, [outcome(job.id, 50), outcome(job.id, 99)]);
    await store.record(
      WORKER_B,
      b.seqs.filter((s) => s !== 50 && s !== 99).map((s) => outcome(job.id, s)),
    );
    expect(await itemStatusCounts(t.db, job.id)).toEqual({ succeeded: 98, failed: 2 });
    expect(await jobCounters(t.db, job.id)).toEqual({
      status: 'failed',
      total_items: 100,
      succeeded_items: 98,
      failed_items: 2,
      skipped_items: 0,
      running_items: 0,
    });
  });
});
