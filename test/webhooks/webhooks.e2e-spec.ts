import { expect } from 'expect';
import { after, afterEach, before, describe, it } from 'node:test';
import { createTestApp, type TestApp } from '../support/app';
import { createJob, JOBS, jobBody } from '../support/api';
import {
  createEngineDatabase,
  createEngineTestApp,
  killAll,
  startWorker,
  waitFor,
  waitForJob,
  type EngineDatabase,
  type WorkerProcess,
} from '../support/engine';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';
import { TEST_WEBHOOK_SECRET, WebhookReceiver } from '../support/webhook-receiver';
import type { BulkJobResponseDto } from '../../src/bulk-jobs/dto/bulk-job-response.dto';

const WEBHOOK_ENV = {
  ACTIONS_HTTP_ALLOWED_HOSTS: '127.0.0.1',
  WEBHOOKS_SIGNING_SECRET: TEST_WEBHOOK_SECRET,
  WEBHOOKS_RETRY_BASE_MS: '100',
  WEBHOOKS_POLL_MS: '50',
  WEBHOOKS_TIMEOUT_MS: '2000',
};

const getJob = async (t: TestApp, owner: string, id: string): Promise<BulkJobResponseDto> => {
  const res = await t
    .http()
    .get(`${JOBS}/${id}`)
    .set(bearer(tokenFor(owner)));
  expect(res.status).toBe(200);
  return jobBody(res);
};

/** Waits until the job's notification is in `status`; returns the job. */
function waitForNotification(
  t: TestApp,
  owner: string,
  id: string,
  status: string,
): Promise<BulkJobResponseDto> {
  return waitFor(`the webhook of job ${id} to be ${status}`, async () => {
    const job = await getJob(t, owner, id);
    return job.notification?.status === status ? job : undefined;
  });
}

describe('completion webhooks, delivered by an in-process worker', () => {
  let db: EngineDatabase;
  let t: TestApp;
  const receivers: WebhookReceiver[] = [];

  before(async () => {
    db = await createEngineDatabase();
    t = await createEngineTestApp(db.url, { worker: true, env: WEBHOOK_ENV });
  });
  afterEach(async () => {
    await Promise.all(receivers.splice(0).map((r) => r.close()));
  });
  after(async () => {
    await t?.close();
    await db?.drop();
  });

  it('signs the event, retries after 500 twice, and delivers it once with the third attempt', async () => {
    const receiver = new WebhookReceiver(TEST_WEBHOOK_SECRET, [500, 500]);
    receivers.push(receiver);
    await receiver.start();
    const owner = newOwner();
    const created = await createJob(t, owner, {
      action: 'noop',
      targets: ['a', 'b', 'c'],
      options: { notify: { url: receiver.url() } },
    });
    expect(created.options).toEqual({ notify: { url: receiver.url() } });
    expect(created.notification).toEqual({
      status: 'waiting',
      attempts: 0,
      last_error: null,
      delivered_at: null,
    });

    const job = await waitForNotification(t, owner, created.id, 'delivered');
    expect(job.notification).toEqual({
      status: 'delivered',
      attempts: 3,
      last_error: null,
      delivered_at: expect.stringMatching(/Z$/),
    });
    expect(receiver.received.map((r) => r.status)).toEqual([500, 500, 200]);
    // One event: one webhook-id and one body on every attempt, each signed.
    expect(receiver.received.every((r) => r.verified)).toBe(true);
    expect(new Set(receiver.received.map((r) => r.headers['webhook-id'])).size).toBe(1);
    expect(new Set(receiver.received.map((r) => r.body)).size).toBe(1);
    const [first] = receiver.received;
    expect(first.headers['content-type']).toBe('application/json');
    const event = JSON.parse(first.body) as { type: string; timestamp: string; data: BulkJobResponseDto };
    expect(event.type).toBe('bulk_job.finished');
    expect(event.timestamp).toBe(job.finished_at);
    expect(event.data).toMatchObject({ id: created.id, status: 'completed', succeeded_items: 3, owner });
    // Nothing more once delivered.
    await new Promise((r) => setTimeout(r, 400));
    expect(receiver.received).toHaveLength(3);
  });

  it('stops at a 410, and a signature made with another key does not verify', async () => {
    const receiver = new WebhookReceiver(`whsec_${Buffer.alloc(32, 9).toString('base64')}`, [410]);
    receivers.push(receiver);
    await receiver.start();
    const owner = newOwner();
    const created = await createJob(t, owner, {
      action: 'noop',
      targets: ['a'],
      options: { notify: { url: receiver.url() } },
    });
    const job = await waitForNotification(t, owner, created.id, 'failed');
    expect(job.notification).toEqual({
      status: 'failed',
      attempts: 1,
      last_error: 'HTTP 410: the receiver asked for no more',
      delivered_at: null,
    });
    await new Promise((r) => setTimeout(r, 400));
    expect(receiver.received).toHaveLength(1);
    expect(receiver.received[0].verified).toBe(false);
  });

  it('tells of a cancelled job too, and not of a job that asked for nothing', async () => {
    const receiver = new WebhookReceiver();
    receivers.push(receiver);
    await receiver.start();
    const owner = newOwner();
    const quiet = await createJob(t, owner, { action: 'noop', targets: ['a'] });
    expect(quiet.notification).toBeNull();
    const slow = await createJob(t, owner, {
      action: 'simulate',
      params: { delay_ms: 60_000 },
      targets: ['a', 'b'],
      options: { notify: { url: receiver.url('/cancelled') } },
    });
    const cancel = await t
      .http()
      .post(`${JOBS}/${slow.id}/cancel`)
      .set(bearer(tokenFor(owner)));
    expect(cancel.status).toBe(200);
    await waitForJob(t.db, slow.id, ['cancelled']);
    await waitForNotification(t, owner, slow.id, 'delivered');
    const events = receiver.received.map((r) => JSON.parse(r.body) as { data: BulkJobResponseDto });
    expect(events.map((e) => [e.data.id, e.data.status])).toEqual([[slow.id, 'cancelled']]);
    expect((await getJob(t, owner, quiet.id)).notification).toBeNull();
  });

  it('refuses a URL off the allow-list, or with credentials, at create', async () => {
    const owner = newOwner();
    for (const [url, message] of [
      ['http://10.0.0.1/hook', 'host 10.0.0.1 is not in ACTIONS_HTTP_ALLOWED_HOSTS'],
      ['http://localhost:8080/hook', 'host localhost:8080 is not in ACTIONS_HTTP_ALLOWED_HOSTS'],
      ['http://user:pw@127.0.0.1/hook', 'must not carry credentials'],
      ['ftp://127.0.0.1/hook', 'must be an absolute http:// or https:// URL'],
      ['not a url', 'is not a valid URL'],
    ]) {
      const res = await t
        .http()
        .post(JOBS)
        .set(bearer(tokenFor(owner)))
        .send({ action: 'noop', targets: ['a'], options: { notify: { url } } });
      expectProblem(res, 400, {
        type: '/problems/validation-error',
        details: { 'options.notify.url': message },
      });
    }
    const [{ n }]: { n: number }[] = await t.db.query(
      `SELECT count(*)::int AS n FROM bulk_jobs WHERE owner = $1`,
      [owner],
    );
    expect(n).toBe(0);
  });
});

