import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { NoopAction } from '../../src/actions/noop.action';
import { newRunningItem } from '../../src/engine/types';
import { createJob, itemListBody, JOBS, jobBody } from '../support/api';
import type { TestApp } from '../support/app';
import {
  createEngineDatabase,
  createEngineTestApp,
  jobCounters,
  type EngineDatabase,
  handDrivenStore,
} from '../support/engine';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const WORKER_A = 'worker-a:1:stale';
const WORKER_B = 'worker-b:1:fresh';

/**
 * Two workers, driven by hand through the engine's store, so that each step
 * (claim, lease expiry, sweep, late result) happens exactly when the test
 * says. Everything this spec knows of the engine's internals is in here.
 */
function handDrivenEngine(url: string) {
  const store = handDrivenStore(url);
  const noop = new NoopAction();
  return {
    /** `worker` claims what it can of the noop jobs; returns the item seqs and their attempt numbers. */
    async claim(worker: string): Promise<{ jobId: string; seqs: number[]; attempts: number[] }> {
      const res = await store.claim(worker, 10, ['noop'], 60_000, []);
      if (res.kind !== 'claimed' || !res.items?.seqs)
        throw new Error(`${worker} claimed nothing: ${res.kind}`);
      return { jobId: res.job.id, seqs: res.items.seqs, attempts: res.items.attempts ?? [] };
    },
    /** `worker` writes the outcome of its attempt at item `seq`: a success with `result`, or a retry. */
    async report(
      worker: string,
      jobId: string,
      seq: number,
      attempt: number,
      outcome: { succeeded: unknown } | 'retry',
    ): Promise<void> {
      const job = { id: jobId, action: 'noop', params: {}, handler: noop, maxAttempts: 3 };
      const item = newRunningItem(job, seq, `target-${seq}`, null, attempt);
      if (outcome === 'retry') {
        item.outcome = 'retry';
        item.error = { code: 'LATE_RETRY', message: `${worker} asks for a retry` };
        item.delayMs = 0;
      } else {
        item.outcome = 'succeeded';
        item.result = JSON.stringify(outcome.succeeded);
      }
      await store.record(worker, [item]);
    },
    sweep: () => store.sweepExpiredLeases(),
    close: () => store.onApplicationShutdown(),
  };
}

interface ItemState {
  status: string;
  attempts: number;
  lease_owner: string | null;
  result: unknown;
  last_error: { code: string } | null;
  finished_at: Date | null;
}

describe('a worker whose lease expired and whose item another worker took', () => {
  let db: EngineDatabase;
  let t: TestApp;
  let engine: ReturnType<typeof handDrivenEngine>;

  before(async () => {
    db = await createEngineDatabase();
    // The API only (it also applies the migrations): the two workers are this spec's hands.
    t = await createEngineTestApp(db.url);
    engine = handDrivenEngine(db.url);
  });

  after(async () => {
    await engine?.close();
    await t?.close();
    await db?.drop();
  });

  const itemState = async (jobId: string): Promise<ItemState> => {
    const rows: ItemState[] = await t.db.query(
      `SELECT status, attempts, lease_owner, result, last_error, finished_at
       FROM bulk_job_items WHERE job_id = $1 AND seq = 0`,
      [jobId],
    );
    return rows[0];
  };

  it('cannot overwrite the item or move the counters; the new holder’s result is recorded and the job ends right', async () => {
    const owner = newOwner();
    const job = await createJob(t, owner, {
      action: 'noop',
      targets: ['only'],
      options: { max_attempts: 3 },
    });

    // Worker A claims the item.
    const a = await engine.claim(WORKER_A);
    expect(a).toEqual({ jobId: job.id, seqs: [0], attempts: [1] });
    expect(await itemState(job.id)).toMatchObject({ status: 'running', attempts: 1, lease_owner: WORKER_A });

    // A stops renewing; its lease runs out, and the sweep gives the item back.
    await t.db.query(
      `UPDATE bulk_job_items SET lease_expires_at = now() - interval '1 second' WHERE job_id = $1 AND seq = 0`,
      [job.id],
    );
    await engine.sweep();
    expect(await itemState(job.id)).toMatchObject({
      status: 'pending',
      attempts: 1,
      lease_owner: null,
      last_error: { code: 'LEASE_EXPIRED' },
    });
    expect(await jobCounters(t.db, job.id)).toMatchObject({ status: 'running', running_items: 0 });

    // Worker B claims it again: its second attempt.
    const b = await engine.claim(WORKER_B);
    expect(b).toEqual({ jobId: job.id, seqs: [0], attempts: [2] });
    const heldByB = await itemState(job.id);
    expect(heldByB).toMatchObject({ status: 'running', attempts: 2, lease_owner: WORKER_B, result: null });
    const countersWhileB = await jobCounters(t.db, job.id);
    expect(countersWhileB).toEqual({
      status: 'running',
      total_items: 1,
      succeeded_items: 0,
      failed_items: 0,
      skipped_items: 0,
      running_items: 1,
    });

    // A comes back late with its result, as a final outcome and as a retry (the two ways results are
    // written): both are refused. The item keeps B's lease and state, and the counters do not move.
    await engine.report(WORKER_A, job.id, 0, 1, { succeeded: { by: 'A' } });
    expect(await itemState(job.id)).toEqual(heldByB);
    expect(await jobCounters(t.db, job.id)).toEqual(countersWhileB);
    await engine.report(WORKER_A, job.id, 0, 1, 'retry');
    expect(await itemState(job.id)).toEqual(heldByB);
    expect(await jobCounters(t.db, job.id)).toEqual(countersWhileB);

    // B's result is the one recorded, and it finishes the job.
    await engine.report(WORKER_B, job.id, 0, 2, { succeeded: { by: 'B' } });
    const done = await itemState(job.id);
    expect(done).toMatchObject({ status: 'succeeded', attempts: 2, lease_owner: null, result: { by: 'B' } });
    expect(done.finished_at).toBeInstanceOf(Date);
    expect(await jobCounters(t.db, job.id)).toEqual({
      status: 'completed',
      total_items: 1,
      succeeded_items: 1,
      failed_items: 0,
      skipped_items: 0,
      running_items: 0,
    });

    // A's result arriving even later changes nothing either.
    await engine.report(WORKER_A, job.id, 0, 1, { succeeded: { by: 'A' } });
    expect(await itemState(job.id)).toEqual(done);

    const auth = bearer(tokenFor(owner));
    const shown = jobBody(await t.http().get(`${JOBS}/${job.id}`).set(auth));
    expect(shown).toMatchObject({ status: 'completed', succeeded_items: 1, failed_items: 0, progress: 1 });
    expect(shown.finished_at).not.toBeNull();
    const items = itemListBody(await t.http().get(`${JOBS}/${job.id}/items`).set(auth)).items;
    expect(items).toEqual([
      expect.objectContaining({ seq: 0, status: 'succeeded', attempts: 2, result: { by: 'B' } }),
    ]);
  });
});
