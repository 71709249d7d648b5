import { expect } from 'expect';
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Response } from 'supertest';
import { BulkJobsService } from '../../src/bulk-jobs/bulk-jobs.service';
import { createTestApp, type TestApp } from '../support/app';
import { JOBS } from '../support/api';
import { parseCsv } from '../support/csv';
import { insertJob } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';
import { waitFor } from '../support/wait';

const FINISHED = '2026-11-29T10:15:03.944Z';

/** Target ids and data that CSV and JSON must escape: separators, quotes, line breaks, unicode. */
const TRICKY = [
  { target: 'plain', data: null },
  { target: 'comma,inside', data: { note: 'a,b' } },
  { target: 'quote"inside', data: { note: 'say "hi"' } },
  { target: 'line\nbreak', data: { note: 'one\r\ntwo' } },
  { target: 'ünïcødé ✓ 日本 🚀', data: { emoji: '🎉', backslash: 'C:\\path' } },
  { target: '', data: {} },
];

describe('GET /api/actions/bulk/jobs/{id}/results', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  const exportOf = (owner: string, id: string, accept?: string, query: Record<string, string> = {}) => {
    const req = t
      .http()
      .get(`${JOBS}/${id}/results`)
      .query(query)
      .set(bearer(tokenFor(owner)));
    if (accept) void req.set('Accept', accept);
    return req.buffer(true).parse(asText);
  };

  /** A finished job whose items carry the tricky targets, data, results and errors. */
  async function trickyJob(owner: string): Promise<string> {
    const id = await insertJob(t.db, {
      owner,
      status: 'failed',
      itemStatuses: ['succeeded', 'failed', 'skipped', 'succeeded', 'failed', 'pending'],
    });
    for (const [seq, { target, data }] of TRICKY.entries()) {
      await t.db.query(
        `UPDATE bulk_job_items SET target_id = $3, data = $4::jsonb,
           result = CASE WHEN status = 'succeeded' THEN $5::jsonb END,
           last_error = CASE WHEN status = 'failed' THEN $6::jsonb END,
           finished_at = CASE WHEN status IN ('succeeded', 'failed', 'skipped') THEN $7::timestamptz END
         WHERE job_id = $1 AND seq = $2`,
        [
          id,
          seq,
          target,
          data === null ? null : JSON.stringify(data),
          JSON.stringify({ status: 200, body: `ok, "${seq}"\n` }),
          JSON.stringify({ code: 'HTTP_500', message: `boom, "quoted"\nline ${seq}` }),
          FINISHED,
        ],
      );
    }
    return id;
  }

  const expected = [
    {
      target_id: 'plain',
      data: null,
      status: 'succeeded',
      attempts: 1,
      result: { status: 200, body: 'ok, "0"\n' },
      error_code: null,
      error_message: null,
      finished_at: FINISHED,
    },
    {
      target_id: 'comma,inside',
      data: { note: 'a,b' },
      status: 'failed',
      attempts: 1,
      result: null,
      error_code: 'HTTP_500',
      error_message: 'boom, "quoted"\nline 1',
      finished_at: FINISHED,
    },
    {
      target_id: 'quote"inside',
      data: { note: 'say "hi"' },
      status: 'skipped',
      attempts: 1,
      result: null,
      error_code: null,
      error_message: null,
      finished_at: FINISHED,
    },
    {
      target_id: 'line\nbreak',
      data: { note: 'one\r\ntwo' },
      status: 'succeeded',
      attempts: 1,
      result: { status: 200, body: 'ok, "3"\n' },
      error_code: null,
      error_message: null,
      finished_at: FINISHED,
    },
    {
      target_id: 'ünïcødé ✓ 日本 🚀',
      data: { emoji: '🎉', backslash: 'C:\\path' },
      status: 'failed',
      attempts: 1,
      result: null,
      error_code: 'HTTP_500',
      error_message: 'boom, "quoted"\nline 4',
      finished_at: FINISHED,
    },
    {
      target_id: '',
      data: {},
      status: 'pending',
      attempts: 0,
      result: null,
      error_code: null,
      error_message: null,
      finished_at: null,
    },
  ];

  it('streams every item as NDJSON by default, in target order, with a file name', async () => {
    const owner = newOwner();
    const id = await trickyJob(owner);
    const res = await exportOf(owner, id);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    expect(res.headers['content-disposition']).toBe(`attachment; filename="bulk-job-${id}-results.ndjson"`);
    expect(res.headers['cache-control']).toBe('no-store');
    const text = res.body as string;
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.split('\n').slice(0, -1);
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual(expected);
    expect(Object.keys(JSON.parse(lines[0]) as object)).toEqual(Object.keys(expected[0]));
  });

  it('streams CSV for Accept: text/csv: RFC 4180 with a header row, NULL as an empty field', async () => {
    const owner = newOwner();
    const id = await trickyJob(owner);
    const res = await exportOf(owner, id, 'text/csv');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8; header=present');
    expect(res.headers['content-disposition']).toBe(`attachment; filename="bulk-job-${id}-results.csv"`);
    const records = parseCsv(res.body as string);
    expect(records[0].map((f) => f.value)).toEqual(Object.keys(expected[0]));
    expect(records).toHaveLength(1 + expected.length);
    const rows = records.slice(1);
    for (const [i, row] of rows.entries()) {
      const e = expected[i];
      const [target, data, status, attempts, result, code, message, finished] = row;
      expect(target.value).toBe(e.target_id);
      expect(data.value === '' && !data.quoted ? null : JSON.parse(data.value)).toEqual(e.data);
      expect(status.value).toBe(e.status);
      expect(Number(attempts.value)).toBe(e.attempts);
      expect(result.value === '' ? null : JSON.parse(result.value)).toEqual(e.result);
      expect(code.value === '' ? null : code.value).toBe(e.error_code);
      expect(message.value === '' ? null : message.value).toBe(e.error_message);
      expect(finished.value === '' ? null : finished.value).toBe(e.finished_at);
    }
    // An empty string is quoted; NULL is an empty, unquoted field.
    expect(rows[5][0]).toEqual({ value: '', quoted: true });
    expect(rows[0][1]).toEqual({ value: '', quoted: false });
    // The line break inside a field stays a bare LF (as stored); records end with CRLF.
    expect(rows[3][0]).toEqual({ value: 'line\nbreak', quoted: true });
  });

  it('filters by one or several statuses, in the file name too', async () => {
    const owner = newOwner();
    const id = await trickyJob(owner);
    const one = await exportOf(owner, id, undefined, { status: 'failed' });
    expect(one.status).toBe(200);
    expect(ndjson(one).map((r) => r.target_id)).toEqual(['comma,inside', 'ünïcødé ✓ 日本 🚀']);
    const several = await exportOf(owner, id, 'text/csv', { status: 'skipped,pending' });
    expect(several.status).toBe(200);
    expect(several.headers['content-disposition']).toBe(
      `attachment; filename="bulk-job-${id}-results-skipped-pending.csv"`,
    );
    expect(
      parseCsv(several.body as string)
        .slice(1)
        .map((r) => r[0].value),
    ).toEqual(['quote"inside', '']);
    const none = await exportOf(owner, id, undefined, { status: 'running' });
    expect(none.status).toBe(200);
    expect(none.body).toBe('');
  });

  it('refuses an unknown status with a validation problem', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const res = await t
      .http()
      .get(`${JOBS}/${id}/results`)
      .query({ status: 'failed,done' })
      .set(bearer(tokenFor(owner)));
    expectProblem(res, 400, {
      type: '/problems/validation-error',
      details: {
        status:
          'status must be one or more of pending, running, succeeded, failed, skipped, separated by commas',
      },
    });
    const badId = await t
      .http()
      .get(`${JOBS}/not-a-uuid/results`)
      .set(bearer(tokenFor(owner)));
    expectProblem(badId, 400, { type: '/problems/validation-error' });
  });

  it('exports a deleted job that is still retained, and answers 404 as GET does', async () => {
    const owner = newOwner();
    const deleted = await insertJob(t.db, {
      owner,
      status: 'completed',
      items: 2,
      deletedAt: new Date(),
      purgeAt: new Date(Date.now() + 86_400_000),
    });
    const res = await exportOf(owner, deleted);
    expect(res.status).toBe(200);
    expect(ndjson(res).map((r) => r.target_id)).toEqual(['target-1', 'target-2']);

    const purgeDue = await insertJob(t.db, {
      owner,
      status: 'completed',
      deletedAt: new Date(Date.now() - 2000),
      purgeAt: new Date(Date.now() - 1000),
    });
    expectProblem(
      await t
        .http()
        .get(`${JOBS}/${purgeDue}/results`)
        .set(bearer(tokenFor(owner))),
      404,
      {
        type: '/problems/job-not-found',
      },
    );
    const others = await t
      .http()
      .get(`${JOBS}/${deleted}/results`)
      .set(bearer(tokenFor(newOwner())));
    expectProblem(others, 404, { type: '/problems/job-not-found' });
    const admin = await exportOf('ops', deleted).set(
      bearer(tokenFor('ops', { scope: 'bulk-jobs:read bulk-jobs:admin' })),
    );
    expect(admin.status).toBe(200);
    const noRead = await t
      .http()
      .get(`${JOBS}/${deleted}/results`)
      .set(bearer(tokenFor(owner, { scope: 'bulk-jobs:write' })));
    expectProblem(noRead, 403);
  });

  it('stops the query at once when the client goes away', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed', items: 0 });
    await t.db.query(
      `INSERT INTO bulk_job_items (job_id, seq, target_id, status, attempts, data)
       SELECT $1, g, 'target-' || g, 'succeeded', 1, jsonb_build_object('n', g, 'pad', repeat('x', 200))
       FROM generate_series(0, 99999) g`,
      [id],
    );
    await t.app.listen(0, '127.0.0.1');
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    const exports = () =>
      t.db.query<{ pid: number }[]>(
        `SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'active' AND query LIKE 'COPY (SELECT%'`,
      );
    // Reads a little, then stops reading: the server's writes back up into the COPY.
    const held = await holdExport(port, owner, id);
    // Held by back-pressure: the COPY is still there while the client reads nothing.
    await new Promise((r) => setTimeout(r, 300));
    expect(await exports()).toHaveLength(1);
    const destroyedAt = Date.now();
    held.destroy();
    await waitFor('the export query to end', async () => (await exports()).length === 0, {
      timeoutMs: 2000,
      intervalMs: 50,
    });
    expect(Date.now() - destroyedAt).toBeLessThan(2000);
    // The pool is fine: the next export runs to its end.
    const next = await exportOf(owner, id, undefined, { status: 'failed' });
    expect(next.status).toBe(200);
  });
});

