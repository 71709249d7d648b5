import { expect } from 'expect';
import { randomBytes } from 'node:crypto';
import { BulkJobsRepository } from '../../src/bulk-jobs/bulk-jobs.repository';
import { after, before, describe, it } from 'node:test';
import { createTestApp, type TestApp } from '../support/app';
import { itemListBody, JOBS, jobListBody, listAllItemPages, listAllPages } from '../support/api';
import { countJobs, insertJob, itemRows } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';
import { PoliteOwner } from '../support/polite-client';

/** `simulate` params of about `bytes` bytes: fail_targets of 512 characters each. */
function bigParams(bytes: number): { fail_targets: string[] } {
  const n = Math.ceil(bytes / 515);
  return { fail_targets: Array.from({ length: n }, (_, i) => `${i}-`.padEnd(512, 'x')) };
}

describe('hostile client: oversized params and data', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  it('refuses 4 MiB of params (a simulate job with 8,000 long fail_targets) with a problem naming the limit, and a polite client is served meanwhile', async (tc) => {
    const owner = newOwner('hostile');
    const token = tokenFor(owner);
    const params = bigParams(4 * 1024 * 1024);
    expect(params.fail_targets.length).toBeGreaterThanOrEqual(8000);
    const polite = await PoliteOwner.start(t);
    await polite.measureBaseline();
    const { result, rounds, medianMs, baselineMs } = await polite.duringExpectServed(async () => {
      const answers = [];
      for (let i = 0; i < 3; i++)
        answers.push(
          await t
            .http()
            .post(JOBS)
            .set(bearer(token))
            .send({ action: 'simulate', targets: ['a'], params }),
        );
      return answers;
    });
    tc.diagnostic(
      `hostile: ${result.map((r) => r.status).join(', ')}; polite: ${rounds} rounds, median ${medianMs.toFixed(1)} ms ` +
        `(baseline ${baselineMs.toFixed(1)} ms)`,
    );
    for (const res of result) {
      expectProblem(res, 400, {
        type: '/problems/validation-error',
        details: { params: expect.stringContaining('BULK_JOBS_MAX_PARAMS_BYTES (65536)') },
      });
    }
    expect(await countJobs(t.db, owner)).toBe(0);
  });

  it('lists large jobs stored before the limit in pages of a few MiB, handing out next_cursor', async () => {
    const owner = newOwner('legacy');
    const big = bigParams(1024 * 1024);
    for (let i = 0; i < 12; i++)
      await insertJob(t.db, {
        owner,
        status: 'completed',
        items: 0,
        params: big,
        createdAt: new Date(Date.now() - (i + 1) * 1000),
      });
    const res = await t
      .http()
      .get(JOBS)
      .query({ limit: '500' })
      .set(bearer(tokenFor(owner)));
    expect(res.status).toBe(200);
    const body = jobListBody(res);
    expect({
      bytes: Buffer.byteLength(res.text) <= 5 * 1024 * 1024,
      next: body.next_cursor !== null,
    }).toEqual({
      bytes: true,
      next: true,
    });
  });
});

/** A JSON object of exactly `bytes` bytes: {"s":"xxx…"}. */
const exactly = (bytes: number, char = 'x') => ({ s: char.repeat((bytes - 8) / Buffer.byteLength(char)) });

