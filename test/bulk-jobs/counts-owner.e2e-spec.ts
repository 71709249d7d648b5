import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import type { JobStatus } from '../../src/jobs/job-status';
import { createTestApp, type TestApp } from '../support/app';
import { JOBS, jobListBody, listAll } from '../support/api';
import { insertJob } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const COUNTS = '/api/actions/bulk/job-counts';
const ADMIN = 'bulk-jobs:read bulk-jobs:admin';
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);
const retained = () => ({ deletedAt: new Date(), purgeAt: new Date(Date.now() + 86_400_000) });

describe('GET /api/actions/bulk/job-counts and the owner filter of GET /jobs', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  const get = (path: string, token: string, query: Record<string, string> = {}) =>
    t.http().get(path).query(query).set(bearer(token));

  /** Jobs of one owner in these statuses, plus one deleted and one of another owner that never count. */
  async function jobsOf(owner: string, statuses: JobStatus[]): Promise<string[]> {
    const ids: string[] = [];
    for (const [i, status] of statuses.entries())
      ids.push(
        await insertJob(t.db, { owner, status, items: 0, createdAt: minutesAgo(statuses.length - i) }),
      );
    await insertJob(t.db, { owner, status: 'completed', items: 0, ...retained() });
    return ids;
  }

  it("counts the caller's jobs in every status, deleted ones left out", async () => {
    const owner = newOwner('counts');
    await jobsOf(owner, ['pending', 'running', 'running', 'completed', 'failed', 'cancelled', 'completed']);
    await insertJob(t.db, { owner: newOwner('other'), status: 'running', items: 0 });
    const res = await get(COUNTS, tokenFor(owner, { scope: 'bulk-jobs:read' }));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      by_status: { pending: 1, running: 2, paused: 0, cancelling: 0, completed: 2, failed: 1, cancelled: 1 },
      total: 7,
    });
  });

  it('answers zeros, not an empty object, for an owner without jobs', async () => {
    const res = await get(COUNTS, tokenFor(newOwner()));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      by_status: { pending: 0, running: 0, paused: 0, cancelling: 0, completed: 0, failed: 0, cancelled: 0 },
      total: 0,
    });
  });

  it("gives an admin every owner's counts, or one owner's with owner=", async () => {
    const alice = newOwner('alice');
    const bob = newOwner('bob');
    await jobsOf(alice, ['running', 'completed']);
    await jobsOf(bob, ['failed']);
    const admin = tokenFor(newOwner('admin'), { scope: ADMIN });
    const all = await get(COUNTS, admin);
    expect(all.status).toBe(200);
    const total = (all.body as { total: number }).total;
    // The shared test database holds other specs' jobs too: at least these three, and the sum adds up.
    expect(total).toBeGreaterThanOrEqual(3);
    const byStatus = (all.body as { by_status: Record<string, number> }).by_status;
    expect(Object.values(byStatus).reduce((a, b) => a + b, 0)).toBe(total);

    const onlyAlice = await get(COUNTS, admin, { owner: alice });
    expect(onlyAlice.body).toEqual({
      by_status: { pending: 0, running: 1, paused: 0, cancelling: 0, completed: 1, failed: 0, cancelled: 0 },
      total: 2,
    });
  });

  it('refuses the owner filter to a caller who is not an admin (403, required_scope)', async () => {
    const owner = newOwner();
    for (const path of [COUNTS, JOBS]) {
      const res = await get(path, tokenFor(owner), { owner });
      expectProblem(res, 403, { type: 'about:blank', required_scope: 'bulk-jobs:admin' });
    }
  });

  it('refuses an empty owner filter (400) and a request without a token (401)', async () => {
    const admin = tokenFor(newOwner('admin'), { scope: ADMIN });
    expectProblem(await get(COUNTS, admin, { owner: '' }), 400, {
      type: '/problems/validation-error',
      details: { owner: expect.stringMatching(/longer than or equal to 1/) },
    });
    expectProblem(await t.http().get(COUNTS), 401, { type: 'about:blank' });
  });

  it("lists one owner's jobs for an admin with owner=, newest first, across pages", async () => {
    const alice = newOwner('alice');
    const ids = await jobsOf(alice, ['completed', 'running', 'failed', 'pending', 'completed']);
    await jobsOf(newOwner('bob'), ['completed', 'completed']);
    const admin = tokenFor(newOwner('admin'), { scope: ADMIN });

    const listed = await listAll(t, admin, { owner: alice, limit: '2' });
    expect(listed.map((j) => j.id)).toEqual([...ids].reverse());
    expect(listed.every((j) => j.owner === alice)).toBe(true);

    const withDeleted = await listAll(t, admin, { owner: alice, show_deleted: 'true' });
    expect(withDeleted).toHaveLength(ids.length + 1);
    const running = jobListBody(await get(JOBS, admin, { owner: alice, status: 'running' }));
    expect(running.items.map((j) => j.id)).toEqual([ids[1]]);
  });

  it("refuses a cursor of the unfiltered listing under an owner filter, and one owner's under another's", async () => {
    const alice = newOwner('alice');
    const bob = newOwner('bob');
    await jobsOf(alice, ['completed', 'completed', 'completed']);
    const admin = tokenFor(newOwner('admin'), { scope: ADMIN });
    const first = jobListBody(await get(JOBS, admin, { owner: alice, limit: '1' }));
    expect(first.next_cursor).not.toBeNull();
    const invalidCursor = {
      type: '/problems/validation-error',
      details: { cursor: 'is not a cursor issued for this listing and these filters' },
    };
    expectProblem(await get(JOBS, admin, { owner: bob, cursor: first.next_cursor! }), 400, invalidCursor);
    expectProblem(await get(JOBS, admin, { cursor: first.next_cursor! }), 400, invalidCursor);
    const unfiltered = jobListBody(await get(JOBS, admin, { limit: '1' }));
    expectProblem(
      await get(JOBS, admin, { owner: alice, cursor: unfiltered.next_cursor! }),
      400,
      invalidCursor,
    );
  });
});
