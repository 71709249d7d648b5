import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { createTestApp, type TestApp } from '../support/app';
import { JOBS, jobBody, jobListBody } from '../support/api';
import { insertJob, itemRows, jobRow } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const HOUR_MS = 3_600_000;
const UNKNOWN_ID = '6f1c1f0e-0000-4000-8000-000000000000';

describe('pause and resume', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ BULK_JOBS_MAX_ACTIVE_PER_OWNER: '2' });
  });
  after(() => t.close());

  const post = (owner: string, id: string, verb: string) =>
    t
      .http()
      .post(`${JOBS}/${id}/${verb}`)
      .set(bearer(tokenFor(owner)));
  const pause = (owner: string, id: string) => post(owner, id, 'pause');
  const resume = (owner: string, id: string) => post(owner, id, 'resume');
  const cancel = (owner: string, id: string) => post(owner, id, 'cancel');
  const del = (owner: string, id: string) =>
    t
      .http()
      .delete(`${JOBS}/${id}`)
      .set(bearer(tokenFor(owner)));

  it('pauses a pending job and resumes it to pending', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'pending', items: 3 });
    const paused = await pause(owner, id);
    expect(paused.status).toBe(200);
    expect(jobBody(paused)).toMatchObject({ id, status: 'paused', started_at: null });
    expect((await itemRows(t.db, id)).map((i) => i.status)).toEqual(['pending', 'pending', 'pending']);
    const resumed = await resume(owner, id);
    expect(resumed.status).toBe(200);
    expect(jobBody(resumed)).toMatchObject({ id, status: 'pending' });
  });

  it('pauses a running job, leaving its items in flight as they are, and resumes it to running, claimable now', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, {
      owner,
      status: 'running',
      itemStatuses: ['succeeded', 'running', 'pending', 'pending'],
    });
    await t.db.query(`UPDATE bulk_jobs SET claimable_at = now() + interval '1 hour' WHERE id = $1`, [id]);
    expect(jobBody(await pause(owner, id))).toMatchObject({ status: 'paused', succeeded_items: 1 });
    expect((await itemRows(t.db, id)).map((i) => i.status)).toEqual([
      'succeeded',
      'running',
      'pending',
      'pending',
    ]);
    expect(jobBody(await resume(owner, id))).toMatchObject({ status: 'running' });
    const rows: { due: boolean }[] = await t.db.query(
      'SELECT claimable_at <= now() AS due FROM bulk_jobs WHERE id = $1',
      [id],
    );
    expect(rows[0].due).toBe(true);
  });

  it('answers 200 and changes nothing when the job is already paused', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'paused' });
    const snapshot = await jobRow(t.db, id);
    const res = await pause(owner, id);
    expect(res.status).toBe(200);
    expect(jobBody(res).status).toBe('paused');
    expect(await jobRow(t.db, id)).toEqual(snapshot);
  });

  for (const status of ['cancelling', 'completed', 'failed', 'cancelled'] as const) {
    it(`refuses to pause a ${status} job with 409 job-not-pausable and job_status`, async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, { owner, status });
      const snapshot = await jobRow(t.db, id);
      expectProblem(await pause(owner, id), 409, { type: '/problems/job-not-pausable', job_status: status });
      expect(await jobRow(t.db, id)).toEqual(snapshot);
    });
  }

  for (const status of ['pending', 'running', 'cancelling', 'completed', 'failed', 'cancelled'] as const) {
    it(`refuses to resume a ${status} job with 409 job-not-resumable and job_status`, async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, { owner, status });
      const snapshot = await jobRow(t.db, id);
      expectProblem(await resume(owner, id), 409, {
        type: '/problems/job-not-resumable',
        job_status: status,
      });
      expect(await jobRow(t.db, id)).toEqual(snapshot);
    });
  }

  it('cancels a paused job: pending items skipped, cancelled at once or cancelling while items are in flight', async () => {
    const owner = newOwner();
    const idle = await insertJob(t.db, { owner, status: 'paused', itemStatuses: ['succeeded', 'pending'] });
    expect(jobBody(await cancel(owner, idle))).toMatchObject({ status: 'cancelled', skipped_items: 1 });
    const busy = await insertJob(t.db, { owner, status: 'paused', itemStatuses: ['running', 'pending'] });
    expect(jobBody(await cancel(owner, busy))).toMatchObject({ status: 'cancelling', skipped_items: 1 });
    expectProblem(await resume(owner, busy), 409, {
      type: '/problems/job-not-resumable',
      job_status: 'cancelling',
    });
  });

  it('refuses to delete a paused job with 409 job-not-deletable (job_status paused)', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'paused' });
    expectProblem(await del(owner, id), 409, { type: '/problems/job-not-deletable', job_status: 'paused' });
    expect((await jobRow(t.db, id))?.deleted_at).toBeNull();
  });

  it("answers 404 for an unknown, a deleted and another owner's job; 400 for a bad id", async () => {
    const owner = newOwner();
    const deleted = await insertJob(t.db, {
      owner,
      status: 'completed',
      deletedAt: new Date(),
      purgeAt: new Date(Date.now() + HOUR_MS),
    });
    const others = await insertJob(t.db, { owner: newOwner(), status: 'paused' });
    for (const verb of ['pause', 'resume']) {
      expectProblem(await post(owner, UNKNOWN_ID, verb), 404, { type: '/problems/job-not-found' });
      expectProblem(await post(owner, deleted, verb), 404, { type: '/problems/job-not-found' });
      expectProblem(await post(owner, others, verb), 404, { type: '/problems/job-not-found' });
      expectProblem(await post(owner, 'nope', verb), 400, { details: { id: 'must be a UUID' } });
    }
    expect((await jobRow(t.db, others))?.status).toBe('paused');
  });

  it('lists paused jobs with status=paused, counts them, and counts them as active', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'paused' });
    await insertJob(t.db, { owner, status: 'running' });
    const listed = await t
      .http()
      .get(JOBS)
      .query({ status: 'paused' })
      .set(bearer(tokenFor(owner)));
    expect(jobListBody(listed).items.map((j) => j.id)).toEqual([id]);
    const counts = await t
      .http()
      .get('/api/actions/bulk/job-counts')
      .set(bearer(tokenFor(owner)));
    expect(counts.status).toBe(200);
    expect((counts.body as { by_status: Record<string, number> }).by_status).toMatchObject({
      paused: 1,
      running: 1,
    });
    // BULK_JOBS_MAX_ACTIVE_PER_OWNER is 2 here: the paused job holds one of the places.
    expectProblem(
      await t
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner)))
        .send({ action: 'noop', targets: ['a'] }),
      429,
      { type: '/problems/too-many-active-jobs' },
    );
  });

  it('races pause against cancel: the database orders them, and the job ends cancelled', async () => {
    for (let round = 0; round < 5; round++) {
      const owner = newOwner();
      const id = await insertJob(t.db, { owner, status: 'running', itemStatuses: ['pending', 'pending'] });
      const [p, c] = await Promise.all([pause(owner, id), cancel(owner, id)]);
      expect(c.status).toBe(200);
      if (p.status === 200) expect(['paused', 'cancelled']).toContain(jobBody(p).status);
      else {
        // Between the cancel's two statements the job is cancelling; after them, cancelled.
        expectProblem(p, 409, { type: '/problems/job-not-pausable' });
        expect(['cancelling', 'cancelled']).toContain((p.body as { job_status: string }).job_status);
      }
      expect(await jobRow(t.db, id)).toMatchObject({ status: 'cancelled', skipped_items: 2 });
    }
  });

  it('races resume against cancel on a paused job: it ends cancelled, never running', async () => {
    for (let round = 0; round < 5; round++) {
      const owner = newOwner();
      const id = await insertJob(t.db, { owner, status: 'paused', itemStatuses: ['succeeded', 'pending'] });
      const [r, c] = await Promise.all([resume(owner, id), cancel(owner, id)]);
      expect(c.status).toBe(200);
      if (r.status !== 200) {
        expectProblem(r, 409, { type: '/problems/job-not-resumable' });
        // The cancel marks the job cancelling in one statement and skips its pending item in the
        // next: a resume between the two finds it cancelling, one after them cancelled.
        expect(['cancelling', 'cancelled']).toContain((r.body as { job_status: string }).job_status);
      }
      expect(await jobRow(t.db, id)).toMatchObject({ status: 'cancelled', skipped_items: 1 });
    }
  });

  it('races pause against delete on a job that finishes meanwhile: one of them wins, never both', async () => {
    for (let round = 0; round < 5; round++) {
      const owner = newOwner();
      const id = await insertJob(t.db, { owner, status: 'running', itemStatuses: ['succeeded', 'running'] });
      // What the engine does with the job's last item, raced against a pause and a delete.
      const finish = t.db.query(
        `UPDATE bulk_jobs SET status = CASE WHEN status IN ('pending', 'running', 'paused') THEN 'completed'
           ELSE status END, succeeded_items = 2, finished_at = now(), claimable_at = NULL WHERE id = $1`,
        [id],
      );
      const [p, d] = await Promise.all([pause(owner, id), del(owner, id), finish]);
      const row = await jobRow(t.db, id);
      expect(row?.status).toBe('completed');
      // Paused before the job finished, refused once it had, or not found once it was deleted.
      if (p.status === 200) expect(jobBody(p).status).toBe('paused');
      else if (p.status === 404) {
        expectProblem(p, 404, { type: '/problems/job-not-found' });
        expect(d.status).toBe(200);
      } else expectProblem(p, 409, { type: '/problems/job-not-pausable', job_status: 'completed' });
      if (d.status === 200) expect(row?.deleted_at).toBeInstanceOf(Date);
      else {
        expect(row?.deleted_at).toBeNull();
        expect(d.status).toBe(409);
      }
    }
  });
});