describe('GET /api/actions/bulk/jobs/{id}/results: caps on exports in progress', () => {
  /** Per owner 1 and per process 2 (with the uploads' default of 2, below the tests' pool of 5). */
  const PER_OWNER = 1;
  const PER_SERVER = 2;
  let t: TestApp;
  let port: number;
  let service: BulkJobsService;
  const held: HeldExport[] = [];
  before(async () => {
    t = await createTestApp({
      BULK_JOBS_MAX_EXPORTS_PER_OWNER: String(PER_OWNER),
      BULK_JOBS_MAX_EXPORTS: String(PER_SERVER),
    });
    await t.app.listen(0, '127.0.0.1');
    port = (t.app.getHttpServer().address() as AddressInfo).port;
    service = t.app.get(BulkJobsService);
  });
  /** Drops the exports a test held (a failed one leaves them), and waits for their slots. */
  const dropHeld = async () => {
    for (const h of held.splice(0)) h.destroy();
    await waitFor('every export to give its slot back', () => service.exportsInProgress() === 0);
  };
  after(async () => {
    for (const h of held) h.destroy();
    await t?.close();
  });

  const refusedExport = (owner: string, id: string) =>
    t
      .http()
      .get(`${JOBS}/${id}/results`)
      .set(bearer(tokenFor(owner)));
  const exportOf = (owner: string, id: string) => refusedExport(owner, id).buffer(true).parse(asText);

  /** An export whose client reads a little and then stops reading: the COPY waits, holding its connection. */
  async function hold(owner: string, id: string): Promise<HeldExport> {
    const h = await holdExport(port, owner, id);
    held.push(h);
    return h;
  }

  it('refuses a second export of one owner with a 429 before the lookup, serves another owner meanwhile, and takes the owner again once the first client is gone', async () => {
    const owner = newOwner();
    const other = newOwner();
    const big = await bigJob(t, owner);
    const small = await insertJob(t.db, { owner: other, status: 'completed', items: 3 });
    try {
      const first = await hold(owner, big);
      expect(service.exportsInProgress(owner)).toBe(1);

      const refused = await refusedExport(owner, big);
      expectProblem(refused, 429, {
        type: '/problems/too-many-exports',
        title: 'Too many results exports in progress.',
        detail:
          'You already have 1 results exports in progress, the most allowed at once. Retry once one has finished.',
        max_exports: PER_OWNER,
        per: 'owner',
      });
      expect(refused.headers['retry-after']).toBe('5');
      // Refused before any database work: a job that does not exist is a 429 too, not a 404.
      expectProblem(await refusedExport(owner, randomUUID()), 429, { type: '/problems/too-many-exports' });

      // Another owner is not refused while the first one holds its export.
      const others = await exportOf(other, small);
      expect(others.status).toBe(200);
      expect(ndjson(others).map((r) => r.target_id)).toEqual(['target-1', 'target-2', 'target-3']);
      expect(first.closed()).toBe(false);
      expect(service.exportsInProgress(owner)).toBe(1);

      // The first client goes away: its slot comes back with its connection.
      first.destroy();
      await waitFor('the first export to give its slot back', () => service.exportsInProgress(owner) === 0);
      const next = await exportOf(owner, big);
      expect(next.status).toBe(200);
      expect(ndjson(next)).toHaveLength(BIG_JOB_ITEMS);
      // Ended by its last row, the export gave its slot back too.
      await waitFor('the finished export to give its slot back', () => service.exportsInProgress() === 0);
    } finally {
      await dropHeld();
    }
  });

  it('gives the slot back before the response ends: an owner that exports again at once is served, CSV too', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed', items: 20 });
    const inProgressAtEnd: number[] = [];
    for (let i = 0; i < 20; i++) {
      const csv = i % 2 === 1;
      const { status, body } = await readExport(port, owner, id, csv ? 'text/csv' : undefined, () =>
        inProgressAtEnd.push(service.exportsInProgress(owner)),
      );
      expect(status).toBe(200);
      expect(body.split(csv ? '\r\n' : '\n').filter(Boolean)).toHaveLength(csv ? 21 : 20);
    }
    // Seen by the client's last byte, not waited for: the connection and the slot were back first.
    expect(inProgressAtEnd).toEqual(new Array<number>(20).fill(0));
  });

  it('gives the slot back when the lookup refuses the export (404)', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed', items: 1 });
    for (let i = 0; i < 3; i++) {
      expectProblem(await refusedExport(owner, randomUUID()), 404, { type: '/problems/job-not-found' });
      expectProblem(await refusedExport(newOwner(), id), 404, { type: '/problems/job-not-found' });
    }
    expect(service.exportsInProgress()).toBe(0);
    expect((await exportOf(owner, id)).status).toBe(200);
  });

  it("refuses an export past the server's cap with the server's wording, whoever asks", async () => {
    const owners = [newOwner(), newOwner()];
    const late = newOwner();
    const jobs = await Promise.all(owners.map((o) => bigJob(t, o)));
    const lateJob = await insertJob(t.db, { owner: late, status: 'completed', items: 2 });
    try {
      for (const [i, owner] of owners.entries()) await hold(owner, jobs[i]);
      expect(service.exportsInProgress()).toBe(PER_SERVER);

      const refused = await refusedExport(late, lateJob);
      expectProblem(refused, 429, {
        type: '/problems/too-many-exports',
        detail:
          'This server already has 2 results exports in progress, the most it serves at once. Retry in 5 seconds.',
        max_exports: PER_SERVER,
        per: 'server',
      });
      expect(refused.headers['retry-after']).toBe('5');

      // One held export ends: there is room again.
      held.shift()!.destroy();
      await waitFor(
        'a held export to give its slot back',
        () => service.exportsInProgress() === PER_SERVER - 1,
      );
      const admitted = await exportOf(late, lateJob);
      expect(admitted.status).toBe(200);
      expect(ndjson(admitted).map((r) => r.target_id)).toEqual(['target-1', 'target-2']);
    } finally {
      await dropHeld();
    }
  });
});

