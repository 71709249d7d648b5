import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { createTestApp, type TestApp } from '../support/app';
import { createJob, JOBS, jobBody, RFC3339_UTC, UUID } from '../support/api';
import { createEngineDatabase, createEngineTestApp, type EngineDatabase } from '../support/engine';
import { countJobs, itemRows } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

describe('POST /api/actions/bulk/jobs', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  const post = (owner: string, body: unknown) =>
    t
      .http()
      .post(JOBS)
      .set(bearer(tokenFor(owner)))
      .send(body as object);

  describe('creating a job', () => {
    it('answers 202 with Location and the job in snake_case', async () => {
      const owner = newOwner();
      const sentAt = Date.now();
      const res = await post(owner, {
        action: 'noop',
        targets: ['a', 'b', 'c'],
        options: { max_attempts: 5 },
      });
      expect(res.status).toBe(202);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const job = jobBody(res);
      expect(job.id).toMatch(UUID);
      expect(res.headers.location).toBe(`${JOBS}/${job.id}`);
      expect(Object.keys(job).sort()).toEqual(
        [
          'id',
          'action',
          'params',
          'options',
          'status',
          'total_items',
          'succeeded_items',
          'failed_items',
          'skipped_items',
          'progress',
          'owner',
          'error',
          'deleted_at',
          'purge_at',
          'retry_of',
          'labels',
          'created_at',
          'started_at',
          'finished_at',
          'updated_at',
          'notification',
        ].sort(),
      );
      expect(job).toMatchObject({
        action: 'noop',
        params: {},
        options: { max_attempts: 5 },
        status: 'pending',
        total_items: 3,
        succeeded_items: 0,
        failed_items: 0,
        skipped_items: 0,
        progress: 0,
        owner,
        error: null,
        deleted_at: null,
        purge_at: null,
        retry_of: null,
        labels: {},
        started_at: null,
        finished_at: null,
      });
      expect(job.created_at).toMatch(RFC3339_UTC);
      expect(job.updated_at).toMatch(RFC3339_UTC);
      expect(Date.parse(job.created_at)).toBeGreaterThanOrEqual(sentAt - 1000);
      expect(Date.parse(job.created_at)).toBeLessThanOrEqual(Date.now() + 1000);
    });

    it('the Location answers with the same job', async () => {
      const owner = newOwner();
      const created = await post(owner, { action: 'noop', targets: ['x'] });
      const res = await t
        .http()
        .get(created.headers.location)
        .set(bearer(tokenFor(owner)));
      expect(res.status).toBe(200);
      expect(jobBody(res)).toEqual(jobBody(created));
    });

    it('writes one item per target, in request order, with data', async () => {
      const owner = newOwner();
      const targets = [
        'user-1',
        { id: 'user-2', data: { email: 'b@example.com', tags: ['x', 'y'], nested: { n: 1 } } },
        { id: 'user-3' },
        'quote"back\\slash,comma{brace}',
        'NULL',
        { id: 'ünïcødé ✓', data: { text: 'line\nbreak "quoted" \\ back' } },
      ];
      const job = await createJob(t, owner, { action: 'noop', targets });
      const items = await itemRows(t.db, job.id);
      expect(items.map((i) => [i.seq, i.target_id, i.data, i.status])).toEqual([
        [0, 'user-1', null, 'pending'],
        [1, 'user-2', { email: 'b@example.com', tags: ['x', 'y'], nested: { n: 1 } }, 'pending'],
        [2, 'user-3', null, 'pending'],
        [3, 'quote"back\\slash,comma{brace}', null, 'pending'],
        [4, 'NULL', null, 'pending'],
        [5, 'ünïcødé ✓', { text: 'line\nbreak "quoted" \\ back' }, 'pending'],
      ]);
      expect(job.total_items).toBe(6);
    });

    it('writes targets beyond one INSERT chunk with contiguous seqs', async () => {
      const owner = newOwner();
      const targets = Array.from({ length: 12_001 }, (_, i) => `t-${i}`);
      const job = await createJob(t, owner, { action: 'noop', targets });
      expect(job.total_items).toBe(12_001);
      const rows: { n: number; lo: number; hi: number; mismatched: number }[] = await t.db.query(
        `SELECT count(*)::int AS n, min(seq) AS lo, max(seq) AS hi,
                count(*) FILTER (WHERE target_id <> 't-' || seq)::int AS mismatched
         FROM bulk_job_items WHERE job_id = $1`,
        [job.id],
      );
      expect(rows).toEqual([{ n: 12_001, lo: 0, hi: 12_000, mismatched: 0 }]);
    });

    it('accepts a target id of exactly 512 characters and the same id twice', async () => {
      const owner = newOwner();
      const long = 'x'.repeat(512);
      const job = await createJob(t, owner, { action: 'noop', targets: [long, long] });
      expect((await itemRows(t.db, job.id)).map((i) => i.target_id)).toEqual([long, long]);
    });

    it('stores params and options as sent', async () => {
      const owner = newOwner();
      const options = { max_attempts: 1, concurrency: 10_000, rate_limit_per_second: 0.5 };
      const job = await createJob(t, owner, { action: 'noop', targets: ['a'], params: {}, options });
      expect(job.options).toEqual(options);
      const rows: { options: unknown; params: unknown; owner: string }[] = await t.db.query(
        'SELECT options, params, owner FROM bulk_jobs WHERE id = $1',
        [job.id],
      );
      expect(rows).toEqual([{ options, params: {}, owner }]);
    });
  });

  describe('validation', () => {
    const valid = { action: 'noop', targets: ['a'] };
    const cases: { name: string; body: unknown; details: Record<string, unknown> }[] = [
      { name: 'a missing action', body: { targets: ['a'] }, details: { action: expect.any(String) } },
      {
        name: 'an action that is not a string',
        body: { ...valid, action: 42 },
        details: { action: expect.any(String) },
      },
      {
        name: 'an action name that cannot exist',
        body: { ...valid, action: 'Not An Action!' },
        details: { action: expect.any(String) },
      },
      {
        name: 'an unknown action',
        body: { ...valid, action: 'frobnicate' },
        details: { action: expect.stringContaining('frobnicate') },
      },
      {
        name: 'params the action does not know',
        body: { ...valid, params: { url: 'x' } },
        details: { 'params.url': expect.any(String) },
      },
      {
        name: 'params that are not an object',
        body: { ...valid, params: 'x' },
        details: { params: expect.any(String) },
      },
      {
        name: 'params that are an array',
        body: { ...valid, params: [] },
        details: { params: expect.any(String) },
      },
      { name: 'missing targets', body: { action: 'noop' }, details: { targets: expect.any(String) } },
      {
        name: 'targets that are not an array',
        body: { ...valid, targets: 'a' },
        details: { targets: expect.any(String) },
      },
      {
        name: 'empty targets',
        body: { ...valid, targets: [] },
        details: { targets: expect.stringContaining('at least one') },
      },
      {
        name: 'an empty target id',
        body: { ...valid, targets: ['a', ''] },
        details: { targets: expect.stringContaining('targets[1]') },
      },
      {
        name: 'a target id of 513 characters',
        body: { ...valid, targets: ['x'.repeat(513)] },
        details: { targets: expect.stringContaining('targets[0]') },
      },
      {
        name: 'a target object id of 513 characters',
        body: { ...valid, targets: [{ id: 'x'.repeat(513) }] },
        details: { targets: expect.stringContaining('targets[0]') },
      },
      {
        name: 'a target that is a number',
        body: { ...valid, targets: ['a', 'b', 7] },
        details: { targets: expect.stringContaining('targets[2]') },
      },
      {
        name: 'a target that is null',
        body: { ...valid, targets: [null] },
        details: { targets: expect.stringContaining('targets[0]') },
      },
      {
        name: 'a target object without id',
        body: { ...valid, targets: [{ data: {} }] },
        details: { targets: expect.stringContaining('targets[0]') },
      },
      {
        name: 'a target object with an unknown member',
        body: { ...valid, targets: [{ id: 'a', extra: 1 }] },
        details: { targets: expect.stringContaining('extra') },
      },
      {
        name: 'target data that is a string',
        body: { ...valid, targets: [{ id: 'a', data: 'x' }] },
        details: { targets: expect.stringContaining('data') },
      },
      {
        name: 'target data that is an array',
        body: { ...valid, targets: [{ id: 'a', data: [1] }] },
        details: { targets: expect.stringContaining('data') },
      },
      {
        name: 'target data that is null',
        body: { ...valid, targets: [{ id: 'a', data: null }] },
        details: { targets: expect.stringContaining('data') },
      },
      // PostgreSQL cannot store these: they must be a 400, not a 500 from the INSERT.
      {
        name: 'a target id with a NUL character',
        body: { ...valid, targets: ['a\u0000b'] },
        details: { targets: expect.stringContaining('targets[0]') },
      },
      {
        name: 'a target object id with a NUL character',
        body: { ...valid, targets: [{ id: '\u0000' }] },
        details: { targets: expect.stringContaining('targets[0]') },
      },
      {
        name: 'target data with \\u0000',
        body: { ...valid, targets: ['a', { id: 'b', data: { x: 'a\u0000' } }] },
        details: { targets: expect.stringContaining('targets[1]') },
      },
      {
        name: 'an unknown top-level field',
        body: { ...valid, priority: 'high' },
        details: { priority: expect.any(String) },
      },
      {
        name: 'max_attempts of 0',
        body: { ...valid, options: { max_attempts: 0 } },
        details: { 'options.max_attempts': expect.any(String) },
      },
      {
        name: 'max_attempts of 26',
        body: { ...valid, options: { max_attempts: 26 } },
        details: { 'options.max_attempts': expect.any(String) },
      },
      {
        name: 'max_attempts of 1.5',
        body: { ...valid, options: { max_attempts: 1.5 } },
        details: { 'options.max_attempts': expect.any(String) },
      },
      {
        name: 'max_attempts as a string',
        body: { ...valid, options: { max_attempts: '3' } },
        details: { 'options.max_attempts': expect.any(String) },
      },
      {
        name: 'concurrency of 10001',
        body: { ...valid, options: { concurrency: 10_001 } },
        details: { 'options.concurrency': expect.any(String) },
      },
      {
        name: 'rate_limit_per_second of 0',
        body: { ...valid, options: { rate_limit_per_second: 0 } },
        details: { 'options.rate_limit_per_second': expect.any(String) },
      },
      {
        name: 'an unknown option',
        body: { ...valid, options: { retries: 3 } },
        details: { 'options.retries': expect.any(String) },
      },
      {
        name: 'options that are not an object',
        body: { ...valid, options: 3 },
        details: { options: expect.any(String) },
      },
    ];
    for (const c of cases) {
      it(`refuses ${c.name} with 400 and details`, async () => {
        const owner = newOwner();
        const res = await post(owner, c.body);
        expectProblem(res, 400, { type: '/problems/validation-error', details: c.details });
        expect(await countJobs(t.db, owner)).toBe(0);
      });
    }

    it('names every offending field at once', async () => {
      const res = await post(newOwner(), {
        action: 7,
        targets: [],
        options: { max_attempts: 0 },
        extra: true,
      });
      expectProblem(res, 400, { type: '/problems/validation-error' });
      expect(Object.keys((res.body as { details: object }).details).sort()).toEqual(
        ['action', 'extra', 'options.max_attempts', 'targets'].sort(),
      );
    });

    it('refuses a JSON array body with 400', async () => {
      const res = await post(newOwner(), [valid]);
      expectProblem(res, 400, { type: '/problems/validation-error' });
    });

    for (const body of ['null', '"a string"', '42']) {
      it(`refuses the JSON body ${body} with 400`, async () => {
        const res = await t
          .http()
          .post(JOBS)
          .set(bearer(tokenFor(newOwner())))
          .set('content-type', 'application/json')
          .send(body);
        expectProblem(res, 400);
      });
    }

    it('refuses malformed JSON with a 400 about:blank problem', async () => {
      const res = await t
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(newOwner())))
        .set('content-type', 'application/json')
        .send('{"action": "noop", "targets": [');
      expectProblem(res, 400, {
        type: 'about:blank',
        title: 'Bad Request',
        detail: 'The request body is not valid JSON.',
      });
    });

    it('refuses an empty JSON body with 400', async () => {
      const res = await t
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(newOwner())))
        .set('content-type', 'application/json');
      expectProblem(res, 400);
    });

    it('refuses a text/plain body with 415', async () => {
      const res = await t
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(newOwner())))
        .set('content-type', 'text/plain')
        .send(JSON.stringify(valid));
      expectProblem(res, 415, { type: 'about:blank', title: 'Unsupported Media Type' });
    });
  });

  describe('with small limits', () => {
    let small: TestApp;
    before(async () => {
      small = await createTestApp({ BULK_JOBS_MAX_INLINE_TARGETS: '5', BODY_LIMIT_BYTES: '2048' });
    });
    after(() => small.close());

    it('accepts BULK_JOBS_MAX_INLINE_TARGETS targets', async () => {
      const owner = newOwner();
      const res = await small
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner)))
        .send({ action: 'noop', targets: ['1', '2', '3', '4', '5'] });
      expect(res.status).toBe(202);
      expect(jobBody(res).total_items).toBe(5);
    });

    it('refuses more than BULK_JOBS_MAX_INLINE_TARGETS targets with 400 details.targets', async () => {
      const owner = newOwner();
      const res = await small
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner)))
        .send({ action: 'noop', targets: ['1', '2', '3', '4', '5', '6'] });
      expectProblem(res, 400, {
        type: '/problems/validation-error',
        details: { targets: expect.stringContaining('5') },
      });
      expect(await countJobs(small.db, owner)).toBe(0);
    });

    it('refuses a body over BODY_LIMIT_BYTES with 413', async () => {
      const owner = newOwner();
      const res = await small
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner)))
        .send({
          action: 'noop',
          targets: ['x'.repeat(500), 'y'.repeat(500), 'z'.repeat(500), 'w'.repeat(500), 'v'.repeat(500)],
        });
      expectProblem(res, 413, { type: 'about:blank', title: 'Payload Too Large' });
      expect(await countJobs(small.db, owner)).toBe(0);
    });
  });

  describe('Idempotency-Key', () => {
    const body = {
      action: 'noop',
      targets: ['a', { id: 'b', data: { n: 1 } }],
      options: { max_attempts: 2 },
    };
    const postWithKey = (owner: string, key: string, b: unknown = body) =>
      t
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner)))
        .set('Idempotency-Key', key)
        .send(b as object);

    it('returns the first job for the same key and body, with the same status code', async () => {
      const owner = newOwner();
      const first = await postWithKey(owner, 'key-1');
      const second = await postWithKey(owner, 'key-1');
      expect(first.status).toBe(202);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      expect(second.status).toBe(202);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(jobBody(second).id).toBe(jobBody(first).id);
      expect(second.headers.location).toBe(first.headers.location);
      expect(jobBody(second)).toEqual(jobBody(first));
      expect(await countJobs(t.db, owner)).toBe(1);
    });

    it('treats a body with the same content in another key order as the same request', async () => {
      const owner = newOwner();
      const first = await postWithKey(owner, 'key-order');
      const second = await postWithKey(owner, 'key-order', {
        options: { max_attempts: 2 },
        targets: ['a', { data: { n: 1 }, id: 'b' }],
        action: 'noop',
      });
      expect(second.status).toBe(202);
      expect(jobBody(second).id).toBe(jobBody(first).id);
    });

    it('refuses the same key with a different body with 422', async () => {
      const owner = newOwner();
      const first = await postWithKey(owner, 'key-2');
      expect(first.status).toBe(202);
      for (const other of [
        { ...body, targets: ['a', { id: 'b', data: { n: 2 } }] },
        { ...body, targets: [{ id: 'b', data: { n: 1 } }, 'a'] },
        { ...body, options: { max_attempts: 3 } },
      ]) {
        const res = await postWithKey(owner, 'key-2', other);
        expectProblem(res, 422, { type: '/problems/idempotency-key-reused' });
      }
      expect(await countJobs(t.db, owner)).toBe(1);
    });

    it('scopes keys to the owner', async () => {
      const alice = newOwner();
      const bob = newOwner();
      const a = await postWithKey(alice, 'shared-key');
      const b = await postWithKey(bob, 'shared-key');
      expect(a.status).toBe(202);
      expect(b.status).toBe(202);
      expect(b.headers['idempotent-replayed']).toBeUndefined();
      expect(jobBody(b).id).not.toBe(jobBody(a).id);
      expect(jobBody(b).owner).toBe(bob);
    });

    it('creates exactly one job for 10 concurrent requests with the same key', async () => {
      const owner = newOwner();
      const responses = await Promise.all(Array.from({ length: 10 }, () => postWithKey(owner, 'race-key')));
      expect(responses.map((r) => r.status)).toEqual(new Array(10).fill(202));
      expect(new Set(responses.map((r) => jobBody(r).id)).size).toBe(1);
      expect(responses.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(9);
      expect(await countJobs(t.db, owner)).toBe(1);
      const items: { n: number }[] = await t.db.query(
        'SELECT count(*)::int AS n FROM bulk_job_items i JOIN bulk_jobs j ON j.id = i.job_id WHERE j.owner = $1',
        [owner],
      );
      expect(items[0].n).toBe(2);
    });

    for (const [name, key] of [
      ['300 characters', 'k'.repeat(300)],
      ['a space', 'has space'],
      ['a non-ASCII character', 'clé'],
    ] as const) {
      it(`refuses a key with ${name} with 400`, async () => {
        const owner = newOwner();
        const res = await t
          .http()
          .post(JOBS)
          .set(bearer(tokenFor(owner)))
          .set('Idempotency-Key', key)
          .send(body);
        expectProblem(res, 400, {
          type: '/problems/validation-error',
          details: { 'Idempotency-Key': expect.any(String) },
        });
        expect(await countJobs(t.db, owner)).toBe(0);
      });
    }

    it('accepts a key of 255 characters', async () => {
      const res = await postWithKey(newOwner(), 'k'.repeat(255));
      expect(res.status).toBe(202);
    });

    it('lets a key be reused once its record is older than 24 hours', async () => {
      const owner = newOwner();
      const first = await postWithKey(owner, 'old-key');
      await t.db.query(
        `UPDATE bulk_job_idempotency_keys SET created_at = now() - interval '24 hours 1 minute' WHERE owner = $1`,
        [owner],
      );
      const second = await postWithKey(owner, 'old-key', { action: 'noop', targets: ['other'] });
      expect(second.status).toBe(202);
      expect(second.headers['idempotent-replayed']).toBeUndefined();
      expect(jobBody(second).id).not.toBe(jobBody(first).id);
      const third = await postWithKey(owner, 'old-key', { action: 'noop', targets: ['other'] });
      expect(jobBody(third).id).toBe(jobBody(second).id);
      expect(third.headers['idempotent-replayed']).toBe('true');
      expect(await countJobs(t.db, owner)).toBe(2);
    });

    it('still holds a key that is just under 24 hours old', async () => {
      const owner = newOwner();
      await postWithKey(owner, 'young-key');
      await t.db.query(
        `UPDATE bulk_job_idempotency_keys SET created_at = now() - interval '23 hours 59 minutes' WHERE owner = $1`,
        [owner],
      );
      const res = await postWithKey(owner, 'young-key', { action: 'noop', targets: ['other'] });
      expectProblem(res, 422, { type: '/problems/idempotency-key-reused' });
    });
  });

  describe('an Idempotency-Key replay of a JSON create', () => {
    let db: EngineDatabase;
    let own: TestApp;
    before(async () => {
      // A database of its own: the spec counts every INSERT into the items table there.
      db = await createEngineDatabase();
      own = await createEngineTestApp(db.url);
      // A sequence is not rolled back: it counts the item INSERTs of committed and rolled-back transactions alike.
      await own.db.query(`
        CREATE SEQUENCE item_inserts;
        CREATE FUNCTION count_item_insert() RETURNS trigger LANGUAGE plpgsql AS
          $$ BEGIN PERFORM nextval('item_inserts'); RETURN NULL; END $$;
        CREATE TRIGGER count_item_inserts AFTER INSERT ON bulk_job_items
          FOR EACH STATEMENT EXECUTE FUNCTION count_item_insert();`);
    });
    after(async () => {
      await own?.close();
      await db?.drop();
    });

    const inserts = async (): Promise<number> => {
      const [row] = await own.db.query<{ n: number }[]>(
        `SELECT CASE WHEN is_called THEN last_value ELSE 0 END::int AS n FROM item_inserts`,
      );
      return row.n;
    };

    it('writes no item: the key is claimed before the items', async () => {
      const owner = newOwner();
      const big = { action: 'noop', targets: Array.from({ length: 12_000 }, (_, i) => `t${i}`) };
      const post = () =>
        own
          .http()
          .post(JOBS)
          .set(bearer(tokenFor(owner)))
          .set('Idempotency-Key', 'big-key')
          .send(big);
      expect((await post()).status).toBe(202);
      const afterFirst = await inserts();
      expect(afterFirst).toBeGreaterThan(0);
      const replay = await post();
      expect(replay.status).toBe(202);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(await inserts()).toBe(afterFirst);
    });
  });
});
