import { expect } from 'expect';
import { Agent, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Response } from 'supertest';
import type { DataSource } from 'typeorm';
import { createTestApp, type TestApp } from '../support/app';
import { JOBS, jobBody } from '../support/api';
import { countJobs, itemRows } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { activeCopies } from '../support/sessions';
import { bearer, newOwner, tokenFor } from '../support/tokens';
import { sleep, waitFor } from '../support/wait';

const NDJSON = 'application/x-ndjson';
const SPEC = { action: 'noop' };

/** One JSON value per line, each line ended by LF. */
const ndjsonOf = (values: unknown[]) => values.map((v) => `${JSON.stringify(v)}\n`).join('');
const ndjson = (...values: unknown[]) => ndjsonOf(values);

const targetIds = (count: number, prefix = 't') => Array.from({ length: count }, (_, i) => `${prefix}-${i}`);

const postNdjson = (
  app: TestApp,
  owner: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
) =>
  app
    .http()
    .post(JOBS)
    .set(bearer(tokenFor(owner)))
    .set('content-type', NDJSON)
    .set(headers)
    .send(body);

/** What the database holds for `owner`: jobs, their items and idempotency records. */
async function storedFor(
  db: DataSource,
  owner: string,
): Promise<{ jobs: number; items: number; keys: number }> {
  const rows: { jobs: number; items: number; keys: number }[] = await db.query(
    `SELECT (SELECT count(*)::int FROM bulk_jobs WHERE owner = $1) AS jobs,
            (SELECT count(*)::int FROM bulk_job_items i JOIN bulk_jobs j ON j.id = i.job_id
              WHERE j.owner = $1) AS items,
            (SELECT count(*)::int FROM bulk_job_idempotency_keys WHERE owner = $1) AS keys`,
    [owner],
  );
  return rows[0];
}

const NOTHING = { jobs: 0, items: 0, keys: 0 };

/**
 * Posts with node:http on a keep-alive connection and ends the body at once,
 * like a client that sends its whole body before it reads the answer. Resolves
 * once the answer has arrived and the body has been sent out entirely without
 * an error; fails at the deadline if the server stopped reading the body.
 */
async function postWholeBody(port: number, headers: Record<string, string>, body: string): Promise<Response> {
  const agent = new Agent({ keepAlive: true });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('the body was not sent out entirely within 20 s')), 20_000);
  });
  const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: JOBS, headers, agent });
  const failed = new Promise<never>((_, reject) => req.on('error', reject));
  const sent = new Promise<void>((resolve) => req.on('finish', resolve));
  const answered = new Promise<Response>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: JSON.parse(text) as unknown,
          text,
          req: { path: JOBS },
        } as unknown as Response),
      );
    });
  });
  req.end(body);
  try {
    const [res] = await Promise.race([Promise.all([answered, sent]), failed, deadline]);
    return res;
  } finally {
    clearTimeout(timer);
    agent.destroy();
  }
}

