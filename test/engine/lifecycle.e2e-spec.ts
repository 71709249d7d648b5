import { expect } from 'expect';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type {
  BulkJobItemListResponseDto,
  BulkJobResponseDto,
} from '../../src/bulk-jobs/dto/bulk-job-response.dto';
import type { TestApp } from '../support/app';
import { createJob, JOBS } from '../support/api';
import {
  createEngineDatabase,
  createEngineTestApp,
  itemStatusCounts,
  jobCounters,
  killAll,
  startWorker,
  waitFor,
  waitForJob,
  type EngineDatabase,
  type WorkerProcess,
} from '../support/engine';
import { bearer, newOwner, tokenFor } from '../support/tokens';

interface Seen {
  at: number;
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/**
 * A local HTTP server standing in for a downstream API. Paths:
 * /ok/*, /always-503/*, /flaky/* (503 with Retry-After: 1 once per path, then 200),
 * /missing/* (404), /redirect-away/* (302 to a host not on the allow-list),
 * /redirect-here/* (302 to /ok/ on this server), /slow/* (never answers in time),
 * /count/* (200 after 400 ms, counting requests in flight).
 */
class Downstream {
  readonly seen: Seen[] = [];
  private readonly flaked = new Set<string>();
  inFlight = 0;
  maxInFlight = 0;
  private server!: Server;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const path = req.url ?? '';
        this.seen.push({ at: Date.now(), method: req.method ?? '', path, headers: req.headers, body });
        if (path.startsWith('/ok/'))
          return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
        if (path.startsWith('/always-503/')) return void res.writeHead(503).end();
        if (path.startsWith('/flaky/')) {
          if (this.flaked.has(path)) return void res.writeHead(200).end();
          this.flaked.add(path);
          return void res.writeHead(503, { 'retry-after': '1' }).end();
        }
        if (path.startsWith('/missing/')) return void res.writeHead(404).end();
        if (path.startsWith('/redirect-away/')) {
          return void res.writeHead(302, { location: `http://localhost:${this.port}/ok/redirected` }).end();
        }
        if (path.startsWith('/redirect-here/'))
          return void res.writeHead(307, { location: '/ok/after-redirect' }).end();
        // Far beyond the action's timeout; stop() cuts the connection.
        if (path.startsWith('/slow/')) return void setTimeout(() => res.writeHead(200).end(), 60_000).unref();
        if (path.startsWith('/count/')) {
          this.inFlight++;
          this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
          return void setTimeout(() => {
            this.inFlight--;
            res.writeHead(200).end();
          }, 400);
        }
        res.writeHead(500).end();
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  requests(prefix: string): Seen[] {
    return this.seen.filter((s) => s.path.startsWith(prefix));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/** Items a worker claims at most at once. */
const BATCH = 100;
const targets = (n: number, prefix = 't') => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe('job lifecycle with worker processes', () => {
  let db: EngineDatabase;
  let t: TestApp;
  const downstream = new Downstream();
  const workers: WorkerProcess[] = [];
  const owner = newOwner();
  const auth = bearer(tokenFor(owner));
  let base = '';

  before(async () => {
    await downstream.start();
    base = `http://127.0.0.1:${downstream.port}`;
    db = await createEngineDatabase();
    const env = {
      ACTIONS_HTTP_ALLOWED_HOSTS: `127.0.0.1:${downstream.port}`,
      // Long enough for a busy machine's answers to /ok/; /slow/ never answers within it.
      ACTIONS_HTTP_TIMEOUT_MS: '2000',
      WORKER_RETRY_BASE_MS: '200',
      WORKER_BATCH_SIZE: String(BATCH),
      WORKER_CONCURRENCY: '20',
      WORKER_POLL_INTERVAL_MS: '100',
      WORKER_LEASE_MS: '6000',
    };
    t = await createEngineTestApp(db.url, { env });
    for (let i = 0; i < 2; i++) workers.push(startWorker(db.url, env));
    await Promise.all(workers.map((w) => w.ready));
  });

  after(async () => {
    await killAll(workers);
    await t?.close();
    await db?.drop();
    await downstream.stop();
  });

  it('cancels mid-job: cancelling while items are in flight, then cancelled, the rest skipped, no claims after', async () => {
    const job = await createJob(t, owner, {
      action: 'simulate',
      params: { delay_ms: 200 },
      targets: targets(2000),
    });
    await waitFor(
      'some items to succeed',
      async () => (await jobCounters(t.db, job.id)).succeeded_items >= 50,
    );

    const res = await t.http().post(`${JOBS}/${job.id}/cancel`).set(auth);
    expect(res.status).toBe(200);
    expect((res.body as BulkJobResponseDto).status).toBe('cancelling');
    const [{ now: cancelledAt }]: { now: Date }[] = await t.db.query('SELECT now() AS now');

    const done = await waitForJob(t.db, job.id, ['cancelled'], 60_000);
    const items = await itemStatusCounts(t.db, job.id);
    expect(items.pending ?? 0).toBe(0);
    expect(items.running ?? 0).toBe(0);
    expect(done.running_items).toBe(0);
    expect(done.succeeded_items).toBe(items.succeeded);
    expect(done.skipped_items).toBe(items.skipped);
    expect(done.succeeded_items + done.skipped_items).toBe(2000);
    expect(items.skipped).toBeGreaterThan(1000);

    const after: { late: number; skipped_started: number }[] = await t.db.query(
      `SELECT count(*) FILTER (WHERE started_at > $2)::int AS late,
              count(*) FILTER (WHERE status = 'skipped' AND attempts > 0)::int AS skipped_started
       FROM bulk_job_items WHERE job_id = $1`,
      [job.id, cancelledAt],
    );
    // No item was claimed after the cancel; the skipped ones never started.
    expect(after[0]).toEqual({ late: 0, skipped_started: 0 });
    const got = await t.http().get(`${JOBS}/${job.id}`).set(auth);
    expect(got.body).toMatchObject({ status: 'cancelled', progress: 1 });
    expect((got.body as BulkJobResponseDto).finished_at).not.toBeNull();
  });

  it('retries with exponential backoff, then fails the item with last_error', async () => {
    const job = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/always-503/{id}`, method: 'POST' },
      options: { max_attempts: 3 },
      targets: ['r1', 'r2'],
    });
    const done = await waitForJob(t.db, job.id, ['failed', 'completed'], 60_000);
    expect(done).toMatchObject({ status: 'failed', failed_items: 2, succeeded_items: 0, running_items: 0 });

    const res = await t.http().get(`${JOBS}/${job.id}/items`).set(auth);
    const items = (res.body as BulkJobItemListResponseDto).items;
    for (const item of items) {
      expect(item).toMatchObject({ status: 'failed', attempts: 3 });
      expect(item.last_error).toEqual({
        code: 'HTTP_503',
        message: expect.stringMatching(/answered 503/),
      });
      const calls = downstream.requests(`/always-503/${item.target_id}`);
      // A 5xx may come after the effect: every attempt carries the item's one key.
      expect(calls.map((c) => c.headers['idempotency-key'])).toEqual(
        [1, 2, 3].map(() => `"${job.id}:${item.seq}"`),
      );
      // Base 200 ms doubling, with at least half of each step kept by the jitter.
      expect(calls[1].at - calls[0].at).toBeGreaterThanOrEqual(100);
      expect(calls[2].at - calls[1].at).toBeGreaterThanOrEqual(200);
    }
  });

  it('http: calls the URL template with the data, retries a 503 after Retry-After, fails on 404', async () => {
    const job = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/ok/{id}?src=bulk`, method: 'PUT', headers: { 'X-Test': 'yes' } },
      targets: [{ id: 'a b/c', data: { x: 1 } }, 'plain'],
    });
    expect((await waitForJob(t.db, job.id, ['completed', 'failed'])).status).toBe('completed');
    const [first, second] = downstream.requests('/ok/');
    expect(first).toMatchObject({ method: 'PUT', path: '/ok/a%20b%2Fc?src=bulk', body: '{"x":1}' });
    expect(first.headers).toMatchObject({
      'x-test': 'yes',
      'content-type': 'application/json',
      'idempotency-key': `"${job.id}:0"`,
    });
    expect(second).toMatchObject({ path: '/ok/plain?src=bulk', body: '{}' });
    const items = (await t.http().get(`${JOBS}/${job.id}/items`).set(auth))
      .body as BulkJobItemListResponseDto;
    expect(items.items[0].result).toEqual({ status: 200 });

    const flaky = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/flaky/{id}` },
      targets: ['f1'],
    });
    expect((await waitForJob(t.db, flaky.id, ['completed', 'failed'])).status).toBe('completed');
    const flakyCalls = downstream.requests('/flaky/f1');
    expect(flakyCalls).toHaveLength(2);
    expect(flakyCalls[1].at - flakyCalls[0].at).toBeGreaterThanOrEqual(1000);
    const [flakyItem]: { attempts: number; last_error: unknown }[] = await t.db.query(
      'SELECT attempts, last_error FROM bulk_job_items WHERE job_id = $1',
      [flaky.id],
    );
    expect(flakyItem).toEqual({
      attempts: 2,
      last_error: { code: 'HTTP_503', message: expect.any(String) },
    });

    const missing = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/missing/{id}` },
      targets: ['m1'],
    });
    expect(await waitForJob(t.db, missing.id, ['completed', 'failed'])).toMatchObject({
      status: 'failed',
      failed_items: 1,
    });
    const [missingItem]: { attempts: number; last_error: { code: string } }[] = await t.db.query(
      'SELECT attempts, last_error FROM bulk_job_items WHERE job_id = $1',
      [missing.id],
    );
    expect(missingItem.attempts).toBe(1);
    expect(missingItem.last_error.code).toBe('HTTP_404');
  });

  it('http: reaches only allowed hosts, follows redirects only on the list, and times out', async () => {
    const refused = await t
      .http()
      .post(JOBS)
      .set(auth)
      .send({
        action: 'http',
        params: { url: `http://localhost:${downstream.port}/ok/{id}` },
        targets: ['x'],
      });
    expect(refused.status).toBe(400);
    expect((refused.body as { details: Record<string, string> }).details['params.url']).toMatch(
      /not in ACTIONS_HTTP_ALLOWED_HOSTS/,
    );
    const hostFromId = await t
      .http()
      .post(JOBS)
      .set(auth)
      .send({ action: 'http', params: { url: 'http://{id}/x' }, targets: ['evil.example'] });
    expect(hostFromId.status).toBe(400);

    const redirected = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/redirect-away/{id}` },
      targets: ['away'],
    });
    const here = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/redirect-here/{id}` },
      targets: ['here'],
    });
    const slow = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/slow/{id}` },
      options: { max_attempts: 2 },
      targets: ['s1'],
    });
    expect((await waitForJob(t.db, redirected.id, ['completed', 'failed'])).status).toBe('failed');
    expect((await waitForJob(t.db, here.id, ['completed', 'failed'])).status).toBe('completed');
    expect((await waitForJob(t.db, slow.id, ['completed', 'failed'])).status).toBe('failed');

    const errors: { job_id: string; attempts: number; code: string }[] = await t.db.query(
      `SELECT job_id, attempts, last_error->>'code' AS code FROM bulk_job_items WHERE job_id = ANY($1)`,
      [[redirected.id, slow.id]],
    );
    expect(errors.find((e) => e.job_id === redirected.id)).toMatchObject({
      attempts: 1,
      code: 'HTTP_REDIRECT_NOT_ALLOWED',
    });
    expect(errors.find((e) => e.job_id === slow.id)).toMatchObject({ attempts: 2, code: 'HTTP_TIMEOUT' });
    // The redirect off the list was never followed; the one on the list was.
    expect(downstream.requests('/ok/redirected')).toHaveLength(0);
    expect(downstream.requests('/ok/after-redirect')).toHaveLength(1);
  });

  it('keeps a job within its concurrency and rate limits across workers', async () => {
    const concurrent = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/count/{id}`, method: 'GET' },
      options: { concurrency: 3 },
      targets: targets(30, 'c'),
    });
    expect((await waitForJob(t.db, concurrent.id, ['completed', 'failed'])).status).toBe('completed');
    expect(downstream.maxInFlight).toBeLessThanOrEqual(3);
    expect(downstream.maxInFlight).toBeGreaterThan(1);

    const limited = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/ok/{id}`, method: 'GET' },
      options: { rate_limit_per_second: 10 },
      targets: targets(25, 'rl'),
    });
    expect((await waitForJob(t.db, limited.id, ['completed', 'failed'])).status).toBe('completed');
    expect(downstream.requests('/ok/rl-')).toHaveLength(25);
    // When each item was claimed, by the database's clock, which is the one the rate bucket is kept on
    // (the downstream's arrival times would also measure how busy this machine is).
    const claimed: { ms: number }[] = await t.db.query(
      `SELECT (EXTRACT(EPOCH FROM started_at) * 1000)::float8 AS ms
       FROM bulk_job_items WHERE job_id = $1 ORDER BY started_at`,
      [limited.id],
    );
    const starts = claimed.map((c) => c.ms);
    expect(starts).toHaveLength(25);
    // 25 claims at 10 per second, with a bucket of 2: at least ~2.3 s, and no second above the rate.
    expect(starts[24] - starts[0]).toBeGreaterThanOrEqual(2000);
    for (const s of starts)
      expect(starts.filter((x) => x >= s && x < s + 1000).length).toBeLessThanOrEqual(12);
  });

  it('is fair: a small job submitted behind a large one finishes first', async () => {
    const large = await createJob(t, owner, {
      action: 'simulate',
      params: { delay_ms: 50 },
      targets: targets(20_000, 'L'),
    });
    await waitFor(
      'the large job to be under way',
      async () => (await jobCounters(t.db, large.id)).succeeded_items > 100,
    );
    const small = await createJob(t, owner, {
      action: 'simulate',
      params: { delay_ms: 50 },
      targets: targets(3, 'S'),
    });
    await waitForJob(t.db, small.id, ['completed'], 60_000);
    const largeNow = await jobCounters(t.db, large.id);
    expect(largeNow.status).toBe('running');
    expect(largeNow.succeeded_items).toBeLessThan(20_000);
    // Judged by the database, not by a stopwatch: between the small job's creation and the claim of its
    // last item, the large job got no more than the claims already under way (one per worker, of at
    // most a batch each), not the thousands of items it had waiting.
    const [{ overtaken, waiting }]: { overtaken: number; waiting: number }[] = await t.db.query(
      `WITH small AS (
         SELECT j.created_at, max(i.started_at) AS last_claimed
         FROM bulk_jobs j JOIN bulk_job_items i ON i.job_id = j.id WHERE j.id = $2 GROUP BY j.created_at
       )
       SELECT count(*) FILTER (WHERE i.started_at > small.created_at AND i.started_at < small.last_claimed)::int
                AS overtaken,
              count(*) FILTER (WHERE i.started_at IS NULL OR i.started_at >= small.last_claimed)::int AS waiting
       FROM bulk_job_items i, small WHERE i.job_id = $1`,
      [large.id, small.id],
    );
    expect(overtaken).toBeLessThanOrEqual(2 * BATCH);
    expect(waiting).toBeGreaterThan(10_000);

    await t.http().post(`${JOBS}/${large.id}/cancel`).set(auth).expect(200);
    await waitForJob(t.db, large.id, ['cancelled'], 15_000);
  });
});
