import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { BulkJobsService } from '../../src/bulk-jobs/bulk-jobs.service';
import { createTestApp, type TestApp } from '../support/app';
import { JOBS, jobBody, jobListBody, RFC3339_UTC } from '../support/api';
import { insertJob, itemRows, jobRow } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const HOUR_MS = 3_600_000;
const UNKNOWN_ID = '6f1c1f0e-0000-4000-8000-000000000000';

describe('cancel, restore and purge', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  const cancel = (owner: string, id: string) =>
    t
      .http()
      .post(`${JOBS}/${id}/cancel`)
      .set(bearer(tokenFor(owner)));
  const restore = (owner: string, id: string) =>
    t
      .http()
      .post(`${JOBS}/${id}/restore`)
      .set(bearer(tokenFor(owner)));
  const get = (owner: string, id: string) =>
    t
      .http()
      .get(`${JOBS}/${id}`)
      .set(bearer(tokenFor(owner)));

  describe('POST /api/actions/bulk/jobs/{id}/cancel', () => {
    it('cancels a pending job at once: every item skipped', async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, { owner, status: 'pending', items: 4 });
      const res = await cancel(owner, id);
      expect(res.status).toBe(200);
      const job = jobBody(res);
      expect(job).toMatchObject({
        id,
        status: 'cancelled',
        total_items: 4,
        skipped_items: 4,
        succeeded_items: 0,
        progress: 1,
      });
      expect(job.finished_at).toMatch(RFC3339_UTC);
      const items = await itemRows(t.db, id);
      expect(items.map((i) => i.status)).toEqual(['skipped', 'skipped', 'skipped', 'skipped']);
      expect(items.every((i) => i.finished_at instanceof Date)).toBe(true);
      expect(jobBody(await get(owner, id))).toEqual(job);
    });

    it('cancels a running job with items in flight: cancelling, pending items skipped, the rest untouched', async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, {
        owner,
        status: 'running',
        itemStatuses: ['succeeded', 'failed', 'running', 'pending', 'running', 'pending', 'pending'],
      });
      const res = await cancel(owner, id);
      expect(res.status).toBe(200);
      expect(jobBody(res)).toMatchObject({
        status: 'cancelling',
        succeeded_items: 1,
        failed_items: 1,
        skipped_items: 3,
        finished_at: null,
      });
      expect((await itemRows(t.db, id)).map((i) => i.status)).toEqual([
        'succeeded',
        'failed',
        'running',
        'skipped',
        'running',
        'skipped',
        'skipped',
      ]);
    });

    it('cancels a running job without items in flight straight to cancelled, keeping what succeeded', async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, {
        owner,
        status: 'running',
        itemStatuses: ['succeeded', 'succeeded', 'pending'],
      });
      const job = jobBody(await cancel(owner, id));
      expect(job).toMatchObject({ status: 'cancelled', succeeded_items: 2, skipped_items: 1 });
      expect((await itemRows(t.db, id)).map((i) => i.status)).toEqual(['succeeded', 'succeeded', 'skipped']);
    });

    it('answers 200 and changes nothing when the job is already cancelling', async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, { owner, status: 'cancelling', itemStatuses: ['running', 'skipped'] });
      const snapshot = await jobRow(t.db, id);
      const res = await cancel(owner, id);
      expect(res.status).toBe(200);
      expect(jobBody(res)).toMatchObject({ id, status: 'cancelling', skipped_items: 1 });
      expect(await jobRow(t.db, id)).toEqual(snapshot);
    });

    for (const status of ['completed', 'failed', 'cancelled'] as const) {
      it(`refuses a ${status} job with 409 job-not-cancellable and job_status`, async () => {
        const owner = newOwner();
        const id = await insertJob(t.db, { owner, status });
        const snapshot = await jobRow(t.db, id);
        expectProblem(await cancel(owner, id), 409, {
          type: '/problems/job-not-cancellable',
          job_status: status,
        });
        expect(await jobRow(t.db, id)).toEqual(snapshot);
      });
    }

    it('answers 404 for a deleted job', async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, {
        owner,
        status: 'cancelled',
        deletedAt: new Date(),
        purgeAt: new Date(Date.now() + HOUR_MS),
      });
      expectProblem(await cancel(owner, id), 404, { type: '/problems/job-not-found' });
    });

    it("answers 404 for an unknown id and for another owner's job, which stays pending", async () => {
      const owner = newOwner();
      expectProblem(await cancel(owner, UNKNOWN_ID), 404, { type: '/problems/job-not-found' });
      const other = await insertJob(t.db, { owner: newOwner(), status: 'pending' });
      expectProblem(await cancel(owner, other), 404, { type: '/problems/job-not-found' });
      expect((await jobRow(t.db, other))?.status).toBe('pending');
    });

    it('answers 400 for a non-UUID id', async () => {
      expectProblem(await cancel(newOwner(), 'nope'), 400, { details: { id: 'must be a UUID' } });
    });

    it('skips every pending item exactly once under 10 concurrent cancels', async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, {
        owner,
        status: 'running',
        itemStatuses: ['running', 'pending', 'pending', 'pending'],
      });
      const responses = await Promise.all(Array.from({ length: 10 }, () => cancel(owner, id)));
      expect(responses.map((r) => r.status)).toEqual(new Array(10).fill(200));
      expect(responses.every((r) => jobBody(r).status === 'cancelling')).toBe(true);
      const row = await jobRow(t.db, id);
      expect(row?.skipped_items).toBe(3);
      expect(row?.status).toBe('cancelling');
    });
  });

  describe('POST /api/actions/bulk/jobs/{id}/restore', () => {
    it('brings a deleted job back: deleted_at and purge_at null, listed again', async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, { owner, status: 'completed' });
      expect(
        (
          await t
            .http()
            .delete(`${JOBS}/${id}`)
            .set(bearer(tokenFor(owner)))
        ).status,
      ).toBe(200);
      const res = await restore(owner, id);
      expect(res.status).toBe(200);
      expect(jobBody(res)).toMatchObject({ id, status: 'completed', deleted_at: null, purge_at: null });
      const listed = jobListBody(
        await t
          .http()
          .get(JOBS)
          .set(bearer(tokenFor(owner))),
      );
      expect(listed.items.map((j) => j.id)).toEqual([id]);
      const row = await jobRow(t.db, id);
      expect(row?.deleted_at).toBeNull();
      expect(row?.purge_at).toBeNull();
      // Restored, it can be deleted again.
      expect(
        (
          await t
            .http()
            .delete(`${JOBS}/${id}`)
            .set(bearer(tokenFor(owner)))
        ).status,
      ).toBe(200);
    });

    it('refuses a job that is not deleted with 409 job-not-deleted', async () => {
      const owner = newOwner();
      for (const status of ['completed', 'running'] as const) {
        const id = await insertJob(t.db, { owner, status });
        expectProblem(await restore(owner, id), 409, { type: '/problems/job-not-deleted' });
      }
    });

    it('answers 404 for a deleted job past its purge_at', async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, {
        owner,
        status: 'completed',
        deletedAt: new Date(Date.now() - 2 * HOUR_MS),
        purgeAt: new Date(Date.now() - 1000),
      });
      expectProblem(await restore(owner, id), 404, { type: '/problems/job-not-found' });
      expect((await jobRow(t.db, id))?.deleted_at ?? null).not.toBeNull();
    });

    it("answers 404 for an unknown id and for another owner's deleted job", async () => {
      const owner = newOwner();
      expectProblem(await restore(owner, UNKNOWN_ID), 404, { type: '/problems/job-not-found' });
      const other = await insertJob(t.db, {
        owner: newOwner(),
        status: 'completed',
        deletedAt: new Date(),
        purgeAt: new Date(Date.now() + HOUR_MS),
      });
      expectProblem(await restore(owner, other), 404, { type: '/problems/job-not-found' });
      expect((await jobRow(t.db, other))?.deleted_at).toBeInstanceOf(Date);
    });

    it('answers 400 for a non-UUID id', async () => {
      expectProblem(await restore(newOwner(), 'nope'), 400, { details: { id: 'must be a UUID' } });
    });
  });

  describe('BulkJobsService.purgeExpired', () => {
    it('removes deleted jobs past purge_at with their items, and keeps the rest', async () => {
      const owner = newOwner();
      const expired = await insertJob(t.db, {
        owner,
        status: 'completed',
        items: 5,
        deletedAt: new Date(Date.now() - 2 * HOUR_MS),
        purgeAt: new Date(Date.now() - 1000),
      });
      const retained = await insertJob(t.db, {
        owner,
        status: 'completed',
        items: 2,
        deletedAt: new Date(),
        purgeAt: new Date(Date.now() + HOUR_MS),
      });
      const live = await insertJob(t.db, { owner, status: 'completed', items: 1 });

      const purged = await t.app.get(BulkJobsService).purgeExpired();
      expect(purged).toBeGreaterThanOrEqual(1);

      expect(await jobRow(t.db, expired)).toBeUndefined();
      expect(await itemRows(t.db, expired)).toEqual([]);
      expect(await jobRow(t.db, retained)).toBeDefined();
      expect(await itemRows(t.db, retained)).toHaveLength(2);
      expect(await jobRow(t.db, live)).toBeDefined();
      expect(await itemRows(t.db, live)).toHaveLength(1);
    });

    it('purges in batches until none is left', async () => {
      const owner = newOwner();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        ids.push(
          await insertJob(t.db, {
            owner,
            status: 'failed',
            items: 1,
            deletedAt: new Date(Date.now() - HOUR_MS),
            purgeAt: new Date(Date.now() - 1000),
          }),
        );
      }
      await t.app.get(BulkJobsService).purgeExpired(2);
      const left: { n: number }[] = await t.db.query(
        'SELECT count(*)::int AS n FROM bulk_jobs WHERE id = ANY($1)',
        [ids],
      );
      expect(left[0].n).toBe(0);
    });

    it('drops idempotency keys older than 24 hours, so that their key is free again', async () => {
      const owner = newOwner();
      const create = () =>
        t
          .http()
          .post(JOBS)
          .set(bearer(tokenFor(owner)))
          .set('Idempotency-Key', 'purge-key')
          .send({ action: 'noop', targets: ['a'] });
      expect((await create()).status).toBe(202);
      await t.db.query(
        `UPDATE bulk_job_idempotency_keys SET created_at = now() - interval '25 hours' WHERE owner = $1`,
        [owner],
      );
      await t.app.get(BulkJobsService).purgeExpired();
      const keys: unknown[] = await t.db.query('SELECT 1 FROM bulk_job_idempotency_keys WHERE owner = $1', [
        owner,
      ]);
      expect(keys).toEqual([]);
      const again = await create();
      expect(again.status).toBe(202);
      expect(again.headers['idempotent-replayed']).toBeUndefined();
    });
  });
});