describe('GET /api/actions/bulk/jobs/{id}/results: an export cut by BULK_JOBS_EXPORT_TIMEOUT_MS', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ BULK_JOBS_MAX_EXPORTS_PER_OWNER: '1', BULK_JOBS_EXPORT_TIMEOUT_MS: '5000' });
    await t.app.listen(0, '127.0.0.1');
  });
  after(() => t.close());

  it('gives the slot back when the timeout ends a held export', async () => {
    const { port } = t.app.getHttpServer().address() as AddressInfo;
    const service = t.app.get(BulkJobsService);
    const owner = newOwner();
    const id = await bigJob(t, owner);
    const copies = () =>
      t.db.query<{ pid: number }[]>(
        `SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'COPY (SELECT%' AND query LIKE '%' || $1 || '%'`,
        [id],
      );
    const first = await holdExport(port, owner, id);
    try {
      // The client reads nothing more, and the export holds its slot and its COPY...
      expect(service.exportsInProgress(owner)).toBe(1);
      expect(await copies()).toHaveLength(1);
      // ...until BULK_JOBS_EXPORT_TIMEOUT_MS, which ends the export, its connection and its backend.
      await waitFor('the timeout to end the held export', () => service.exportsInProgress(owner) === 0, {
        timeoutMs: 20_000,
      });
      await waitFor('its backend to end', async () => (await copies()).length === 0, { timeoutMs: 5000 });
      const next = await t
        .http()
        .get(`${JOBS}/${id}/results`)
        .query({ status: 'failed' })
        .set(bearer(tokenFor(owner)));
      expect(next.status).toBe(200);
    } finally {
      first.destroy();
    }
  });
});