describe('POST /api/actions/bulk/jobs with application/x-ndjson', () => {
  let t: TestApp;
  let port: number;
  before(async () => {
    // The Idempotency-Key race sends 4 streams of one owner at once: more than the caps let through
    // by default (2 per owner, half the pool of 5); test/hostile/uploads.e2e-spec.ts covers the caps.
    // A pool of 6, so that 4 uploads and the export's 1 stay below it, as the configuration requires.
    t = await createTestApp({
      DATABASE_POOL_SIZE: '6',
      BULK_JOBS_MAX_UPLOADS_PER_OWNER: '0',
      BULK_JOBS_MAX_UPLOADS: '4',
    });
    // Listening on a real port lets a raw node:http client abort mid-stream; supertest uses it too.
    await t.app.listen(0, '127.0.0.1');
    port = (t.app.getHttpServer().address() as AddressInfo).port;
  });
  after(() => t.close());

  describe('creating a job', () => {
    it('answers 202 with Location and the job, and writes one item per target line', async () => {
      const owner = newOwner();
      const res = await postNdjson(
        t,
        owner,
        ndjson(
          { action: 'noop', params: {}, options: { max_attempts: 4, concurrency: 2 } },
          'a',
          { id: 'b' },
          'c',
        ),
      );
      expect(res.status).toBe(202);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const job = jobBody(res);
      expect(res.headers.location).toBe(`${JOBS}/${job.id}`);
      expect(res.headers['idempotent-replayed']).toBeUndefined();
      expect(job).toMatchObject({
        action: 'noop',
        params: {},
        options: { max_attempts: 4, concurrency: 2 },
        status: 'pending',
        total_items: 3,
        succeeded_items: 0,
        failed_items: 0,
        skipped_items: 0,
        progress: 0,
        owner,
        error: null,
      });
      const got = await t
        .http()
        .get(res.headers.location)
        .set(bearer(tokenFor(owner)));
      expect(got.status).toBe(200);
      expect(jobBody(got)).toEqual(job);
      expect((await itemRows(t.db, job.id)).map((i) => [i.seq, i.target_id, i.data, i.status])).toEqual([
        [0, 'a', null, 'pending'],
        [1, 'b', null, 'pending'],
        [2, 'c', null, 'pending'],
      ]);
      const rows: { total_items: number; options: unknown }[] = await t.db.query(
        'SELECT total_items, options FROM bulk_jobs WHERE id = $1',
        [job.id],
      );
      expect(rows).toEqual([{ total_items: 3, options: { max_attempts: 4, concurrency: 2 } }]);
    });

    it('stores ids and data exactly, whatever characters they hold', async () => {
      const owner = newOwner();
      const targets = [
        'plain',
        'tab\there',
        'back\\slash',
        'new\nline',
        'carriage\rreturn',
        'crlf\r\nin id',
        '\\N',
        'NULL',
        '\\.',
        'ünïcødé ✓ 😀 中文',
        ' leading and trailing spaces ',
        'quote"comma,brace{}',
        { id: 'with data', data: { email: 'a@example.com', n: 1, ok: true, none: null } },
        {
          id: 'nested\t\\\n',
          data: {
            deep: { list: [1, 'two', { three: [3] }], empty: {}, emptyList: [] },
            text: 'tab\there, back\\slash, new\nline, cr\r, quote"',
            unicode: 'é ✓ 😀',
            escapedSlash: '\\N',
          },
        },
        { id: 'empty data', data: {} },
        { id: 'x'.repeat(512) },
        'y'.repeat(512),
      ];
      const res = await postNdjson(t, owner, ndjsonOf([SPEC, ...targets]));
      expect(res.status).toBe(202);
      const job = jobBody(res);
      expect(job.total_items).toBe(targets.length);
      const items = await itemRows(t.db, job.id);
      expect(items.map((i) => [i.seq, i.target_id, i.data])).toEqual(
        targets.map((target, seq) =>
          typeof target === 'string' ? [seq, target, null] : [seq, target.id, target.data ?? null],
        ),
      );
    });

    it('decodes JSON escapes in target lines', async () => {
      const owner = newOwner();
      const lines = [
        JSON.stringify(SPEC),
        String.raw`"caf\u00e9 \ud83d\ude00 \t\\ \/"`,
        String.raw`{"id":"\u4e2d","data":{"k\u00e9y":"v\u00e0l\nue"}}`,
      ];
      const res = await postNdjson(t, owner, `${lines.join('\n')}\n`);
      expect(res.status).toBe(202);
      const items = await itemRows(t.db, jobBody(res).id);
      expect(items.map((i) => [i.target_id, i.data])).toEqual([
        ['café 😀 \t\\ /', null],
        ['中', { kéy: 'vàl\nue' }],
      ]);
    });

    it('accepts CRLF line endings', async () => {
      const owner = newOwner();
      const body = [JSON.stringify(SPEC), '"a"', '{"id":"b","data":{"n":1}}', '"c"'].join('\r\n') + '\r\n';
      const res = await postNdjson(t, owner, body);
      expect(res.status).toBe(202);
      expect(jobBody(res).total_items).toBe(3);
      expect((await itemRows(t.db, jobBody(res).id)).map((i) => [i.target_id, i.data])).toEqual([
        ['a', null],
        ['b', { n: 1 }],
        ['c', null],
      ]);
    });

    it('skips blank lines, trailing ones included, and accepts a last line without newline', async () => {
      const owner = newOwner();
      const body = `\n${JSON.stringify(SPEC)}\n\n"a"\n   \n"b"\r\n\r\n\n\n`;
      const res = await postNdjson(t, owner, body);
      expect(res.status).toBe(202);
      expect(jobBody(res).total_items).toBe(2);
      expect((await itemRows(t.db, jobBody(res).id)).map((i) => i.target_id)).toEqual(['a', 'b']);

      const noNewline = await postNdjson(t, owner, `${JSON.stringify(SPEC)}\n"a"\n"b"`);
      expect(noNewline.status).toBe(202);
      expect((await itemRows(t.db, jobBody(noNewline).id)).map((i) => i.target_id)).toEqual(['a', 'b']);
    });

    it('accepts a charset parameter on the media type', async () => {
      const owner = newOwner();
      const res = await t
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner)))
        .set('content-type', `${NDJSON}; charset=utf-8`)
        .send(ndjson(SPEC, 'a'));
      expect(res.status).toBe(202);
      expect(jobBody(res).total_items).toBe(1);
    });

    it('receives a stream of 50,000 targets whole and in order', async () => {
      const owner = newOwner();
      const count = 50_000;
      const targets = targetIds(count).map((id, i) => (i % 10 === 0 ? { id, data: { i } } : id));
      const res = await postNdjson(t, owner, ndjsonOf([SPEC, ...targets]));
      expect(res.status).toBe(202);
      const job = jobBody(res);
      expect(job.total_items).toBe(count);
      const rows: { n: number; lo: number; hi: number; mismatched: number; with_data: number }[] =
        await t.db.query(
          `SELECT count(*)::int AS n, min(seq) AS lo, max(seq) AS hi,
                count(*) FILTER (WHERE target_id <> 't-' || seq)::int AS mismatched,
                count(*) FILTER (WHERE data = jsonb_build_object('i', seq))::int AS with_data
         FROM bulk_job_items WHERE job_id = $1`,
          [job.id],
        );
      expect(rows).toEqual([{ n: count, lo: 0, hi: count - 1, mismatched: 0, with_data: count / 10 }]);
      const ends: { seq: number; target_id: string }[] = await t.db.query(
        `SELECT seq, target_id FROM bulk_job_items WHERE job_id = $1 AND seq IN (0, $2) ORDER BY seq`,
        [job.id, count - 1],
      );
      expect(ends).toEqual([
        { seq: 0, target_id: 't-0' },
        { seq: count - 1, target_id: `t-${count - 1}` },
      ]);
    });
  });

  describe('refusing a bad stream', () => {
    /** Posts `body` and checks for a 400 validation problem, and that nothing was stored. */
    async function expectRefused(body: string | Buffer, expected: Record<string, unknown>): Promise<void> {
      const owner = newOwner();
      const res = await postNdjson(t, owner, body);
      expectProblem(res, 400, { type: '/problems/validation-error', ...expected });
      expect(await storedFor(t.db, owner)).toEqual(NOTHING);
    }

    it('refuses an empty body', async () => {
      await expectRefused('', { details: { body: expect.any(String) } });
    });

    it('refuses a body of blank lines', async () => {
      await expectRefused('\n\r\n  \n', { details: { body: expect.any(String) } });
    });

    it('refuses a first line that is not JSON', async () => {
      await expectRefused(`{"action": "noop"\n"a"\n`, {
        detail: /line 1\b/i,
        details: { 'line 1': expect.any(String) },
        line: 1,
      });
    });

    for (const [name, first] of [
      ['an array', '["noop"]'],
      ['a string', '"noop"'],
      ['null', 'null'],
      ['a number', '42'],
    ] as const) {
      it(`refuses a first line that is ${name}, not an object`, async () => {
        await expectRefused(`${first}\n"a"\n`, {
          detail: /line 1\b/i,
          details: { 'line 1': expect.any(String) },
          line: 1,
        });
      });
    }

    it('names the line of the spec after leading blank lines', async () => {
      await expectRefused(`\n\nnot json\n"a"\n`, {
        detail: /line 3\b/i,
        details: { 'line 3': expect.any(String) },
      });
    });

    it('refuses a spec with an unknown action, in details.action', async () => {
      await expectRefused(ndjson({ action: 'frobnicate' }, 'a'), {
        details: { action: expect.stringContaining('frobnicate') },
      });
    });

    it('refuses a spec with an action name that cannot exist', async () => {
      await expectRefused(ndjson({ action: 'Not An Action!' }, 'a'), {
        details: { action: expect.any(String) },
      });
    });

    it('refuses a spec without an action', async () => {
      await expectRefused(ndjson({ params: {} }, 'a'), { details: { action: expect.any(String) } });
    });

    it('refuses a spec with an unknown field', async () => {
      await expectRefused(ndjson({ ...SPEC, priority: 'high' }, 'a'), {
        details: { priority: 'is not a known field' },
      });
    });

    it('refuses a spec that carries targets, as an unknown field', async () => {
      await expectRefused(ndjson({ ...SPEC, targets: ['a'] }, 'b'), {
        details: { targets: 'is not a known field' },
      });
    });

    it('refuses a spec with bad params or options', async () => {
      await expectRefused(ndjson({ ...SPEC, params: { url: 'x' } }, 'a'), {
        details: { 'params.url': expect.any(String) },
      });
      await expectRefused(ndjson({ ...SPEC, params: 'x' }, 'a'), { details: { params: expect.any(String) } });
      await expectRefused(ndjson({ ...SPEC, options: { max_attempts: 0 } }, 'a'), {
        details: { 'options.max_attempts': expect.any(String) },
      });
      await expectRefused(ndjson({ ...SPEC, options: { retries: 3 } }, 'a'), {
        details: { 'options.retries': expect.any(String) },
      });
    });

    const badTargets: [string, string][] = [
      ['a number', '7'],
      ['null', 'null'],
      ['an array', '["a"]'],
      ['an empty string', '""'],
      ['an object without id', '{"data":{}}'],
      ['an object with a numeric id', '{"id":7}'],
      ['an object with an unknown member', '{"id":"a","extra":1}'],
      ['an id of 513 characters', JSON.stringify('x'.repeat(513))],
      ['an object id of 513 characters', JSON.stringify({ id: 'x'.repeat(513) })],
      ['data that is not an object', '{"id":"a","data":"x"}'],
      ['data that is an array', '{"id":"a","data":[1]}'],
      ['data that is null', '{"id":"a","data":null}'],
      ['invalid JSON', '{"id": "a"'],
      ['a bare word', 'target-4'],
      ['two values on one line', '"a" "b"'],
      ['an id with a NUL character', JSON.stringify('a\u0000b')],
      ['an object id with a NUL character', JSON.stringify({ id: '\u0000' })],
      ['data with \\u0000', JSON.stringify({ id: 'a', data: { x: 'a\u0000' } })],
      ['an id with an unpaired surrogate', String.raw`"a\ud800b"`],
    ];
    for (const [name, line] of badTargets) {
      it(`refuses a target on line 4 that is ${name}, naming line 4, and stores nothing`, async () => {
        await expectRefused(`${JSON.stringify(SPEC)}\n"a"\n{"id":"b","data":{"n":1}}\n${line}\n"c"\n`, {
          detail: /line 4\b/i,
          details: { 'line 4': expect.any(String) },
          line: 4,
        });
      });
    }

    it('counts blank lines in the line number', async () => {
      await expectRefused(`${JSON.stringify(SPEC)}\n\n"a"\r\n\r\n7\n`, {
        detail: /line 5\b/i,
        details: { 'line 5': expect.any(String) },
        line: 5,
      });
    });

    it('refuses a stream without any target line', async () => {
      await expectRefused(ndjson(SPEC), { details: { targets: expect.stringContaining('at least one') } });
      await expectRefused(`${JSON.stringify(SPEC)}\n\n  \r\n`, { details: { targets: expect.any(String) } });
    });

    it('refuses a line longer than 1 MiB, naming it', async () => {
      const long = JSON.stringify({ id: 'big', data: { pad: 'x'.repeat(1024 * 1024) } });
      await expectRefused(`${JSON.stringify(SPEC)}\n"a"\n${long}\n"b"\n`, {
        detail: /line 3\b/i,
        details: { 'line 3': expect.any(String) },
        line: 3,
      });
    });

    it('refuses a first line longer than 1 MiB', async () => {
      const long = JSON.stringify({ ...SPEC, params: { pad: 'x'.repeat(1024 * 1024) } });
      await expectRefused(`${long}\n"a"\n`, { details: { 'line 1': expect.any(String) }, line: 1 });
    });

    it('answers a bad line deep in a large stream, and stores nothing', async () => {
      const targets: unknown[] = targetIds(60_000);
      targets[39_998] = { id: 'bad', data: 'not an object' };
      await expectRefused(ndjsonOf([SPEC, ...targets]), {
        detail: /line 40000\b/i,
        details: { 'line 40000': expect.any(String) },
        line: 40_000,
      });
    });

    it('answers a bad spec in front of a large stream without reading it into the database', async () => {
      await expectRefused(ndjsonOf([{ action: 'frobnicate' }, ...targetIds(60_000)]), {
        details: { action: expect.any(String) },
      });
    });

    for (const [name, first] of [
      ['a bad target on line 4', JSON.stringify(SPEC)],
      ['a bad spec', JSON.stringify({ action: 'frobnicate' })],
    ] as const) {
      it(`reads the rest of a large stream refused for ${name}, for a client that sends it all first`, async () => {
        const owner = newOwner();
        const body = `${first}\n"a"\n"b"\n7\n${ndjsonOf(targetIds(500_000, 'target-with-a-longer-id'))}`;
        // Far more than the socket buffers hold: the server must read it for the upload to end.
        expect(body.length).toBeGreaterThan(8 * 1024 * 1024);
        const res = await postWholeBody(port, { ...bearer(tokenFor(owner)), 'content-type': NDJSON }, body);
        expectProblem(res, 400, {
          type: '/problems/validation-error',
          line: first === JSON.stringify(SPEC) ? 4 : 1,
        });
        expect(await storedFor(t.db, owner)).toEqual(NOTHING);
      });
    }

    it('keeps serving after refusals: the next stream is stored', async () => {
      const owner = newOwner();
      const res = await postNdjson(t, owner, ndjson(SPEC, 'a', 'b'));
      expect(res.status).toBe(202);
      expect(await storedFor(t.db, owner)).toEqual({ jobs: 1, items: 2, keys: 0 });
    });
  });

  describe('authentication', () => {
    const body = ndjsonOf([SPEC, ...targetIds(20_000)]);

    it('refuses a request without a token with 401, and stores nothing', async () => {
      const res = await t.http().post(JOBS).set('content-type', NDJSON).send(body);
      expectProblem(res, 401, { type: 'about:blank', title: 'Unauthorized' });
    });

    it('refuses a token without the write scope with 403, and stores nothing', async () => {
      const owner = newOwner();
      const res = await t
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner, { scope: 'bulk-jobs:read' })))
        .set('content-type', NDJSON)
        .send(body);
      expectProblem(res, 403, { type: 'about:blank', title: 'Forbidden' });
      expect(await storedFor(t.db, owner)).toEqual(NOTHING);
    });
  });

  describe('Idempotency-Key', () => {
    const spec = { action: 'noop', options: { max_attempts: 2 } };
    const targets = ['a', { id: 'b', data: { n: 1, m: [1, 2] } }];
    const postWithKey = (owner: string, key: string, body: string) =>
      postNdjson(t, owner, body, { 'Idempotency-Key': key });

    it('returns the first job for the same key and stream, with 202 and idempotent-replayed', async () => {
      const owner = newOwner();
      const first = await postWithKey(owner, 'nd-1', ndjson(spec, ...targets));
      const second = await postWithKey(owner, 'nd-1', ndjson(spec, ...targets));
      expect(first.status).toBe(202);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      expect(second.status).toBe(202);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(second.headers.location).toBe(first.headers.location);
      expect(jobBody(second)).toEqual(jobBody(first));
      expect(await storedFor(t.db, owner)).toEqual({ jobs: 1, items: 2, keys: 1 });
    });

    it('treats the same content with other key order, line endings and blank lines as the same request', async () => {
      const owner = newOwner();
      const first = await postWithKey(owner, 'nd-order', ndjson(spec, ...targets));
      const reordered = [
        '{"options":{"max_attempts":2},"action":"noop"}',
        '',
        '"a"',
        '{"data":{"m":[1,2],"n":1},"id":"b"}',
      ].join('\r\n');
      const second = await postWithKey(owner, 'nd-order', reordered);
      expect(second.status).toBe(202);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(jobBody(second).id).toBe(jobBody(first).id);
    });

    it('refuses the same key with different content with 422, and stores nothing more', async () => {
      const owner = newOwner();
      const first = await postWithKey(owner, 'nd-2', ndjson(spec, ...targets));
      expect(first.status).toBe(202);
      for (const other of [
        ndjson(spec, 'a', { id: 'b', data: { n: 2, m: [1, 2] } }),
        ndjson(spec, targets[1], targets[0]),
        ndjson(spec, ...targets, 'c'),
        ndjson(spec, targets[0]),
        ndjson({ ...spec, options: { max_attempts: 3 } }, ...targets),
        ndjson({ action: 'noop' }, ...targets),
      ]) {
        const res = await postWithKey(owner, 'nd-2', other);
        expectProblem(res, 422, { type: '/problems/idempotency-key-reused' });
      }
      expect(await storedFor(t.db, owner)).toEqual({ jobs: 1, items: 2, keys: 1 });
    });

    it('replays a JSON create for an NDJSON create of the same job under the same key', async () => {
      const owner = newOwner();
      const json = await t
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner)))
        .set('Idempotency-Key', 'mixed-1')
        .send({ ...spec, targets });
      expect(json.status).toBe(202);
      const streamed = await postWithKey(owner, 'mixed-1', ndjson(spec, ...targets));
      expect(streamed.status).toBe(202);
      expect(streamed.headers['idempotent-replayed']).toBe('true');
      expect(jobBody(streamed).id).toBe(jobBody(json).id);
      expect(await storedFor(t.db, owner)).toEqual({ jobs: 1, items: 2, keys: 1 });
    });

    it('replays an NDJSON create for a JSON create of the same job under the same key', async () => {
      const owner = newOwner();
      const streamed = await postWithKey(owner, 'mixed-2', ndjson({ ...spec, params: {} }, ...targets));
      expect(streamed.status).toBe(202);
      const json = await t
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner)))
        .set('Idempotency-Key', 'mixed-2')
        .send({ targets, ...spec });
      expect(json.status).toBe(202);
      expect(json.headers['idempotent-replayed']).toBe('true');
      expect(jobBody(json).id).toBe(jobBody(streamed).id);
      const different = await t
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner)))
        .set('Idempotency-Key', 'mixed-2')
        .send({ ...spec, targets: ['a'] });
      expectProblem(different, 422, { type: '/problems/idempotency-key-reused' });
      expect(await countJobs(t.db, owner)).toBe(1);
    });

    it('creates exactly one job for concurrent streams with the same key', async () => {
      const owner = newOwner();
      const body = ndjson(spec, ...targetIds(2_000));
      const responses = await Promise.all(
        Array.from({ length: 4 }, () => postWithKey(owner, 'nd-race', body)),
      );
      expect(responses.map((r) => r.status)).toEqual([202, 202, 202, 202]);
      expect(new Set(responses.map((r) => jobBody(r).id)).size).toBe(1);
      expect(responses.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(3);
      expect(await storedFor(t.db, owner)).toEqual({ jobs: 1, items: 2_000, keys: 1 });
    });

    it('keeps no key record when the stream is refused', async () => {
      const owner = newOwner();
      const bad = await postWithKey(owner, 'nd-bad', ndjson(spec, 'a', 7));
      expectProblem(bad, 400, {
        type: '/problems/validation-error',
        details: { 'line 3': expect.any(String) },
      });
      expect(await storedFor(t.db, owner)).toEqual(NOTHING);
      const good = await postWithKey(owner, 'nd-bad', ndjson(spec, 'a', 'b'));
      expect(good.status).toBe(202);
      expect(good.headers['idempotent-replayed']).toBeUndefined();
    });

    it('refuses a malformed key with 400 before reading the stream', async () => {
      const owner = newOwner();
      const res = await postWithKey(owner, 'has space', ndjson(spec, ...targets));
      expectProblem(res, 400, {
        type: '/problems/validation-error',
        details: { 'Idempotency-Key': expect.any(String) },
      });
      expect(await storedFor(t.db, owner)).toEqual(NOTHING);
    });
  });

  describe('a connection lost mid-stream', () => {
    /** Sends the spec and some targets, waits until the server is inside the COPY, then cuts the connection. */
    async function abortMidStream(owner: string): Promise<void> {
      const req = httpRequest({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: JOBS,
        headers: { ...bearer(tokenFor(owner)), 'content-type': NDJSON },
      });
      const closed = new Promise<void>((resolve) => req.on('close', resolve));
      req.on('error', () => undefined);
      req.write(ndjson(SPEC, ...targetIds(5_000)));
      await waitFor('the COPY to start', async () => (await activeCopies(t.db)) > 0, {
        intervalMs: 10,
      });
      req.destroy();
      await closed;
      await waitFor('the COPY to end', async () => (await activeCopies(t.db)) === 0, {
        intervalMs: 10,
      });
    }

    it('leaves no job behind, again and again, and the app keeps serving', async () => {
      const owners: string[] = [];
      // More rounds than DATABASE_POOL_SIZE (6): a connection kept by an aborted stream would show.
      for (let round = 0; round < 7; round++) {
        const owner = newOwner();
        owners.push(owner);
        await abortMidStream(owner);
      }
      const deadline = Date.now() + 500;
      while (Date.now() < deadline) {
        for (const owner of owners) expect(await storedFor(t.db, owner)).toEqual(NOTHING);
        await sleep(50);
      }
      const owner = newOwner();
      const res = await postNdjson(t, owner, ndjson(SPEC, 'a', 'b', 'c'));
      expect(res.status).toBe(202);
      expect(await storedFor(t.db, owner)).toEqual({ jobs: 1, items: 3, keys: 0 });
    });

    it('leaves no job behind when the client aborts while the spec line is incomplete', async () => {
      const owner = newOwner();
      const req = httpRequest({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: JOBS,
        headers: { ...bearer(tokenFor(owner)), 'content-type': NDJSON },
      });
      const closed = new Promise<void>((resolve) => req.on('close', resolve));
      req.on('error', () => undefined);
      req.write('{"action":"no');
      await sleep(50);
      req.destroy();
      await closed;
      await sleep(100);
      expect(await storedFor(t.db, owner)).toEqual(NOTHING);
      expect((await postNdjson(t, owner, ndjson(SPEC, 'a'))).status).toBe(202);
    });

    it('answers 503 when the database connection is lost mid-COPY, stores nothing, and keeps serving', async () => {
      const owner = newOwner();
      const req = t
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner)))
        .set('content-type', NDJSON)
        .timeout(15_000);
      void req.write(ndjson(SPEC, ...targetIds(5_000)));
      await waitFor('the COPY to start', async () => (await activeCopies(t.db)) > 0, {
        intervalMs: 10,
      });
      await t.db.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'COPY bulk_job_items%'`,
      );
      void req.write(ndjson(...targetIds(1_000, 'more')));
      const res = await req;
      expectProblem(res, 503, { type: 'about:blank', title: 'Service Unavailable' });
      expect(res.headers['retry-after']).toBe('5');
      expect(await storedFor(t.db, owner)).toEqual(NOTHING);
      expect((await postNdjson(t, owner, ndjson(SPEC, 'a'))).status).toBe(202);
    });
  });

  describe('with BULK_JOBS_MAX_TARGETS=3', () => {
    let small: TestApp;
    before(async () => {
      small = await createTestApp({ BULK_JOBS_MAX_TARGETS: '3' });
    });
    after(() => small.close());

    it('accepts 3 targets', async () => {
      const owner = newOwner();
      const res = await postNdjson(small, owner, ndjson(SPEC, 'a', 'b', 'c'));
      expect(res.status).toBe(202);
      expect(jobBody(res).total_items).toBe(3);
    });

    it('refuses a 4th target, naming its line, and stores nothing', async () => {
      const owner = newOwner();
      const res = await postNdjson(small, owner, ndjson(SPEC, 'a', 'b', 'c', 'd', 'e'));
      expectProblem(res, 400, {
        type: '/problems/validation-error',
        detail: /line 5\b/i,
        details: { 'line 5': expect.stringContaining('3') },
        line: 5,
      });
      expect(await storedFor(small.db, owner)).toEqual(NOTHING);
    });

    it('names the line of the 4th target after blank lines', async () => {
      const owner = newOwner();
      const res = await postNdjson(small, owner, `${JSON.stringify(SPEC)}\n"a"\n\n"b"\n\n"c"\n\n"d"\n`);
      expectProblem(res, 400, {
        type: '/problems/validation-error',
        details: { 'line 8': expect.any(String) },
      });
      expect(await storedFor(small.db, owner)).toEqual(NOTHING);
    });
  });

  describe('with BODY_LIMIT_BYTES=2048', () => {
    let small: TestApp;
    before(async () => {
      small = await createTestApp({ BODY_LIMIT_BYTES: '2048' });
    });
    after(() => small.close());

    it('is not bound by the body limit: a 100 KB stream is accepted', async () => {
      const owner = newOwner();
      const body = ndjson(SPEC, ...targetIds(5_000, 'target-with-a-longer-id'));
      expect(body.length).toBeGreaterThan(100 * 1024);
      const res = await postNdjson(small, owner, body);
      expect(res.status).toBe(202);
      expect(jobBody(res).total_items).toBe(5_000);
      expect(await storedFor(small.db, owner)).toEqual({ jobs: 1, items: 5_000, keys: 0 });
    });

    it('still refuses a JSON body over the limit with 413', async () => {
      const owner = newOwner();
      const res = await small
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner)))
        .send({ action: 'noop', targets: targetIds(200, 'target-with-a-longer-id') });
      expectProblem(res, 413, { type: 'about:blank', title: 'Payload Too Large' });
      expect(await storedFor(small.db, owner)).toEqual(NOTHING);
    });
  });
});
