import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import type { Response } from 'supertest';
import { BulkJobsRepository } from '../../src/bulk-jobs/bulk-jobs.repository';
import { createTestApp, type TestApp } from '../support/app';
import { itemListBody, JOBS, jobBody, jobListBody } from '../support/api';
import { insertJob, itemRows, jobRow } from '../support/factories';
import { backendPid, waitUntilBlockedBy } from '../support/locks';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const DAY_MS = 86_400_000;

describe('DELETE /api/actions/bulk/jobs/{id}', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  const del = (owner: string, id: string, scope?: string) =>
    t
      .http()
      .delete(`${JOBS}/${id}`)
      .set(bearer(tokenFor(owner, { scope })));

  for (const status of ['completed', 'failed', 'cancelled'] as const) {
    it(`soft-deletes a ${status} job and answers exactly { job_id, status, success }`, async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, { owner, status });
      const res = await del(owner, id);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({ job_id: id, status, success: true });
      const row = await jobRow(t.db, id);
      expect(row?.deleted_at).toBeInstanceOf(Date);
      expect(row?.purge_at).toBeInstanceOf(Date);
      expect(row?.status).toBe(status);
    });
  }

  for (const status of ['pending', 'running', 'cancelling'] as const) {
    it(`refuses a ${status} job with 409 job-not-deletable and job_status`, async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, { owner, status });
      const res = await del(owner, id);
      expectProblem(res, 409, {
        type: '/problems/job-not-deletable',
        job_status: status,
        detail: new RegExp(status),
      });
      const row = await jobRow(t.db, id);
      expect(row?.deleted_at).toBeNull();
      expect(row?.status).toBe(status);
    });
  }

  it('answers 404 for an unknown id', async () => {
    expectProblem(await del(newOwner(), '6f1c1f0e-0000-4000-8000-000000000000'), 404, {
      type: '/problems/job-not-found',
    });
  });

  it("answers 404 for another owner's job and leaves it alone", async () => {
    const id = await insertJob(t.db, { owner: newOwner(), status: 'completed' });
    expectProblem(await del(newOwner(), id), 404, { type: '/problems/job-not-found' });
    expect((await jobRow(t.db, id))?.deleted_at).toBeNull();
  });

  it("answers 404, not 409, for another owner's running job (never reveals it)", async () => {
    const id = await insertJob(t.db, { owner: newOwner(), status: 'running' });
    const res = await del(newOwner(), id);
    expectProblem(res, 404, { type: '/problems/job-not-found' });
    expect(res.body).not.toHaveProperty('job_status');
  });

  it('answers 404 to a second DELETE and keeps the first deletion time', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    expect((await del(owner, id)).status).toBe(200);
    const first = await jobRow(t.db, id);
    expectProblem(await del(owner, id), 404, { type: '/problems/job-not-found' });
    expect(await jobRow(t.db, id)).toEqual(first);
  });

  it('answers 404 for a job past its purge_at', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, {
      owner,
      status: 'completed',
      deletedAt: new Date(Date.now() - DAY_MS),
      purgeAt: new Date(Date.now() - 1000),
    });
    expectProblem(await del(owner, id), 404, { type: '/problems/job-not-found' });
  });

  for (const bad of ['not-a-uuid', '42', '6f1c1f0e-0000-4000-8000-00000000000g']) {
    it(`answers 400 validation-error with details.id for the id ${bad}`, async () => {
      expectProblem(await del(newOwner(), bad), 400, {
        type: '/problems/validation-error',
        details: { id: 'must be a UUID' },
      });
    });
  }

  it('after a delete: left out of the list, shown with show_deleted and by id, items kept', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'failed', items: 4 });
    const itemsBefore = await itemRows(t.db, id);
    expect((await del(owner, id)).status).toBe(200);

    const listed = await t
      .http()
      .get(JOBS)
      .set(bearer(tokenFor(owner)));
    expect(jobListBody(listed).items).toEqual([]);
    const withDeleted = await t
      .http()
      .get(JOBS)
      .query({ show_deleted: 'true' })
      .set(bearer(tokenFor(owner)));
    expect(jobListBody(withDeleted).items.map((j) => j.id)).toEqual([id]);

    const shown = jobBody(
      await t
        .http()
        .get(`${JOBS}/${id}`)
        .set(bearer(tokenFor(owner))),
    );
    expect(shown.deleted_at).not.toBeNull();
    expect(Date.parse(shown.purge_at!) - Date.parse(shown.deleted_at!)).toBe(30 * DAY_MS);
    expect(Math.abs(Date.parse(shown.deleted_at!) - Date.now())).toBeLessThan(60_000);
    expect(shown.status).toBe('failed');

    expect(await itemRows(t.db, id)).toEqual(itemsBefore);
    const items = await t
      .http()
      .get(`${JOBS}/${id}/items`)
      .set(bearer(tokenFor(owner)));
    expect(items.status).toBe(200);
    // The deleted job's items are listed as before, results and errors included.
    expect(itemListBody(items)).toEqual({
      items: itemsBefore.map((row) =>
        expect.objectContaining({
          seq: row.seq,
          target_id: row.target_id,
          status: 'failed',
          attempts: 1,
          last_error: { code: 'TEST', message: 'failed in a factory' },
          finished_at: row.finished_at!.toISOString(),
        }),
      ),
      next_cursor: null,
    });
  });

  it('uses BULK_JOBS_RETENTION_DAYS for purge_at', async () => {
    const custom = await createTestApp({ BULK_JOBS_RETENTION_DAYS: '7' });
    try {
      const owner = newOwner();
      const id = await insertJob(custom.db, { owner, status: 'completed' });
      expect(
        (
          await custom
            .http()
            .delete(`${JOBS}/${id}`)
            .set(bearer(tokenFor(owner)))
        ).status,
      ).toBe(200);
      const shown = jobBody(
        await custom
          .http()
          .get(`${JOBS}/${id}`)
          .set(bearer(tokenFor(owner))),
      );
      expect(Date.parse(shown.purge_at!) - Date.parse(shown.deleted_at!)).toBe(7 * DAY_MS);
    } finally {
      await custom.close();
    }
  });

  it('answers exactly one 200 and 49 × 404 to 50 concurrent DELETEs of one job', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const responses = await Promise.all(Array.from({ length: 50 }, () => del(owner, id)));
    const ok = responses.filter((r) => r.status === 200);
    expect(ok).toHaveLength(1);
    expect(ok[0].body).toEqual({ job_id: id, status: 'completed', success: true });
    const rest = responses.filter((r) => r.status !== 200);
    expect(rest).toHaveLength(49);
    for (const r of rest) expectProblem(r, 404, { type: '/problems/job-not-found' });
  });

  it('answers many DELETEs at once, each as one at a time would, within its own owner', async () => {
    // Deletions that arrive together share statements (the repository's coalesced soft delete).
    const admin = newOwner('admin');
    const owners = Array.from({ length: 20 }, () => newOwner());
    const done: { id: string; owner: string }[] = [];
    const running: { id: string; owner: string }[] = [];
    for (const owner of owners) {
      done.push({ id: await insertJob(t.db, { owner, status: 'completed', items: 0 }), owner });
      running.push({ id: await insertJob(t.db, { owner, status: 'running', items: 0 }), owner });
    }
    const stranger = (owner: string) => owners[(owners.indexOf(owner) + 1) % owners.length];
    type Case = {
      send: () => Promise<Response>;
      job: string;
      kind: 'own' | 'admin' | 'stranger' | 'running';
    };
    const cases: Case[] = [];
    done.forEach(({ id, owner }, n) => {
      cases.push({ send: () => del(owner, id), job: id, kind: 'own' });
      cases.push({ send: () => del(stranger(owner), id), job: id, kind: 'stranger' });
      if (n % 2 === 0) {
        cases.push({ send: () => del(admin, id, 'bulk-jobs:write bulk-jobs:admin'), job: id, kind: 'admin' });
      }
    });
    for (const { id, owner } of running) cases.push({ send: () => del(owner, id), job: id, kind: 'running' });
    cases.sort(() => Math.random() - 0.5);

    const responses = await Promise.all(cases.map((c) => c.send()));
    const oks = new Map<string, number>();
    responses.forEach((res, n) => {
      const c = cases[n];
      if (c.kind === 'stranger') expectProblem(res, 404, { type: '/problems/job-not-found' });
      else if (c.kind === 'running') {
        expectProblem(res, 409, { type: '/problems/job-not-deletable', job_status: 'running' });
      } else if (res.status === 200) {
        expect(res.body).toEqual({ job_id: c.job, status: 'completed', success: true });
        oks.set(c.job, (oks.get(c.job) ?? 0) + 1);
      } else expectProblem(res, 404, { type: '/problems/job-not-found' });
    });
    // Each finished job deleted exactly once (its owner's or the admin's DELETE, whichever came first).
    for (const { id } of done) {
      expect(oks.get(id)).toBe(1);
      expect((await jobRow(t.db, id))?.deleted_at).not.toBeNull();
    }
    for (const { id } of running) expect((await jobRow(t.db, id))?.deleted_at).toBeNull();
  });

  it('does not make the deletions sent with it wait for a job whose row another transaction holds', async () => {
    const owner = newOwner();
    const held = await insertJob(t.db, { owner, status: 'completed', items: 0 });
    const others: string[] = [];
    for (let k = 0; k < 30; k++) others.push(await insertJob(t.db, { owner, status: 'completed', items: 0 }));
    const repository = t.app.get(BulkJobsRepository);
    const runner = t.db.createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction();
      await runner.query('SELECT 1 FROM bulk_jobs WHERE id = $1 FOR UPDATE', [held]);
      // All in one tick: the first few go alone, the rest queue and go together, the held job among them.
      const ids = [...others.slice(0, 10), held, ...others.slice(10)];
      const deletions = Promise.all(ids.map((id) => repository.softDeleteJob(owner, id, 30)));
      const answered = await Promise.race([
        deletions,
        new Promise<'waited'>((r) => setTimeout(() => r('waited'), 1500).unref()),
      ]);
      expect(answered).not.toBe('waited');
      const results = answered as Awaited<typeof deletions>;
      // The held job is skipped, not waited for: its DELETE's slow path (BulkJobsService.delete) takes it.
      expect(results[10]).toBeUndefined();
      ids.forEach((id, n) => {
        if (n !== 10) expect(results[n]).toEqual({ id, status: 'completed' });
      });
      await runner.commitTransaction();
      const res = await del(owner, held);
      expect(res.body).toEqual({ job_id: held, status: 'completed', success: true });
    } finally {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
      await runner.release();
    }
  });

  /**
   * Runs `change` on the job row in an open transaction, sends a DELETE that
   * blocks on the row lock, then ends the transaction (commit or rollback)
   * and returns the DELETE's response.
   */
  async function deleteDuring(
    owner: string,
    id: string,
    change: string,
    end: 'commit' | 'rollback',
  ): Promise<Response> {
    const runner = t.db.createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction();
      await runner.query(change, [id]);
      const pid = await backendPid(runner);
      const pending = Promise.resolve(del(owner, id));
      await waitUntilBlockedBy(t.db, pid);
      if (end === 'commit') await runner.commitTransaction();
      else await runner.rollbackTransaction();
      return await pending;
    } finally {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
      await runner.release();
    }
  }

  it('answers 409 running when the job starts running while the DELETE waits', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const res = await deleteDuring(
      owner,
      id,
      `UPDATE bulk_jobs SET status = 'running', finished_at = NULL WHERE id = $1`,
      'commit',
    );
    expectProblem(res, 409, { type: '/problems/job-not-deletable', job_status: 'running' });
    const row = await jobRow(t.db, id);
    expect(row?.status).toBe('running');
    expect(row?.deleted_at).toBeNull();
  });

  it('deletes the job when a status change it waited for is rolled back', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const res = await deleteDuring(
      owner,
      id,
      `UPDATE bulk_jobs SET status = 'running' WHERE id = $1`,
      'rollback',
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ job_id: id, status: 'completed', success: true });
  });

  it('answers 409 running while a completion is not committed, and deletes once it is', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'running' });
    const runner = t.db.createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction();
      await runner.query(`UPDATE bulk_jobs SET status = 'completed', finished_at = now() WHERE id = $1`, [
        id,
      ]);
      // The committed row is still running: the DELETE must not wait for, or guess, the outcome.
      expectProblem(await del(owner, id), 409, {
        type: '/problems/job-not-deletable',
        job_status: 'running',
      });
      await runner.commitTransaction();
    } finally {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
      await runner.release();
    }
    const row = await jobRow(t.db, id);
    expect(row?.status).toBe('completed');
    expect(row?.deleted_at).toBeNull();
    expect((await del(owner, id)).body).toEqual({ job_id: id, status: 'completed', success: true });
  });

  it('never leaves a deleted non-terminal job while concurrent DELETEs race status flips', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'running' });
    const flips = (async () => {
      for (let i = 0; i < 20; i++) {
        const status = i % 2 === 0 ? 'completed' : 'running';
        // Only a job that is not deleted may change status, as the engine does it.
        await t.db.query(`UPDATE bulk_jobs SET status = $2 WHERE id = $1 AND deleted_at IS NULL`, [
          id,
          status,
        ]);
      }
    })();
    // All 20 DELETEs in flight at once, beside the flips.
    const [responses] = await Promise.all([
      Promise.all(Array.from({ length: 20 }, () => del(owner, id))),
      flips,
    ]);
    for (const r of responses) {
      if (r.status === 200) expect(r.body).toEqual({ job_id: id, status: 'completed', success: true });
      else if (r.status === 409)
        expectProblem(r, 409, { type: '/problems/job-not-deletable', job_status: 'running' });
      else expectProblem(r, 404, { type: '/problems/job-not-found' });
    }
    const deleted = responses.filter((r) => r.status === 200).length;
    expect(deleted).toBeLessThanOrEqual(1);
    // The row agrees with the answers: deleted exactly when one DELETE said so, and then terminal.
    const row = await jobRow(t.db, id);
    expect(row?.deleted_at instanceof Date).toBe(deleted === 1);
    if (row?.deleted_at) expect(row.status).toBe('completed');
  });

  it('the database refuses a deleted job that is not terminal', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    expect((await del(owner, id)).status).toBe(200);
    await expect(t.db.query(`UPDATE bulk_jobs SET status = 'running' WHERE id = $1`, [id])).rejects.toThrow(
      /bulk_jobs_deleted_terminal_check/,
    );
    const running = await insertJob(t.db, { owner, status: 'running' });
    await expect(
      t.db.query(`UPDATE bulk_jobs SET deleted_at = now() WHERE id = $1`, [running]),
    ).rejects.toThrow(/bulk_jobs_deleted_terminal_check/);
  });

  it("lets an admin delete another owner's job", async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const res = await del(newOwner('admin'), id, 'bulk-jobs:read bulk-jobs:write bulk-jobs:admin');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ job_id: id, status: 'completed', success: true });
    expect((await jobRow(t.db, id))?.deleted_at).toBeInstanceOf(Date);
  });

  it("gives an admin 409 with job_status for another owner's running job", async () => {
    const id = await insertJob(t.db, { owner: newOwner(), status: 'running' });
    const res = await del(newOwner('admin'), id, 'bulk-jobs:admin');
    expectProblem(res, 409, { type: '/problems/job-not-deletable', job_status: 'running' });
  });
});