describe('a server without WEBHOOKS_SIGNING_SECRET', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ ACTIONS_HTTP_ALLOWED_HOSTS: '127.0.0.1' });
  });
  after(() => t.close());

  it('refuses a job that asks for a webhook, so that no unsigned event is ever sent', async () => {
    const res = await t
      .http()
      .post(JOBS)
      .set(bearer(tokenFor(newOwner())))
      .send({ action: 'noop', targets: ['a'], options: { notify: { url: 'http://127.0.0.1:9/hook' } } });
    expectProblem(res, 400, {
      type: '/problems/validation-error',
      details: {
        'options.notify':
          'cannot be delivered: this server has no WEBHOOKS_SIGNING_SECRET to sign webhooks with',
      },
    });
  });
});

describe('a webhook whose receiver is down while its worker is killed', () => {
  let db: EngineDatabase;
  let t: TestApp;
  const workers: WorkerProcess[] = [];
  const receiver = new WebhookReceiver();

  before(async () => {
    db = await createEngineDatabase();
    t = await createEngineTestApp(db.url, { env: WEBHOOK_ENV });
  });
  after(async () => {
    await killAll(workers);
    await receiver.close();
    await t?.close();
    await db?.drop();
  });

  it('is delivered after the worker restarts and the receiver is back', async () => {
    // A port that nothing listens on yet: the receiver is down.
    const port = await receiver.start();
    await receiver.close();
    const first = startWorker(db.url, WEBHOOK_ENV);
    workers.push(first);
    await first.ready;
    const owner = newOwner();
    const created = await createJob(t, owner, {
      action: 'noop',
      targets: ['a', 'b'],
      options: { notify: { url: `http://127.0.0.1:${port}/hook` } },
    });
    await waitForJob(t.db, created.id, ['completed']);
    const refused = await waitFor('a refused attempt', async () => {
      const job = await getJob(t, owner, created.id);
      return job.notification!.attempts >= 1 && job.notification!.last_error ? job : undefined;
    });
    expect(refused.notification).toMatchObject({ status: 'pending', last_error: 'ECONNREFUSED' });

    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    await receiver.start(port);
    const second = startWorker(db.url, WEBHOOK_ENV);
    workers.push(second);
    await second.ready;

    const job = await waitForNotification(t, owner, created.id, 'delivered');
    expect(job.notification!.attempts).toBeGreaterThan(refused.notification!.attempts);
    expect(receiver.received).toHaveLength(1);
    expect(receiver.received[0].verified).toBe(true);
    expect((JSON.parse(receiver.received[0].body) as { data: { id: string } }).data.id).toBe(created.id);
  });
});
