import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { createAppLogger } from '../../src/logging/app-logger';
import { JOBS, createJob } from '../support/api';
import { bootTestApp, type TestApp } from '../support/app';
import { captureLogs } from '../support/boot';
import { createEngineDatabase, waitFor, waitForJob, type EngineDatabase } from '../support/engine';
import { insertJob } from '../support/factories';
import { testEnv } from '../support/test-env';
import { bearer, newOwner, tokenFor } from '../support/tokens';

describe('logs', () => {
  let db: EngineDatabase;
  let t: TestApp;
  const logs = captureLogs();

  before(async () => {
    db = await createEngineDatabase();
    const env = {
      LOG_LEVEL: 'log',
      LOG_FORMAT: 'json',
      WORKER_POLL_INTERVAL_MS: '50',
      WORKER_SWEEP_INTERVAL_MS: '200',
    };
    t = await bootTestApp({
      databaseUrl: db.url,
      worker: true,
      env,
      logger: createAppLogger(testEnv(env), logs),
    });
  });

  after(async () => {
    await t?.close();
    await db?.drop();
  });

  const requestLines = () => logs.lines.filter((l) => l.context === 'HTTP');

  it('writes one JSON line per request: request id, method, route, status, duration, sub; never the token', async () => {
    const owner = newOwner();
    const token = tokenFor(owner);
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const res = await t.http().get(`${JOBS}/${id}`).set(bearer(token)).set('X-Request-Id', 'log-test-1');
    expect(res.status).toBe(200);
    const denied = await t
      .http()
      .get(JOBS)
      .set(bearer(`${token}x`))
      .set('X-Request-Id', 'log-test-2');
    expect(denied.status).toBe(401);

    const line = await waitFor('the request line', async () =>
      requestLines().find((l) => l.requestId === 'log-test-1'),
    );
    expect(line).toMatchObject({
      level: 'info',
      requestId: 'log-test-1',
      method: 'GET',
      route: '/api/actions/bulk/jobs/:id',
      path: `${JOBS}/${id}`,
      status: 200,
      sub: owner,
      durationMs: expect.any(Number),
      time: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
    });
    expect(requestLines().filter((l) => l.requestId === 'log-test-1')).toHaveLength(1);
    const refused = requestLines().find((l) => l.requestId === 'log-test-2');
    expect(refused).toMatchObject({ status: 401, route: '/api/actions/bulk/jobs' });
    expect(refused!.sub).toBeUndefined();

    const text = logs.text();
    for (const part of token.split('.')) expect(text).not.toContain(part);
    expect(text.toLowerCase()).not.toContain('bearer');
  });

  it("writes the framework's own lines as JSON too", () => {
    expect(logs.lines.some((l) => l.context === 'RoutesResolver' || l.context === 'RouterExplorer')).toBe(
      true,
    );
    expect(logs.lines.every((l) => typeof l.level === 'string' && typeof l.msg === 'string')).toBe(true);
  });

  it('logs when a job starts and finishes, with its id', async () => {
    const job = await createJob(t, newOwner(), { action: 'noop', targets: ['a', 'b', 'c'] });
    await waitForJob(t.db, job.id, ['completed'], 10_000);
    const events = await waitFor('the job events', async () => {
      const lines = logs.lines.filter((l) => l.jobId === job.id);
      return lines.some((l) => l.status === 'completed') && lines;
    });
    expect(events[0]).toMatchObject({ context: 'Engine', msg: `job ${job.id} started`, action: 'noop' });
    expect(events.find((l) => l.status === 'completed')).toMatchObject({
      context: 'Engine',
      msg: `job ${job.id} completed`,
    });
  });

  it('logs reclaimed leases with the job id', async () => {
    const id = await insertJob(t.db, { owner: newOwner(), status: 'running', itemStatuses: ['running'] });
    await t.db.query(
      `UPDATE bulk_job_items SET lease_owner = 'gone:1:abc', lease_expires_at = now() - interval '1 minute'
       WHERE job_id = $1`,
      [id],
    );
    await t.db.query(`UPDATE bulk_jobs SET running_items = 1 WHERE id = $1`, [id]);
    const line = await waitFor('the reclaim line', async () =>
      logs.lines.find((l) => l.jobId === id && /lease expired/.test(String(l.msg))),
    );
    expect(line).toMatchObject({ level: 'warn', context: 'Engine', items: 1 });
  });
});
