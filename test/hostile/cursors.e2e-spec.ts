import { expect } from 'expect';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Response } from 'supertest';
import { CursorCodec } from '../../src/common/pagination/cursor';
import { createTestApp, type TestApp } from '../support/app';
import { itemListBody, JOBS, jobListBody } from '../support/api';
import { insertJob } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';
import { PoliteOwner } from '../support/polite-client';

/** What an attacker who read the source would write: the envelope of an unsigned cursor. */
function handMade(kind: string, filters: Record<string, unknown>, position: unknown[]): string {
  const canonical = JSON.stringify(
    Object.keys(filters)
      .sort()
      .map((k) => [k, filters[k] ?? null]),
  );
  const f = createHash('sha256').update(canonical).digest('base64url').slice(0, 12);
  return Buffer.from(JSON.stringify({ v: 1, k: kind, f, p: position })).toString('base64url');
}

describe('hostile client: hand-made cursors', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  it('answers 400 validation-error for positions out of PostgreSQL range, and a polite client is served meanwhile', async (tc) => {
    const owner = newOwner('hostile');
    const token = tokenFor(owner);
    const jobId = await insertJob(t.db, { owner, status: 'completed', items: 3 });
    const polite = await PoliteOwner.start(t);
    await polite.measureBaseline();

    const forged = [
      {
        path: `${JOBS}/${jobId}/items`,
        cursor: handMade('items', { job: jobId, status: undefined }, [2147483648]),
      },
      {
        path: JOBS,
        cursor: handMade('jobs', { status: undefined, show_deleted: false, owner }, [
          '0000-01-01T00:00:00.000Z',
          '00000000-0000-4000-8000-000000000000',
        ]),
      },
    ];
    const { result, rounds, medianMs, baselineMs } = await polite.duringExpectServed(async () => {
      const answers: { path: string; res: Response }[] = [];
      for (let round = 0; round < 20; round++) {
        for (const { path, cursor } of forged)
          answers.push({ path, res: await t.http().get(path).query({ cursor }).set(bearer(token)) });
      }
      return answers;
    });
    const statuses = result.map(({ path, res }) => `${path === JOBS ? 'jobs' : 'items'} ${res.status}`);
    tc.diagnostic(
      `hostile: ${statuses.length} requests, ${[...new Set(statuses)].sort().join(', ')}; polite: ${rounds} rounds, ` +
        `median ${medianMs.toFixed(1)} ms (baseline ${baselineMs.toFixed(1)} ms)`,
    );
    expect([...new Set(statuses)].sort()).toEqual(['items 400', 'jobs 400']);
    for (const { res } of result)
      expectProblem(res, 400, {
        type: '/problems/validation-error',
        details: { cursor: expect.any(String) },
      });
  });
});

describe('cursors signed with the server key', () => {
  const OLD = 'the-cursor-secret-before-rotation-0123456789';
  const NEW = 'the-cursor-secret-after-rotation-9876543210';
  let before_: TestApp;
  let rotated: TestApp;
  let after_: TestApp;
  before(async () => {
    before_ = await createTestApp({ CURSOR_SECRET: OLD });
    rotated = await createTestApp({ CURSOR_SECRET: NEW, CURSOR_SECRET_PREVIOUS: OLD });
    after_ = await createTestApp({ CURSOR_SECRET: NEW });
  });
  after(async () => {
    await before_.close();
    await rotated.close();
    await after_.close();
  });

  it('range-checks the position of a validly signed cursor (as if the key had leaked): 400, never 500', async () => {
    const owner = newOwner('leaked-key');
    const token = tokenFor(owner);
    const jobId = await insertJob(before_.db, { owner, status: 'completed', items: 3 });
    const leaked = new CursorCodec({ current: Buffer.from(OLD) });
    const items = { job: jobId, status: undefined };
    const jobs = { status: undefined, show_deleted: false, owner };
    const uuid = '00000000-0000-4000-8000-000000000000';
    const signed = [
      ...[[2147483648], [-1], [1.5], ['1'], [1e300], [0, 1]].map((p) => ({
        path: `${JOBS}/${jobId}/items`,
        cursor: leaked.encode('items', items, p),
      })),
      ...[
        ['0000-01-01T00:00:00.000Z', uuid],
        ['2025-02-30T00:00:00.000Z', uuid],
        ['+275760-09-13T00:00:00.000Z', uuid],
        ['2025-01-01T00:00:00.000Z', 'not-a-uuid'],
        ['2025-01-01', uuid],
      ].map((p) => ({ path: JOBS, cursor: leaked.encode('jobs', jobs, p) })),
    ];
    for (const { path, cursor } of signed) {
      expectProblem(await before_.http().get(path).query({ cursor }).set(bearer(token)), 400, {
        type: '/problems/validation-error',
        details: { cursor: expect.any(String) },
      });
    }
    // The same key, a position in range: accepted.
    const fine = itemListBody(
      await before_
        .http()
        .get(`${JOBS}/${jobId}/items`)
        .query({ cursor: leaked.encode('items', items, [0]) })
        .set(bearer(token)),
    );
    expect(fine.items.map((i) => i.seq)).toEqual([1, 2]);
  });

  it('accepts cursors of the previous key during a rotation, and refuses them once it is dropped', async () => {
    const owner = newOwner('rotation');
    const token = tokenFor(owner);
    for (let i = 0; i < 3; i++)
      await insertJob(before_.db, {
        owner,
        status: 'completed',
        items: 0,
        createdAt: new Date(Date.now() - (i + 1) * 60_000),
      });
    const page = (t: TestApp, cursor?: string) =>
      t
        .http()
        .get(JOBS)
        .query(cursor ? { limit: '1', cursor } : { limit: '1' })
        .set(bearer(token));
    const issuedBefore = jobListBody(await page(before_)).next_cursor!;
    const second = await page(rotated, issuedBefore);
    expect(second.status).toBe(200);
    const issuedDuring = jobListBody(second).next_cursor!;
    // During the rotation, new cursors are signed with the new key: they work after it too.
    expect((await page(after_, issuedDuring)).status).toBe(200);
    expectProblem(await page(after_, issuedBefore), 400, { details: { cursor: expect.any(String) } });
  });
});
