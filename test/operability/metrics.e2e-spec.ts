import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { AppModule } from '../../src/app.module';
import { createAppLogger } from '../../src/logging/app-logger';
import { createTestApp, type TestApp } from '../support/app';
import { JOBS, createJob } from '../support/api';
import {
  createEngineDatabase,
  createEngineTestApp,
  waitFor,
  waitForJob,
  type EngineDatabase,
} from '../support/engine';
import { insertJob } from '../support/factories';
import { closedPort } from '../support/jwt';
import { metricValue, parseMetrics, samplesOf } from '../support/metrics';
import { expectProblem } from '../support/problem-matcher';
import { testEnv } from '../support/test-env';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const METRICS_TOKEN = 'metrics-token-for-tests-0123456789';

describe('GET /metrics', () => {
  let db: EngineDatabase;
  let t: TestApp;
  before(async () => {
    // A database of its own, so that the job counts move only with this spec's jobs.
    db = await createEngineDatabase();
    t = await createEngineTestApp(db.url);
  });
  after(async () => {
    await t?.close();
    await db?.drop();
  });

  it('is public and in the Prometheus text format', async () => {
    const res = await t.http().get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.text).toContain('# TYPE http_request_duration_seconds histogram');
    expect(res.text).toContain('# TYPE process_cpu_user_seconds_total counter');
    expect(() => parseMetrics(res.text)).not.toThrow();
  });

  it('labels request durations with the route pattern and status, never the raw URL', async () => {
    const owner = newOwner();
    const auth = bearer(tokenFor(owner));
    const id = await insertJob(t.db, { owner, status: 'completed' });
    expect((await t.http().get(`${JOBS}/${id}`).set(auth)).status).toBe(200);
    expect((await t.http().get(`${JOBS}/${id}`).set(auth)).status).toBe(200);
    expect((await t.http().get(`${JOBS}/6f1c1f0e-0000-4000-8000-000000000000`).set(auth)).status).toBe(404);
    expect((await t.http().get(`/no/such/${id}`)).status).toBe(404);
    // Fastify's HEAD route copied from the GET: observed once, as HEAD.
    const head = await t.http().head(`${JOBS}/${id}`).set(auth);

    // The app's database and requests are this spec's own: each request is observed exactly once.
    const text = (await t.http().get('/metrics')).text;
    const route = '/api/actions/bulk/jobs/:id';
    const ok = { route, method: 'GET', status_code: '200' };
    expect(metricValue(text, 'http_request_duration_seconds_count', ok)).toBe(2);
    expect(metricValue(text, 'http_request_duration_seconds_bucket', { ...ok, le: '+Inf' })).toBe(2);
    expect(
      metricValue(text, 'http_request_duration_seconds_count', { route, method: 'GET', status_code: '404' }),
    ).toBe(1);
    expect(
      metricValue(text, 'http_request_duration_seconds_count', {
        route,
        method: 'HEAD',
        status_code: String(head.status),
      }),
    ).toBe(1);
    expect(
      metricValue(text, 'http_request_duration_seconds_count', { route: 'unmatched', status_code: '404' }),
    ).toBe(1);
    expect(text).not.toContain(id);
  });

  it('counts jobs by status and the items waiting in active jobs, from the jobs table at scrape time', async () => {
    const before = (await t.http().get('/metrics')).text;
    const owner = newOwner();
    await insertJob(t.db, { owner, status: 'pending', items: 7 });
    await insertJob(t.db, {
      owner,
      status: 'running',
      itemStatuses: ['succeeded', 'running', 'pending', 'pending'],
    });
    await insertJob(t.db, { owner, status: 'failed', items: 2 });
    await insertJob(t.db, { owner, status: 'completed', items: 5, deletedAt: new Date() });
    const after = (await t.http().get('/metrics')).text;

    const delta = (name: string, labels: Record<string, string> = {}) =>
      metricValue(after, name, labels) - metricValue(before, name, labels);
    expect(delta('bulk_jobs_jobs', { status: 'pending' })).toBe(1);
    expect(delta('bulk_jobs_jobs', { status: 'running' })).toBe(1);
    expect(delta('bulk_jobs_jobs', { status: 'failed' })).toBe(1);
    // Deleted jobs are left out.
    expect(delta('bulk_jobs_jobs', { status: 'completed' })).toBe(0);
    expect(
      samplesOf(after, 'bulk_jobs_jobs')
        .map((s) => s.labels.status)
        .sort(),
    ).toEqual(['cancelled', 'cancelling', 'completed', 'failed', 'paused', 'pending', 'running']);
    // 7 of the pending job, 2 of the running one (the factory leaves running_items at 0, so
    // its running item counts as waiting too: the gauge reads the counters, not the items).
    expect(delta('bulk_jobs_pending_items')).toBe(7 + 3);
  });
});

