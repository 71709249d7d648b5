import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { createTestApp, type TestApp } from '../support/app';
import { itemListBody, JOBS, jobBody, UUID } from '../support/api';
import { insertJob, itemRows, jobRow } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const HOUR_MS = 3_600_000;
const UNKNOWN_ID = '6f1c1f0e-0000-4000-8000-000000000000';

describe('POST /api/actions/bulk/jobs/{id}/retry', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ BULK_JOBS_MAX_ACTIVE_PER_OWNER: '3' });
  });
  after(() => t.close());

  const retry = (owner: string, id: string, body?: Record<string, unknown>, key?: string) => {
    const req = t
      .http()
      .post(`${JOBS}/${id}/retry`)
      .set(bearer(tokenFor(owner)));
    if (key) void req.set('Idempotency-Key', key);
    return body === undefined ? req : req.send(body);
  };

  /** A failed job: items succeeded, failed (with data), skipped, failed, succeeded. */
  async function failedJob(owner: string): Promise<string> {
    const id = await insertJob(t.db, {
      owner,
      status: 'failed',
      action: 'noop',
      params: { delay_ms: 0 },
      itemStatuses: ['succeeded', 'failed', 'skipped', 'failed', 'succeeded'],
    });
    await t.db.query(
      `UPDATE bulk_job_items SET data = jsonb_build_object('n', seq) WHERE job_id = $1 AND seq IN (1, 2)`,
      [id],
    );
    await t.db.query(`UPDATE bulk_jobs SET options = '{"max_attempts": 2}' WHERE id = $1`, [id]);
    return id;
  }

  it('creates a new pending job of the failed items, in order, with their data; the original is untouched', async () => {
    const owner = newOwner();
    const id = await failedJob(owner);
    const before = await jobRow(t.db, id);
    const res = await retry(owner, id);
    expect(res.status).toBe(202);
    const job = jobBody(res);
    expect(job.id).toMatch(UUID);
    expect(job.id).not.toBe(id);
    expect(res.headers.location).toBe(`${JOBS}/${job.id}`);
    expect(job).toMatchObject({
      action: 'noop',
      params: { delay_ms: 0 },
      options: { max_attempts: 2 },
      status: 'pending',
      total_items: 2,
      succeeded_items: 0,
      failed_items: 0,
      retry_of: id,
      owner,
    });
    expect(await itemRows(t.db, job.id)).toEqual([
      expect.objectContaining({ seq: 0, target_id: 'target-2', data: { n: 1 }, status: 'pending' }),
      expect.objectContaining({ seq: 1, target_id: 'target-4', data: null, status: 'pending' }),
    ]);
    expect(await jobRow(t.db, id)).toEqual(before);
    // The original is still terminal, so still deletable.
    expect(
      (
        await t
          .http()
          .delete(`${JOBS}/${id}`)
          .set(bearer(tokenFor(owner)))
      ).status,
    ).toBe(200);
    // The new job reads back with retry_of.
    const got = await t
      .http()
      .get(`${JOBS}/${job.id}`)
      .set(bearer(tokenFor(owner)));
    expect(jobBody(got).retry_of).toBe(id);
  });

  it('takes the skipped items too with include_skipped, in seq order', async () => {
    const owner = newOwner();
    const id = await failedJob(owner);
    const res = await retry(owner, id, { include_skipped: true });
    expect(res.status).toBe(202);
    const job = jobBody(res);
    expect(job.total_items).toBe(3);
    const items = itemListBody(
      await t
        .http()
        .get(`${JOBS}/${job.id}/items`)
        .set(bearer(tokenFor(owner))),
    ).items;
    expect(items.map((i) => [i.seq, i.target_id, i.data])).toEqual([
      [0, 'target-2', { n: 1 }],
      [1, 'target-3', { n: 2 }],
      [2, 'target-4', null],
    ]);
  });

  it('retries a cancelled job whose only leftovers are skipped items with include_skipped, and refuses without it', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'cancelled', itemStatuses: ['succeeded', 'skipped'] });
    expectProblem(await retry(owner, id), 409, {
      type: '/problems/nothing-to-retry',
      job_status: 'cancelled',
    });
    const res = await retry(owner, id, { include_skipped: true });
    expect(res.status).toBe(202);
    expect(jobBody(res)).toMatchObject({ total_items: 1, retry_of: id });
  });

  it('answers 409 nothing-to-retry for a completed job, and creates nothing', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed', items: 3 });
    expectProblem(await retry(owner, id, { include_skipped: true }), 409, {
      type: '/problems/nothing-to-retry',
      job_status: 'completed',
    });
    const rows: { n: number }[] = await t.db.query(
      'SELECT count(*)::int AS n FROM bulk_jobs WHERE retry_of = $1',
      [id],
    );
    expect(rows[0].n).toBe(0);
  });

  for (const status of ['pending', 'running', 'cancelling'] as const) {
    it(`answers 409 job-not-retryable for a ${status} job`, async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, { owner, status, itemStatuses: ['failed', 'pending'] });
      expectProblem(await retry(owner, id), 409, {
        type: '/problems/job-not-retryable',
        job_status: status,
      });
    });
  }

  it("answers 404 for a deleted job, an unknown one and another owner's; 400 for a bad id or body", async () => {
    const owner = newOwner();
    const deleted = await insertJob(t.db, {
      owner,
      status: 'failed',
      itemStatuses: ['failed'],
      deletedAt: new Date(),
      purgeAt: new Date(Date.now() + HOUR_MS),
    });
    expectProblem(await retry(owner, deleted), 404, { type: '/problems/job-not-found' });
    expectProblem(await retry(owner, UNKNOWN_ID), 404, { type: '/problems/job-not-found' });
    const others = await failedJob(newOwner());
    expectProblem(await retry(owner, others), 404, { type: '/problems/job-not-found' });
    expectProblem(await retry(owner, 'nope'), 400, { details: { id: 'must be a UUID' } });
    const mine = await failedJob(owner);
    expectProblem(await retry(owner, mine, { include_skipped: 'yes' }), 400, {
      type: '/problems/validation-error',
    });
    expectProblem(await retry(owner, mine, { other: 1 }), 400, {
      type: '/problems/validation-error',
    });
  });

  it('lets an admin retry any owner’s job; the new job is the admin’s', async () => {
    const owner = newOwner();
    const id = await failedJob(owner);
    const admin = newOwner();
    const res = await t
      .http()
      .post(`${JOBS}/${id}/retry`)
      .set(bearer(tokenFor(admin, { scope: 'bulk-jobs:read bulk-jobs:write bulk-jobs:admin' })));
    expect(res.status).toBe(202);
    expect(jobBody(res)).toMatchObject({ owner: admin, retry_of: id });
  });

  it('honours the Idempotency-Key: the same retry again is a replay, another body under the key a 422', async () => {
    const owner = newOwner();
    const id = await failedJob(owner);
    const first = await retry(owner, id, {}, 'retry-key-1');
    expect(first.status).toBe(202);
    const again = await retry(owner, id, undefined, 'retry-key-1');
    expect(again.status).toBe(202);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(jobBody(again).id).toBe(jobBody(first).id);
    expectProblem(await retry(owner, id, { include_skipped: true }, 'retry-key-1'), 422, {
      type: '/problems/idempotency-key-reused',
    });
    const rows: { n: number }[] = await t.db.query(
      'SELECT count(*)::int AS n FROM bulk_jobs WHERE retry_of = $1',
      [id],
    );
    expect(rows[0].n).toBe(1);
  });

  it('counts against BULK_JOBS_MAX_ACTIVE_PER_OWNER like a create', async () => {
    const owner = newOwner();
    const id = await failedJob(owner);
    for (let i = 0; i < 3; i++) expect((await retry(owner, id)).status).toBe(202);
    expectProblem(await retry(owner, id), 429, { type: '/problems/too-many-active-jobs' });
  });
});