describe('size limits on the JSON and NDJSON paths alike', () => {
  let t: TestApp;
  const owner = newOwner('sizes');
  const auth = bearer(tokenFor(owner));
  before(async () => {
    t = await createTestApp({ BULK_JOBS_MAX_ACTIVE_PER_OWNER: '0' });
  });
  after(() => t.close());

  const json = (body: object) => t.http().post(JOBS).set(auth).send(body);
  const ndjson = (lines: unknown[]) =>
    t
      .http()
      .post(JOBS)
      .set(auth)
      .set('Content-Type', 'application/x-ndjson')
      .send(`${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);

  it('takes params and target data of exactly the limit, counted in UTF-8 bytes of JSON', async () => {
    expect(Buffer.byteLength(JSON.stringify(exactly(65536)))).toBe(65536);
    const params = { fail_targets: ['a'] };
    const target = { id: 'a', data: exactly(16384) };
    expect((await json({ action: 'noop', targets: [target] })).status).toBe(202);
    expect((await ndjson([{ action: 'noop' }, target])).status).toBe(202);
    expect((await json({ action: 'simulate', params, targets: ['b'] })).status).toBe(202);
    // Three bytes per character: 16,383 bytes of data in 5,458 characters, which would pass a count of characters too.
    const euro = { id: 'e', data: { s: '€'.repeat(5458) } };
    expect(Buffer.byteLength(JSON.stringify(euro.data))).toBe(16382);
    expect((await json({ action: 'noop', targets: [euro] })).status).toBe(202);
  });

  it('refuses params over BULK_JOBS_MAX_PARAMS_BYTES, naming the limit (and line 1 on NDJSON)', async () => {
    const params = { fail_targets: ['€'.repeat(21_846)] }; // 21,846 characters, 65,538 bytes, plus the JSON
    const res = await json({ action: 'simulate', params, targets: ['a'] });
    expectProblem(res, 400, {
      type: '/problems/validation-error',
      detail: 'The params are larger than this service accepts: at most 65536 bytes as JSON.',
      details: {
        params: expect.stringMatching(
          /^are \d+ bytes as JSON, more than BULK_JOBS_MAX_PARAMS_BYTES \(65536\)$/,
        ),
      },
    });
    const streamed = await ndjson([{ action: 'simulate', params }, 'a']);
    expectProblem(streamed, 400, {
      type: '/problems/validation-error',
      detail: 'Line 1: the job spec is not valid.',
      line: 1,
      details: { params: expect.stringContaining('BULK_JOBS_MAX_PARAMS_BYTES (65536)') },
    });
  });

  it('refuses target data over BULK_JOBS_MAX_TARGET_DATA_BYTES, naming the target or the line, and stores nothing', async () => {
    const before_ = await countJobs(t.db, owner);
    const big = { id: 'big', data: exactly(16386) };
    expectProblem(await json({ action: 'noop', targets: ['a', big] }), 400, {
      type: '/problems/validation-error',
      details: {
        targets: 'targets[1] data is 16386 bytes as JSON, more than BULK_JOBS_MAX_TARGET_DATA_BYTES (16384)',
      },
    });
    expectProblem(await ndjson([{ action: 'noop' }, 'a', big, 'c']), 400, {
      type: '/problems/validation-error',
      detail: 'Line 3: target data is 16386 bytes as JSON, more than BULK_JOBS_MAX_TARGET_DATA_BYTES (16384)',
      line: 3,
      details: { 'line 3': expect.stringContaining('BULK_JOBS_MAX_TARGET_DATA_BYTES (16384)') },
    });
    expect(await countJobs(t.db, owner)).toBe(before_);
  });
});

describe('list pages within BULK_JOBS_MAX_PAGE_BYTES', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ BULK_JOBS_MAX_PAGE_BYTES: String(64 * 1024) });
  });
  after(() => t.close());

  it('cuts a page of jobs once their params pass the budget, and the cursor goes on from there without gaps', async () => {
    const owner = newOwner('pages');
    const ids: string[] = [];
    // 20 KiB of params each (rows stored before the limit could be larger still): three fit in 64 KiB.
    for (let i = 0; i < 8; i++)
      ids.unshift(
        await insertJob(t.db, {
          owner,
          status: 'completed',
          items: 0,
          params: bigParams(20 * 1024),
          createdAt: new Date(Date.now() - (10 - i) * 1000),
        }),
      );
    const pages = await listAllPages(t, owner, { limit: '500' });
    expect(pages.map((p) => p.length)).toEqual([3, 3, 2]);
    expect(pages.flat().map((j) => j.id)).toEqual(ids);
    expect(pages[0][0].params).toEqual(bigParams(20 * 1024));
  });

  it('always answers with one row, however large, and small rows fill the page up to the limit', async () => {
    const owner = newOwner('pages');
    await insertJob(t.db, {
      owner,
      status: 'completed',
      items: 0,
      params: bigParams(200 * 1024),
      createdAt: new Date(Date.now() - 1000),
    });
    for (let i = 0; i < 3; i++)
      await insertJob(t.db, {
        owner,
        status: 'completed',
        items: 0,
        createdAt: new Date(Date.now() - 5000 - i),
      });
    const first = jobListBody(
      await t
        .http()
        .get(JOBS)
        .query({ limit: '10' })
        .set(bearer(tokenFor(owner))),
    );
    expect(first.items).toHaveLength(1);
    expect(Buffer.byteLength(JSON.stringify(first.items[0].params))).toBeGreaterThan(200 * 1024);
    const pages = await listAllPages(t, owner, { limit: '10' });
    expect(pages.map((p) => p.length)).toEqual([1, 3]);
  });

  it('cuts a page of items by their data, results and errors', async () => {
    const owner = newOwner('pages');
    const id = await insertJob(t.db, { owner, status: 'completed', items: 10 });
    await t.db.query(`UPDATE bulk_job_items SET data = $2, result = $3 WHERE job_id = $1`, [
      id,
      exactly(16 * 1024),
      exactly(8 * 1024),
    ]);
    const pages = await listAllItemPages(t, owner, id, { limit: '500' });
    // 24 KiB and some per item: two fit in 64 KiB.
    expect(pages.map((p) => p.length)).toEqual([2, 2, 2, 2, 2]);
    expect(pages.flat().map((i) => i.seq)).toEqual((await itemRows(t.db, id)).map((r) => r.seq));
    const page = itemListBody(
      await t
        .http()
        .get(`${JOBS}/${id}/items`)
        .set(bearer(tokenFor(owner))),
    );
    expect(page.items[0].data).toEqual(exactly(16 * 1024));
  });

  it('reads no large column of the rows past the budget: the statement withholds them by their stored size', async () => {
    const owner = newOwner('withheld');
    // Random hex does not compress: each params takes about 20 KiB in the table too.
    const noise = () => ({ fail_targets: [randomBytes(10 * 1024).toString('hex')] });
    for (let i = 0; i < 5; i++)
      await insertJob(t.db, {
        owner,
        status: 'completed',
        items: 0,
        params: noise(),
        createdAt: new Date(Date.now() - i * 1000),
      });
    const rows = await t.app
      .get(BulkJobsRepository)
      .listJobs({ owner, showDeleted: false, limit: 10, pageBytes: 50_000 });
    // Stored before each: 0, ~20 KiB, ~40 KiB, ~60 KiB, ~80 KiB.
    expect(rows.map((r) => r.withheld)).toEqual([false, false, false, true, true]);
    expect(rows.map((r) => r.params === null)).toEqual([false, false, false, true, true]);
    expect(rows[3].id).toEqual(expect.any(String));
  });
});