describe('GET /metrics with METRICS_TOKEN', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ METRICS_TOKEN });
  });
  after(() => t.close());

  it('wants the token as a bearer token', async () => {
    expectProblem(await t.http().get('/metrics'), 401, { type: 'about:blank' });
    const wrong = await t
      .http()
      .get('/metrics')
      .set(bearer(`${METRICS_TOKEN}x`));
    expectProblem(wrong, 401, { type: 'about:blank' });
    expect(wrong.headers['www-authenticate']).toContain('invalid_token');
    // A user's JWT is not the metrics token.
    expectProblem(
      await t
        .http()
        .get('/metrics')
        .set(bearer(tokenFor(newOwner()))),
      401,
    );
    const ok = await t.http().get('/metrics').set(bearer(METRICS_TOKEN));
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('http_request_duration_seconds');
  });

  it('does not change how the API authenticates', async () => {
    expect(
      (
        await t
          .http()
          .get(JOBS)
          .set(bearer(tokenFor(newOwner())))
      ).status,
    ).toBe(200);
    expectProblem(await t.http().get(JOBS).set(bearer(METRICS_TOKEN)), 401);
  });
});

describe('engine metrics', () => {
  let db: EngineDatabase;
  let t: TestApp;
  /** Nothing listens there: an http call to it is a network error, which is retried. */
  let closed: number;

  before(async () => {
    db = await createEngineDatabase();
    closed = await closedPort();
    t = await createEngineTestApp(db.url, {
      worker: true,
      env: {
        WORKER_POLL_INTERVAL_MS: '50',
        WORKER_LEASE_MS: '1500',
        WORKER_SWEEP_INTERVAL_MS: '200',
        WORKER_RETRY_BASE_MS: '50',
        ACTIONS_HTTP_ALLOWED_HOSTS: `127.0.0.1:${closed}`,
      },
    });
  });

  after(async () => {
    await t?.close();
    await db?.drop();
  });

  it('counts items succeeded, failed and retried per action, and times the claims', async () => {
    const owner = newOwner();
    const job = await createJob(t, owner, {
      action: 'simulate',
      params: { fail_targets: ['b'] },
      targets: ['a', 'b', 'c'],
    });
    await waitForJob(t.db, job.id, ['failed'], 15_000);
    const text = (await t.http().get('/metrics')).text;
    expect(
      metricValue(text, 'bulk_jobs_items_processed_total', { action: 'simulate', outcome: 'succeeded' }),
    ).toBe(2);
    expect(
      metricValue(text, 'bulk_jobs_items_processed_total', { action: 'simulate', outcome: 'failed' }),
    ).toBe(1);
    expect(metricValue(text, 'bulk_jobs_items_claimed_total', { action: 'simulate' })).toBe(3);
    expect(
      metricValue(text, 'bulk_jobs_claim_duration_seconds_count', { result: 'claimed' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      metricValue(text, 'bulk_jobs_claim_duration_seconds_count', { result: 'idle' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('counts retries', async () => {
    const job = await createJob(t, newOwner(), {
      action: 'http',
      params: { url: `http://127.0.0.1:${closed}/{id}` },
      targets: ['x'],
      options: { max_attempts: 3 },
    });
    await waitForJob(t.db, job.id, ['failed'], 20_000);
    const text = (await t.http().get('/metrics')).text;
    const count = (outcome: string) =>
      metricValue(text, 'bulk_jobs_items_processed_total', { action: 'http', outcome });
    expect({ retried: count('retried'), failed: count('failed') }).toEqual({ retried: 2, failed: 1 });
  });

  it('counts lease reclaims', async () => {
    const owner = newOwner();
    // An item a dead worker held: running, its lease long expired.
    const id = await insertJob(t.db, { owner, status: 'running', itemStatuses: ['running', 'running'] });
    await t.db.query(
      `UPDATE bulk_job_items SET lease_owner = 'gone:1:abc', lease_expires_at = now() - interval '1 minute', attempts = 1
       WHERE job_id = $1`,
      [id],
    );
    await t.db.query(`UPDATE bulk_jobs SET running_items = 2 WHERE id = $1`, [id]);
    await waitForJob(t.db, id, ['completed'], 15_000);
    const text = await waitFor('the reclaim to be counted', async () => {
      const body = (await t.http().get('/metrics')).text;
      return metricValue(body, 'bulk_jobs_lease_reclaims_total') >= 2 ? body : undefined;
    });
    expect(metricValue(text, 'bulk_jobs_lease_reclaims_total')).toBe(2);
  });
});

describe('a worker-only process', () => {
  let db: EngineDatabase;
  let ctx: INestApplicationContext;
  let port: number;

  before(async () => {
    db = await createEngineDatabase();
    port = await closedPort();
    const env = testEnv({
      DATABASE_URL: db.url,
      METRICS_PORT: String(port),
      METRICS_TOKEN,
      HOST: '127.0.0.1',
      WORKER_POLL_INTERVAL_MS: '50',
    });
    // As src/worker.ts builds it: no HTTP API.
    ctx = await NestFactory.createApplicationContext(
      AppModule.forRoot({ env, databaseUrl: db.url, api: false, worker: true }),
      { logger: createAppLogger(env) },
    );
  });

  after(async () => {
    await ctx?.close();
    await db?.drop();
  });

  it('serves its own metrics on METRICS_PORT, behind METRICS_TOKEN', async () => {
    const url = `http://127.0.0.1:${port}/metrics`;
    const refused = await fetch(url);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="bulk-jobs"');
    expect(await refused.json()).toEqual({
      type: 'about:blank',
      title: 'Unauthorized',
      status: 401,
      detail: 'The metrics token is required.',
      instance: '/metrics',
      error: 'The metrics token is required.',
      requestId: refused.headers.get('x-request-id'),
    });
    const scrape = async () => {
      const res = await fetch(url, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      return res.text();
    };
    // The worker's first (idle) claim shows up once it has run.
    const text = await waitFor('a claim to be timed', async () => {
      const body = await scrape();
      return metricValue(body, 'bulk_jobs_claim_duration_seconds_count', { result: 'idle' }) > 0 && body;
    });
    expect(text).toContain('# TYPE bulk_jobs_items_processed_total counter');
    // The database-wide gauges are the API's.
    expect(text).not.toContain('bulk_jobs_pending_items');
    const other = await fetch(`http://127.0.0.1:${port}/`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(other.status).toBe(404);
    expect(other.headers.get('content-type')).toBe('application/problem+json');
    expect(await other.json()).toMatchObject({
      type: 'about:blank',
      title: 'Not Found',
      status: 404,
      instance: '/',
      error: 'Only GET /metrics is served here.',
      requestId: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
  });
});

describe('an API process with METRICS_PORT', () => {
  let t: TestApp;
  let port: number;

  before(async () => {
    port = await closedPort();
    t = await createTestApp({ METRICS_PORT: String(port), HOST: '127.0.0.1' });
  });

  after(() => t?.close());

  it('serves /metrics on that port alone, with the database-wide gauges, and not on the API port', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('# TYPE http_request_duration_seconds histogram');
    expect(text).toContain('bulk_jobs_pending_items');
    expectProblem(await t.http().get('/metrics'), 404);
    const doc = await t.http().get('/docs-json');
    expect(Object.keys((doc.body as { paths: object }).paths)).not.toContain('/metrics');
  });
});
