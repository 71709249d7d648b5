import { expect } from 'expect';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { BulkJobsRepository } from '../../src/bulk-jobs/bulk-jobs.repository';
import { createTestApp, type TestApp } from '../support/app';
import { JOBS, jobBody, RFC3339_UTC } from '../support/api';
import { insertJob } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

describe('GET /api/actions/bulk/jobs/{id}', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  const get = (owner: string, id: string) =>
    t
      .http()
      .get(`${JOBS}/${id}`)
      .set(bearer(tokenFor(owner)));

  it('shows an own job with its counters and progress', async () => {
    const owner = newOwner();
    const createdAt = new Date('2025-06-01T12:00:00.123Z');
    const id = await insertJob(t.db, {
      owner,
      status: 'running',
      itemStatuses: [
        'succeeded',
        'succeeded',
        'failed',
        'running',
        'pending',
        'pending',
        'skipped',
        'pending',
      ],
      createdAt,
    });
    const res = await get(owner, id);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      id,
      action: 'noop',
      params: {},
      options: {},
      labels: {},
      retry_of: null,
      status: 'running',
      total_items: 8,
      succeeded_items: 2,
      failed_items: 1,
      skipped_items: 1,
      progress: 0.5,
      owner,
      error: null,
      deleted_at: null,
      purge_at: null,
      created_at: '2025-06-01T12:00:00.123Z',
      started_at: '2025-06-01T12:00:00.123Z',
      finished_at: null,
      updated_at: '2025-06-01T12:00:00.123Z',
      notification: null,
    });
  });

  it('accepts the id in upper case', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const res = await get(owner, id.toUpperCase());
    expect(res.status).toBe(200);
    expect(jobBody(res).id).toBe(id);
  });

  it('shows why a failed job could not run', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'failed', items: 0 });
    await t.db.query(
      `UPDATE bulk_jobs SET error = '{"code":"ACTION_UNKNOWN","message":"no such action"}' WHERE id = $1`,
      [id],
    );
    expect(jobBody(await get(owner, id)).error).toEqual({
      code: 'ACTION_UNKNOWN',
      message: 'no such action',
    });
  });

  it('answers 404 job-not-found for an unknown id', async () => {
    const id = '6f1c1f0e-0000-4000-8000-000000000000';
    expectProblem(await get(newOwner(), id), 404, {
      type: '/problems/job-not-found',
      title: 'Job not found.',
      detail: new RegExp(id),
    });
  });

  it("answers 404 for another owner's job, exactly as for an unknown one", async () => {
    const id = await insertJob(t.db, { owner: newOwner(), status: 'completed' });
    const res = await get(newOwner(), id);
    expectProblem(res, 404, { type: '/problems/job-not-found' });
    expect(JSON.stringify(res.body)).not.toContain('owner');
  });

  it("lets an admin see another owner's job", async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const res = await t
      .http()
      .get(`${JOBS}/${id}`)
      .set(bearer(tokenFor(newOwner('admin'), { scope: 'bulk-jobs:read bulk-jobs:admin' })));
    expect(res.status).toBe(200);
    expect(jobBody(res).owner).toBe(owner);
  });

  for (const bad of [
    'not-a-uuid',
    '123',
    '6f1c1f0e-0000-4000-8000-00000000000',
    '6f1c1f0e00004000800000000000000z',
  ]) {
    it(`answers 400 with details.id for the id ${bad}`, async () => {
      expectProblem(await get(newOwner(), bad), 400, {
        type: '/problems/validation-error',
        details: { id: 'must be a UUID' },
      });
    });
  }

  it('still shows a deleted job, with deleted_at and purge_at', async () => {
    const owner = newOwner();
    const deletedAt = new Date(Date.now() - 60_000);
    const purgeAt = new Date(Date.now() + 86_400_000);
    const id = await insertJob(t.db, { owner, status: 'cancelled', deletedAt, purgeAt });
    const res = await get(owner, id);
    expect(res.status).toBe(200);
    const job = jobBody(res);
    expect(job.deleted_at).toMatch(RFC3339_UTC);
    expect(job.deleted_at).toBe(deletedAt.toISOString());
    expect(job.purge_at).toBe(purgeAt.toISOString());
    expect(job.status).toBe('cancelled');
  });

  it('answers 404 for a deleted job past its purge_at', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, {
      owner,
      status: 'completed',
      deletedAt: new Date(Date.now() - 3_600_000),
      purgeAt: new Date(Date.now() - 1000),
    });
    expectProblem(await get(owner, id), 404, { type: '/problems/job-not-found' });
  });

  it('answers each of many GETs at once with its own job, within its own owner, as one at a time would', async () => {
    // Lookups that arrive together share statements (the repository's coalesced findJob): each must
    // still see only what its own token may, whichever others it goes with.
    const admin = bearer(tokenFor(newOwner('admin'), { scope: 'bulk-jobs:read bulk-jobs:admin' }));
    const owners = Array.from({ length: 20 }, () => newOwner());
    const jobs: { id: string; owner: string }[] = [];
    for (const owner of owners) {
      for (let k = 0; k < 2; k++)
        jobs.push({ id: await insertJob(t.db, { owner, status: 'completed', items: 0 }), owner });
    }
    const purged = await insertJob(t.db, {
      owner: owners[0],
      status: 'completed',
      items: 0,
      deletedAt: new Date(Date.now() - 3_600_000),
      purgeAt: new Date(Date.now() - 1000),
    });
    type Case = { id: string; auth: Record<string, string>; owner: string | null };
    const cases: Case[] = [];
    for (const job of jobs) {
      const stranger = owners[(owners.indexOf(job.owner) + 1) % owners.length];
      cases.push({ id: job.id, auth: bearer(tokenFor(job.owner)), owner: job.owner });
      cases.push({ id: job.id, auth: bearer(tokenFor(stranger)), owner: null });
      cases.push({ id: job.id, auth: admin, owner: job.owner });
      cases.push({ id: job.id.toUpperCase(), auth: bearer(tokenFor(job.owner)), owner: job.owner });
    }
    for (let k = 0; k < 20; k++)
      cases.push({ id: randomUUID(), auth: bearer(tokenFor(owners[k])), owner: null });
    cases.push({ id: purged, auth: bearer(tokenFor(owners[0])), owner: null });
    cases.push({ id: purged, auth: admin, owner: null });
    // Shuffled, so that each statement mixes owners, admins, strangers and unknown ids.
    cases.sort(() => Math.random() - 0.5);
    expect(cases.length).toBeGreaterThan(150);

    const responses = await Promise.all(cases.map((c) => t.http().get(`${JOBS}/${c.id}`).set(c.auth)));
    responses.forEach((res, n) => {
      const c = cases[n];
      if (c.owner === null) {
        expectProblem(res, 404, { type: '/problems/job-not-found' });
      } else {
        expect(res.status).toBe(200);
        expect(jobBody(res)).toMatchObject({ id: c.id.toLowerCase(), owner: c.owner, status: 'completed' });
      }
    });
  });

  it('finds nothing for an id that is no UUID, without failing the lookups that go with it', async () => {
    const owner = newOwner();
    const ids: string[] = [];
    for (let k = 0; k < 8; k++) ids.push(await insertJob(t.db, { owner, status: 'completed', items: 0 }));
    const repository = t.app.get(BulkJobsRepository);
    // All in one tick: the first few go alone, the rest queue and go together, the bad id among them.
    const keys = [...ids.slice(0, 5), 'not-a-uuid', ...ids.slice(5)];
    const found = await Promise.all(keys.map((id) => repository.findJob(owner, id)));
    expect(found[5]).toBeUndefined();
    keys.forEach((id, n) => {
      if (n !== 5) expect(found[n]).toMatchObject({ id, owner });
    });
  });
});
