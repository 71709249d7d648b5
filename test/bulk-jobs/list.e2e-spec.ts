import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { createTestApp, type TestApp } from '../support/app';
import { itemListBody, JOBS, jobListBody, listAll, listAllItemPages, listAllPages } from '../support/api';
import { insertJob, insertManyJobs } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);

describe('GET /api/actions/bulk/jobs', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  const list = (owner: string, query: Record<string, string> = {}) =>
    t
      .http()
      .get(JOBS)
      .query(query)
      .set(bearer(tokenFor(owner)));

  /** Inserts `n` completed jobs, one minute apart; returns their ids oldest first. */
  async function jobsOf(owner: string, n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      ids.push(await insertJob(t.db, { owner, status: 'completed', items: 0, createdAt: minutesAgo(n - i) }));
    }
    return ids;
  }

  it('lists own jobs newest first', async () => {
    const owner = newOwner();
    const ids = await jobsOf(owner, 3);
    const res = await list(owner);
    expect(res.status).toBe(200);
    const body = jobListBody(res);
    expect(body.items.map((j) => j.id)).toEqual([...ids].reverse());
    expect(body.next_cursor).toBeNull();
    expect(body.items.every((j) => j.owner === owner)).toBe(true);
  });

  it('answers an empty page for an owner without jobs', async () => {
    const res = await list(newOwner());
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ items: [], next_cursor: null });
  });

  it('pages through 7 jobs 3 at a time without gaps or duplicates', async () => {
    const owner = newOwner();
    const ids = await jobsOf(owner, 7);
    const pages = await listAllPages(t, owner, { limit: '3' });
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat().map((j) => j.id)).toEqual([...ids].reverse());
  });

  it('pages correctly through jobs created in the same millisecond', async () => {
    const owner = newOwner();
    const at = minutesAgo(1);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push(await insertJob(t.db, { owner, status: 'completed', items: 0, createdAt: at }));
    const pages = await listAllPages(t, owner, { limit: '2' });
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    const seen = pages.flat().map((j) => j.id);
    expect([...seen].sort()).toEqual([...ids].sort());
    expect(seen).toEqual([...seen].sort().reverse());
  });

  it('has no next page when the last page is exactly full', async () => {
    const owner = newOwner();
    await jobsOf(owner, 4);
    const pages = await listAllPages(t, owner, { limit: '2' });
    expect(pages.map((p) => p.length)).toEqual([2, 2]);
  });

  it('filters by status, also across pages', async () => {
    const owner = newOwner();
    const statuses = [
      'pending',
      'running',
      'completed',
      'failed',
      'completed',
      'cancelled',
      'completed',
    ] as const;
    const ids: Record<string, string[]> = {};
    for (let i = 0; i < statuses.length; i++) {
      const id = await insertJob(t.db, {
        owner,
        status: statuses[i],
        items: 0,
        createdAt: minutesAgo(10 - i),
      });
      (ids[statuses[i]] ??= []).unshift(id);
    }
    const completed = await listAllPages(t, owner, { status: 'completed', limit: '2' });
    expect(completed.map((p) => p.length)).toEqual([2, 1]);
    expect(completed.flat().map((j) => j.id)).toEqual(ids.completed);
    expect(completed.flat().every((j) => j.status === 'completed')).toBe(true);
    const failed = jobListBody(await list(owner, { status: 'failed' }));
    expect(failed.items.map((j) => j.id)).toEqual(ids.failed);
    const cancelling = jobListBody(await list(owner, { status: 'cancelling' }));
    expect(cancelling.items).toEqual([]);
  });

  it('leaves deleted jobs out unless show_deleted=true', async () => {
    const owner = newOwner();
    const live = await insertJob(t.db, { owner, status: 'completed', createdAt: minutesAgo(2) });
    const deleted = await insertJob(t.db, {
      owner,
      status: 'completed',
      createdAt: minutesAgo(1),
      deletedAt: new Date(),
      purgeAt: new Date(Date.now() + 86_400_000),
    });
    expect(jobListBody(await list(owner)).items.map((j) => j.id)).toEqual([live]);
    expect(jobListBody(await list(owner, { show_deleted: 'false' })).items.map((j) => j.id)).toEqual([live]);
    const all = jobListBody(await list(owner, { show_deleted: 'true' }));
    expect(all.items.map((j) => j.id)).toEqual([deleted, live]);
    expect(all.items[0].deleted_at).not.toBeNull();
    expect(all.items[0].purge_at).not.toBeNull();
  });

  it('never lists a deleted job past its purge_at, even with show_deleted=true', async () => {
    const owner = newOwner();
    await insertJob(t.db, { owner, status: 'completed', deletedAt: minutesAgo(60), purgeAt: minutesAgo(1) });
    expect(jobListBody(await list(owner, { show_deleted: 'true' })).items).toEqual([]);
  });

  it("never lists other owners' jobs", async () => {
    const alice = newOwner();
    const bob = newOwner();
    const mine = await insertJob(t.db, { owner: alice, status: 'completed' });
    await insertJob(t.db, { owner: bob, status: 'completed' });
    await insertJob(t.db, {
      owner: bob,
      status: 'completed',
      deletedAt: new Date(),
      purgeAt: new Date(Date.now() + 60_000),
    });
    const res = await list(alice, { show_deleted: 'true', limit: '500' });
    expect(jobListBody(res).items.map((j) => j.id)).toEqual([mine]);
  });

  it("lets an admin see every owner's jobs", async () => {
    const a = await insertJob(t.db, { owner: newOwner(), status: 'completed', items: 0 });
    const b = await insertJob(t.db, { owner: newOwner(), status: 'completed', items: 0 });
    const admin = tokenFor(newOwner('admin'), { scope: 'bulk-jobs:read bulk-jobs:admin' });
    // Other tests share the database: walk every page rather than assume what the first one holds.
    const seen = new Set((await listAll(t, admin)).map((j) => j.id));
    expect(seen.has(a)).toBe(true);
    expect(seen.has(b)).toBe(true);
  });

  it('lowers a limit above 500 to 500', async () => {
    const owner = newOwner();
    await insertManyJobs(t.db, owner, 502);
    for (const limit of ['501', '1000', '10000000000']) {
      const body = jobListBody(await list(owner, { limit }));
      expect(body.items).toHaveLength(500);
      expect(body.next_cursor).not.toBeNull();
    }
    const pages = await listAllPages(t, owner, { limit: '1000' });
    expect(pages.map((p) => p.length)).toEqual([500, 2]);
    expect(new Set(pages.flat().map((j) => j.id)).size).toBe(502);
  });

  it('defaults the limit to 50', async () => {
    const owner = newOwner();
    await insertManyJobs(t.db, owner, 51);
    const body = jobListBody(await list(owner));
    expect(body.items).toHaveLength(50);
    expect(body.next_cursor).not.toBeNull();
  });

  for (const limit of ['0', '-1', '1.5', 'abc', '', '1e3']) {
    it(`refuses limit=${JSON.stringify(limit)} with 400 details.limit`, async () => {
      expectProblem(await list(newOwner(), { limit }), 400, {
        type: '/problems/validation-error',
        details: { limit: 'limit must be a positive integer' },
      });
    });
  }

  for (const status of ['done', 'COMPLETED', 'succeeded']) {
    it(`refuses status=${status} with 400 details.status`, async () => {
      expectProblem(await list(newOwner(), { status }), 400, {
        type: '/problems/validation-error',
        details: { status: expect.stringContaining('pending') },
      });
    });
  }

  it('refuses show_deleted other than true or false', async () => {
    expectProblem(await list(newOwner(), { show_deleted: 'yes' }), 400, {
      details: { show_deleted: expect.any(String) },
    });
  });

  for (const cursor of ['garbage', 'eyJ2IjoxfQ', 'not base64!', 'x'.repeat(2000)]) {
    it(`refuses cursor=${cursor.slice(0, 20)} with 400 details.cursor`, async () => {
      expectProblem(await list(newOwner(), { cursor }), 400, {
        type: '/problems/validation-error',
        details: { cursor: expect.any(String) },
      });
    });
  }

  it('refuses a cursor issued under other filters', async () => {
    const owner = newOwner();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(await insertJob(t.db, { owner, status: 'completed', items: 0, createdAt: minutesAgo(i + 1) }));
    const first = jobListBody(await list(owner, { status: 'completed', limit: '1' }));
    expect(first.items.map((j) => j.id)).toEqual([ids[0]]);
    expect(first.next_cursor).toEqual(expect.any(String));
    const cursor = first.next_cursor!;
    // Reused under the same filters, the cursor goes on after the page that issued it, however often.
    for (let again = 0; again < 2; again++) {
      const next = jobListBody(await list(owner, { status: 'completed', limit: '1', cursor }));
      expect(next.items.map((j) => j.id)).toEqual([ids[1]]);
      expect(next.next_cursor).toEqual(expect.any(String));
    }
    // A different page size is not a different filter.
    const wider = jobListBody(await list(owner, { status: 'completed', limit: '2', cursor }));
    expect(wider).toEqual({
      items: [expect.objectContaining({ id: ids[1] }), expect.objectContaining({ id: ids[2] })],
      next_cursor: null,
    });
    const others: Record<string, string>[] = [
      { status: 'failed' },
      {},
      { status: 'completed', show_deleted: 'true' },
    ];
    for (const other of others) {
      expectProblem(await list(owner, { ...other, cursor }), 400, {
        details: { cursor: expect.any(String) },
      });
    }
  });

  it('refuses a tampered cursor: its position edited and re-encoded', async () => {
    const owner = newOwner();
    for (let i = 0; i < 3; i++)
      await insertJob(t.db, { owner, status: 'completed', items: 0, createdAt: minutesAgo(i + 1) });
    const cursor = jobListBody(await list(owner, { limit: '1' })).next_cursor!;
    const envelope = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { p: unknown[] };
    const tampered = Buffer.from(
      JSON.stringify({ ...envelope, p: [new Date().toISOString(), envelope.p[1]] }),
    ).toString('base64url');
    expect(tampered).not.toBe(cursor);
    expectProblem(await list(owner, { limit: '1', cursor: tampered }), 400, {
      type: '/problems/validation-error',
      details: { cursor: expect.any(String) },
    });
  });

  it("refuses another owner's cursor", async () => {
    const alice = newOwner();
    for (let i = 0; i < 2; i++)
      await insertJob(t.db, { owner: alice, status: 'completed', items: 0, createdAt: minutesAgo(i + 1) });
    const cursor = jobListBody(await list(alice, { limit: '1' })).next_cursor!;
    expectProblem(await list(newOwner(), { limit: '1', cursor }), 400, {
      details: { cursor: expect.any(String) },
    });
  });

  it('refuses an items cursor on the jobs listing', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed', items: 3 });
    const itemsCursor = itemListBody(
      await t
        .http()
        .get(`${JOBS}/${id}/items`)
        .query({ limit: '1' })
        .set(bearer(tokenFor(owner))),
    ).next_cursor!;
    expectProblem(await list(owner, { cursor: itemsCursor }), 400, {
      details: { cursor: expect.any(String) },
    });
  });

  it('refuses an unknown query parameter', async () => {
    expectProblem(await list(newOwner(), { sort: 'created_at' }), 400, {
      type: '/problems/validation-error',
      details: { sort: 'is not a known field' },
    });
  });
});

