import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { createTestApp, type TestApp } from '../support/app';
import { insertJob, jobRow } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

describe('DELETE /api/actions/bulk/jobs/{id}', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  for (const status of ['completed', 'failed', 'cancelled'] as const) it(`soft-deletes a ${status} job`, async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status });
    const res = await t.http().delete(`/api/actions/bulk/jobs/${id}`).set(bearer(tokenFor(owner)));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ job_id: id, status, success: true });
    const row = await jobRow(t.db, id);
    expect(row?.deleted_at).toBeInstanceOf(Date);
    expect(row?.purge_at).toBeInstanceOf(Date);
  });

  for (const status of ['pending', 'running'] as const) it(`refuses a ${status} job with 409 job-not-deletable`, async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status });
    const res = await t.http().delete(`/api/actions/bulk/jobs/${id}`).set(bearer(tokenFor(owner)));
    expectProblem(res, 409, { type: '/problems/job-not-deletable', job_status: status });
    expect((await jobRow(t.db, id))?.deleted_at).toBeNull();
  });
});
