import { expect } from 'expect';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import type { Response } from 'supertest';
import type { BulkJobResponseDto } from '../../src/bulk-jobs/dto/bulk-job-response.dto';
import { embeddedCluster, type EmbeddedCluster } from '../../src/database/embedded-cluster';
import { JOBS, createJob } from '../support/api';
import { bootTestApp, type TestApp } from '../support/app';
import { itemStatusCounts, jobCounters, waitForJob } from '../support/engine';
import { closedPort } from '../support/jwt';
import { metricValue } from '../support/metrics';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';
import { sleep, waitFor } from '../support/wait';

/**
 * A request during the outage must be answered, not left hanging: far above the
 * connect timeout (3 s) a busy machine may add, far below a hung request.
 */
const ANSWERED_WITHIN_MS = 20_000;
/** Rounds of requests while the database is away (5 requests each), and the outage's least length. */
const OUTAGE_ROUNDS = 6;
const OUTAGE_MIN_MS = 4000;

/**
 * A PostgreSQL of this spec's own, which it stops and starts while the API
 * and a worker run on it: the suite's shared server must never be stopped.
 */
async function startOwnPostgres(): Promise<{ server: EmbeddedCluster; url: string; dir: string }> {
  const root = resolve(process.env.TEST_DATA_DIR ?? tmpdir());
  mkdirSync(root, { recursive: true });
  const dir = mkdtempSync(join(root, 'outage-'));
  const port = await closedPort();
  const password = 'outage-test';
  const server = embeddedCluster({
    dataDir: dir,
    name: 'pg',
    port,
    portVariable: 'its port',
    password,
    settings: ['fsync=off', 'max_connections=100'],
    systemDir: process.env.EMBEDDED_PG_SYSTEM_DIR || undefined,
  });
  await server.start();
  const admin = new Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  await admin.connect();
  await admin.query('CREATE DATABASE bulk_jobs_test_outage');
  await admin.end();
  return { server, dir, url: `postgres://postgres:${password}@127.0.0.1:${port}/bulk_jobs_test_outage` };
}

interface Timed {
  res: Response;
  ms: number;
  what: string;
}

describe('database outage', () => {
  let pg: { server: EmbeddedCluster; url: string; dir: string };
  let t: TestApp;
  const owner = newOwner();
  const auth = bearer(tokenFor(owner));

  before(async () => {
    pg = await startOwnPostgres();
    t = await bootTestApp({
      databaseUrl: pg.url,
      worker: true,
      env: {
        WORKER_CONCURRENCY: '20',
        WORKER_BATCH_SIZE: '100',
        WORKER_POLL_INTERVAL_MS: '50',
        // Items whose claim or result was lost with the connection come back soon.
        WORKER_LEASE_MS: '3000',
        WORKER_SWEEP_INTERVAL_MS: '500',
        WORKER_SHUTDOWN_GRACE_MS: '1000',
        RATE_LIMIT_PER_MINUTE: '0',
      },
    });
  });

  after(async () => {
    await t?.close();
    await pg?.server.stop();
    if (pg) {
      // As root the cluster lives outside its folder, under the system folder.
      rmSync(pg.server.dir, { recursive: true, force: true });
      rmSync(pg.dir, { recursive: true, force: true });
    }
  });

  const timed = async (what: string, request: () => Promise<Response>): Promise<Timed> => {
    const started = Date.now();
    const res = await request();
    return { res, ms: Date.now() - started, what };
  };

  it('answers 503 with Retry-After while the database is away, recovers by itself, and loses nothing', async () => {
    // Jobs that are still running when the database goes away.
    const jobs: BulkJobResponseDto[] = [];
    for (let i = 0; i < 3; i++) {
      jobs.push(
        await createJob(t, owner, {
          action: 'simulate',
          params: { delay_ms: 100 },
          targets: Array.from({ length: 200 }, (_, n) => `job${i}-target${n}`),
          options: { max_attempts: 10 },
        }),
      );
    }
    await waitFor(
      'items to be processed',
      async () => (await jobCounters(t.db, jobs[0].id)).succeeded_items > 20,
    );
    expect((await t.http().get('/health/ready')).status).toBe(200);

    // --- the database goes away ---
    const down = Date.now();
    await pg.server.stop();
    const seen: Timed[] = [];
    for (let round = 0; round < OUTAGE_ROUNDS || Date.now() - down < OUTAGE_MIN_MS; round++) {
      seen.push(
        ...(await Promise.all([
          timed('GET job', () => t.http().get(`${JOBS}/${jobs[0].id}`).set(auth)),
          timed('GET jobs', () => t.http().get(JOBS).set(auth)),
          timed('POST job', () =>
            t
              .http()
              .post(JOBS)
              .set(auth)
              .send({ action: 'noop', targets: ['x'] }),
          ),
          timed('GET items', () => t.http().get(`${JOBS}/${jobs[1].id}/items`).set(auth)),
          timed('readiness', () => t.http().get('/health/ready')),
        ])),
      );
      await sleep(200);
    }
    expect(seen.length).toBeGreaterThanOrEqual(OUTAGE_ROUNDS * 5);
    for (const { res, ms, what } of seen) {
      // Every request is answered, not left hanging, with a 503 problem that says when to come back.
      expect({ what, status: res.status, answered: ms < ANSWERED_WITHIN_MS }).toEqual({
        what,
        status: 503,
        answered: true,
      });
      expectProblem(res, 503, { type: 'about:blank', title: 'Service Unavailable' });
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    }
    const ready = seen.find((s) => s.what === 'readiness')!.res;
    expect((ready.body as { checks: Record<string, { status: string }> }).checks.database.status).toBe(
      'down',
    );
    expect((await t.http().get('/health/live')).status).toBe(200);
    // The worker backs off instead of hammering the database: a few claims a second at most
    // (none at all when it already holds a full batch, whose outcomes it keeps until it can write them),
    // over however long this outage lasted on this machine.
    const metrics = (await t.http().get('/metrics')).text;
    const outageSeconds = (Date.now() - down) / 1000;
    const failedClaims = metricValue(metrics, 'bulk_jobs_claim_duration_seconds_count', { result: 'error' });
    expect(failedClaims).toBeLessThanOrEqual(Math.max(12, Math.ceil(3 * outageSeconds)));

    // --- the database comes back ---
    await pg.server.start();
    await waitFor(
      'the API and readiness to recover',
      async () => {
        const [job, readiness] = await Promise.all([
          t.http().get(`${JOBS}/${jobs[0].id}`).set(auth),
          t.http().get('/health/ready'),
        ]);
        expect(job.status).not.toBe(500);
        return job.status === 200 && readiness.status === 200;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    // New work is accepted again.
    const after = await createJob(t, owner, { action: 'noop', targets: ['after-1', 'after-2'] });

    // Every accepted job finishes, every item succeeded, and the counters agree with the items.
    for (const job of [...jobs, after]) {
      const counters = await waitForJob(t.db, job.id, ['completed', 'failed'], 180_000);
      expect({ id: job.id, ...counters }).toMatchObject({
        id: job.id,
        status: 'completed',
        succeeded_items: job.total_items,
        failed_items: 0,
        running_items: 0,
      });
      expect(await itemStatusCounts(t.db, job.id)).toEqual({ succeeded: job.total_items });
    }
  });
});