describe('GET /api/actions/bulk/jobs/{id}/items', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  const items = (owner: string, id: string, query: Record<string, string> = {}) =>
    t
      .http()
      .get(`${JOBS}/${id}/items`)
      .query(query)
      .set(bearer(tokenFor(owner)));

  it('lists items in seq order with every member', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, {
      owner,
      status: 'running',
      itemStatuses: ['succeeded', 'failed', 'running', 'pending'],
    });
    const res = await items(owner, id);
    expect(res.status).toBe(200);
    const body = itemListBody(res);
    expect(body.next_cursor).toBeNull();
    expect(body.items.map((i) => [i.seq, i.target_id, i.status])).toEqual([
      [0, 'target-1', 'succeeded'],
      [1, 'target-2', 'failed'],
      [2, 'target-3', 'running'],
      [3, 'target-4', 'pending'],
    ]);
    expect(Object.keys(body.items[0]).sort()).toEqual(
      [
        'seq',
        'target_id',
        'data',
        'status',
        'attempts',
        'last_error',
        'result',
        'started_at',
        'finished_at',
      ].sort(),
    );
    expect(body.items[1].last_error).toEqual({ code: 'TEST', message: 'failed in a factory' });
    expect(body.items[3].attempts).toBe(0);
  });

  it('pages through items in seq order without gaps or duplicates', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed', items: 11 });
    const pages = await listAllItemPages(t, owner, id, { limit: '4' });
    expect(pages.map((p) => p.length)).toEqual([4, 4, 3]);
    expect(pages.flat().map((i) => i.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('filters items by status, also across pages', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, {
      owner,
      status: 'failed',
      itemStatuses: ['failed', 'succeeded', 'failed', 'succeeded', 'failed', 'failed', 'skipped'],
    });
    const pages = await listAllItemPages(t, owner, id, { status: 'failed', limit: '3' });
    expect(pages.map((p) => p.length)).toEqual([3, 1]);
    expect(pages.flat().map((i) => i.seq)).toEqual([0, 2, 4, 5]);
    expect(itemListBody(await items(owner, id, { status: 'skipped' })).items.map((i) => i.seq)).toEqual([6]);
    expect(itemListBody(await items(owner, id, { status: 'pending' })).items).toEqual([]);
  });

  it('lists the items of a deleted job that is still retained', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, {
      owner,
      status: 'completed',
      items: 2,
      deletedAt: new Date(),
      purgeAt: new Date(Date.now() + 60_000),
    });
    expect(itemListBody(await items(owner, id)).items).toHaveLength(2);
  });

  it("answers 404 for another owner's job, an unknown job and a purged one", async () => {
    const owner = newOwner();
    const other = await insertJob(t.db, { owner: newOwner(), status: 'completed' });
    const purged = await insertJob(t.db, {
      owner,
      status: 'completed',
      deletedAt: minutesAgo(60),
      purgeAt: minutesAgo(1),
    });
    for (const id of [other, '00000000-0000-4000-8000-000000000000', purged]) {
      expectProblem(await items(owner, id), 404, { type: '/problems/job-not-found' });
    }
  });

  it('refuses a bad status, a bad limit, a non-UUID id and a cursor of another job', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed', items: 3 });
    expectProblem(await items(owner, id, { status: 'completed' }), 400, {
      details: { status: expect.any(String) },
    });
    expectProblem(await items(owner, id, { limit: '0' }), 400, { details: { limit: expect.any(String) } });
    expectProblem(await items(owner, 'not-a-uuid'), 400, {
      type: '/problems/validation-error',
      details: { id: 'must be a UUID' },
    });
    const cursor = itemListBody(await items(owner, id, { limit: '1' })).next_cursor!;
    const second = itemListBody(await items(owner, id, { limit: '1', cursor }));
    expect(second.items.map((i) => i.seq)).toEqual([1]);
    expect(second.next_cursor).toEqual(expect.any(String));
    const other = await insertJob(t.db, { owner, status: 'completed', items: 3 });
    expectProblem(await items(owner, other, { limit: '1', cursor }), 400, {
      details: { cursor: expect.any(String) },
    });
    expectProblem(await items(owner, id, { limit: '1', cursor, status: 'failed' }), 400, {
      details: { cursor: expect.any(String) },
    });
  });
});