/** Items enough that an export does not fit the sockets' buffers when its client stops reading. */
const BIG_JOB_ITEMS = 100_000;

async function bigJob(t: TestApp, owner: string): Promise<string> {
  const id = await insertJob(t.db, { owner, status: 'completed', items: 0 });
  await t.db.query(
    `INSERT INTO bulk_job_items (job_id, seq, target_id, status, attempts, data)
     SELECT $1, g, 'target-' || g, 'succeeded', 1, jsonb_build_object('n', g, 'pad', repeat('x', 200))
     FROM generate_series(0, $2::int - 1) g`,
    [id, BIG_JOB_ITEMS],
  );
  return id;
}

interface HeldExport {
  /** True once the connection closed (the server ended it, or destroy()). */
  closed: () => boolean;
  destroy: () => void;
}

/** Starts an export over a raw connection, reads its first 256 KiB and stops reading. */
async function holdExport(port: number, owner: string, id: string): Promise<HeldExport> {
  let closed = false;
  const req = httpRequest({
    host: '127.0.0.1',
    port,
    path: `${JOBS}/${id}/results`,
    headers: bearer(tokenFor(owner)),
  });
  req.on('close', () => (closed = true));
  let received = 0;
  const paused = new Promise<void>((resolve, reject) => {
    req.on('response', (res) => {
      if (res.statusCode !== 200) reject(new Error(`the export to hold answered ${res.statusCode}`));
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > 256 * 1024) {
          res.pause();
          resolve();
        }
      });
      res.on('error', () => undefined);
      res.on('close', () => (closed = true));
    });
    req.on('error', (err) => (received > 256 * 1024 ? undefined : reject(err)));
  });
  req.end();
  await paused;
  return { closed: () => closed, destroy: () => req.destroy() };
}

/** One whole export read over a plain connection; `atEnd` runs as the client reads the last byte. */
function readExport(
  port: number,
  owner: string,
  id: string,
  accept: string | undefined,
  atEnd: () => void,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      path: `${JOBS}/${id}/results`,
      headers: { ...bearer(tokenFor(owner)), ...(accept ? { accept } : {}) },
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        atEnd();
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** superagent's parser for a body it does not know: the bytes as UTF-8 text. */
function asText(res: Response, done: (err: Error | null, body: string) => void): void {
  const stream = res as unknown as NodeJS.ReadableStream;
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => (text += chunk));
  stream.on('end', () => done(null, text));
}

function ndjson(res: Response): Record<string, unknown>[] {
  const text = res.body as string;
  return text === ''
    ? []
    : text
        .split('\n')
        .slice(0, -1)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
}
