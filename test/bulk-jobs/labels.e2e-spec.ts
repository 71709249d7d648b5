import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { createTestApp, type TestApp } from '../support/app';
import { createJob, JOBS, jobBody, jobListBody, listAllPages } from '../support/api';
import { insertJob, jobRow } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const HOUR_MS = 3_600_000;

describe('labels', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  const create = (owner: string, labels: unknown) =>
    t
      .http()
      .post(JOBS)
      .set(bearer(tokenFor(owner)))
      .send({ action: 'noop', targets: ['a'], labels });
  const list = (owner: string, query: Record<string, string | string[]>) =>
    t
      .http()
      .get(JOBS)
      .query(query)
      .set(bearer(tokenFor(owner)));
  const patch = (owner: string, id: string, body: unknown, type = 'application/merge-patch+json') =>
    t
      .http()
      .patch(`${JOBS}/${id}`)
      .set(bearer(tokenFor(owner)))
      .set('Content-Type', type)
      .send(JSON.stringify(body));

  it('stores labels given at create and returns them ({} when none)', async () => {
    const owner = newOwner();
    const res = await create(owner, { team: 'billing', 'campaign.v2': 'spring-2026', empty: '' });
    expect(res.status).toBe(202);
    expect(jobBody(res).labels).toEqual({ team: 'billing', 'campaign.v2': 'spring-2026', empty: '' });
    expect((await createJob(t, owner)).labels).toEqual({});
  });

  it('refuses bad labels at create with a 400', async () => {
    const owner = newOwner();
    const seventeen = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
    for (const labels of [
      seventeen,
      { Team: 'x' },
      { ['k'.repeat(64)]: 'x' },
      { team: 1 },
      { team: null },
      { team: 'x'.repeat(256) },
      ['team'],
      'team:x',
    ]) {
      expectProblem(await create(owner, labels), 400, { type: '/problems/validation-error' });
    }
  });

  it('filters the list by label=key:value, repeatable, all must match, and binds the filter in the cursor', async () => {
    const owner = newOwner();
    const a = jobBody(await create(owner, { team: 'billing', env: 'prod' }));
    const b = jobBody(await create(owner, { team: 'billing', env: 'test' }));
    await create(owner, { team: 'search' });
    const ids = (res: Awaited<ReturnType<typeof list>>) => jobListBody(res).items.map((j) => j.id);
    expect(ids(await list(owner, { label: 'team:billing' }))).toEqual([b.id, a.id]);
    expect(ids(await list(owner, { label: ['team:billing', 'env:prod'] }))).toEqual([a.id]);
    expect(ids(await list(owner, { label: ['team:billing', 'env:staging'] }))).toEqual([]);
    expect(ids(await list(owner, { label: ['team:billing', 'team:search'] }))).toEqual([]);
    expect(ids(await list(owner, { label: 'team:' }))).toEqual([]);
    // Another owner's job with the same label stays out.
    await create(newOwner(), { team: 'billing' });
    const pages = await listAllPages(t, owner, { label: 'team:billing', limit: '1' });
    expect(pages.map((p) => p.map((j) => j.id))).toEqual([[b.id], [a.id]]);
    const first = jobListBody(await list(owner, { label: 'team:billing', limit: '1' }));
    expectProblem(await list(owner, { label: 'team:search', limit: '1', cursor: first.next_cursor! }), 400, {
      details: { cursor: 'is not a cursor issued for this listing and these filters' },
    });
  });

  it('refuses a malformed label filter with a 400', async () => {
    const owner = newOwner();
    for (const label of ['team', ':x', 'Team:x', `team:${'x'.repeat(256)}`]) {
      expectProblem(await list(owner, { label }), 400, { type: '/problems/validation-error' });
    }
  });

  it('has the label filter served by the GIN index (with sequential scans ruled out, as on a large table)', async () => {
    const plan = await t.db.transaction(async (m) => {
      await m.query('SET LOCAL enable_seqscan = off');
      return m.query<{ 'QUERY PLAN': string }[]>(
        `EXPLAIN SELECT id FROM bulk_jobs WHERE labels @> '{"team":"billing"}'::jsonb`,
      );
    });
    expect(plan.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/bulk_jobs_labels_idx/);
  });

  it('merges a PATCH into the labels (null removes a key), as merge-patch+json or application/json', async () => {
    const owner = newOwner();
    const job = jobBody(await create(owner, { team: 'billing', ticket: 'T-1' }));
    const res = await patch(owner, job.id, { labels: { ticket: null, env: 'prod' } });
    expect(res.status).toBe(200);
    expect(jobBody(res).labels).toEqual({ team: 'billing', env: 'prod' });
    const again = await patch(owner, job.id, { labels: { team: 'search' } }, 'application/json');
    expect(jobBody(again).labels).toEqual({ team: 'search', env: 'prod' });
    expect((await jobRow(t.db, job.id))?.labels).toEqual({ team: 'search', env: 'prod' });
  });

  it('refuses a PATCH of anything but labels, bad labels, or more than 16 labels after the merge', async () => {
    const owner = newOwner();
    const fifteen = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, 'v']));
    const job = jobBody(await create(owner, fifteen));
    expectProblem(await patch(owner, job.id, { status: 'completed' }), 400, {
      type: '/problems/validation-error',
    });
    expectProblem(await patch(owner, job.id, { labels: {}, status: 'x' }), 400, {
      type: '/problems/validation-error',
    });
    expectProblem(await patch(owner, job.id, { labels: { Bad: 'x' } }), 400, {
      type: '/problems/validation-error',
    });
    expectProblem(await patch(owner, job.id, { labels: { a: 'x', b: 'y' } }), 400, {
      details: { labels: 'would have more than 16 keys after the merge' },
    });
    // Removing one while adding two stays within the limit.
    const ok = await patch(owner, job.id, { labels: { k0: null, a: 'x', b: 'y' } });
    expect(ok.status).toBe(200);
    expect(Object.keys(jobBody(ok).labels)).toHaveLength(16);
  });

  it('refuses a PATCH or a retry sent as a stream (application/x-ndjson), or nested past 64 levels, with a 400', async () => {
    const owner = newOwner();
    const job = jobBody(await create(owner, { team: 'billing' }));
    // Such bodies reach the route as a stream: walking one as a DTO once took the process down.
    expectProblem(await patch(owner, job.id, { labels: { a: 'x' } }, 'application/x-ndjson'), 400, {
      details: { body: 'must be a JSON object (Content-Type: application/json)' },
    });
    const retry = await t
      .http()
      .post(`${JOBS}/${job.id}/retry`)
      .set(bearer(tokenFor(owner)))
      .set('Content-Type', 'application/x-ndjson')
      .send('{"include_skipped":true}\n');
    expectProblem(retry, 400, {
      details: { body: 'must be a JSON object (Content-Type: application/json)' },
    });
    const deep = `{"labels":${'{"d":'.repeat(5_000)}"x"${'}'.repeat(5_000)}}`;
    const nested = await t
      .http()
      .patch(`${JOBS}/${job.id}`)
      .set(bearer(tokenFor(owner)))
      .set('Content-Type', 'application/merge-patch+json')
      .send(deep);
    expectProblem(nested, 400, { type: '/problems/validation-error' });
    // The labels are as they were, and the app still answers.
    const res = await patch(owner, job.id, { labels: { env: 'prod' } });
    expect(res.status).toBe(200);
    expect(jobBody(res).labels).toEqual({ team: 'billing', env: 'prod' });
  });

  it('keeps 16 labels at most under concurrent patches: the database checks the merged result', async () => {
    const owner = newOwner();
    const fifteen = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, 'v']));
    const job = jobBody(await create(owner, fifteen));
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => patch(owner, job.id, { labels: { [`new${i}`]: 'x' } })),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(Object.keys((await jobRow(t.db, job.id))?.labels as object)).toHaveLength(16);
  });

  it("answers 404 for a deleted job and another owner's; 415 for another media type", async () => {
    const owner = newOwner();
    const deleted = await insertJob(t.db, {
      owner,
      status: 'completed',
      deletedAt: new Date(),
      purgeAt: new Date(Date.now() + HOUR_MS),
    });
    expectProblem(await patch(owner, deleted, { labels: { a: 'b' } }), 404, {
      type: '/problems/job-not-found',
    });
    const others = jobBody(await create(newOwner(), {}));
    expectProblem(await patch(owner, others.id, { labels: { a: 'b' } }), 404, {
      type: '/problems/job-not-found',
    });
    expect((await jobRow(t.db, others.id))?.labels).toEqual({});
    expectProblem(await patch(owner, others.id, { labels: {} }, 'text/plain'), 415);
  });

  it('copies the labels to a retry', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'failed', itemStatuses: ['failed'] });
    await t.db.query(`UPDATE bulk_jobs SET labels = '{"team":"billing"}' WHERE id = $1`, [id]);
    const res = await t
      .http()
      .post(`${JOBS}/${id}/retry`)
      .set(bearer(tokenFor(owner)));
    expect(jobBody(res).labels).toEqual({ team: 'billing' });
  });
});
