import { expect } from 'expect';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Pool } from 'pg';
import type { Response } from 'supertest';
import { JobEventsService } from '../../src/bulk-jobs/job-events.service';
import { Database } from '../../src/database/database';
import { JOBS } from '../support/api';
import { createTestApp, type TestApp } from '../support/app';
import { insertJob } from '../support/factories';
import { connectionsInUse, latencyBound, PoliteClient, summary, tally } from '../support/polite-client';
import { expectProblem } from '../support/problem-matcher';
import { openSse, streamAgent, type SseClient } from '../support/sse-client';
import { bearer, newOwner, tokenFor } from '../support/tokens';
import { sleep, waitFor } from '../support/wait';

/**
 * A hostile client with one valid token, against the event streams: more
 * streams than anyone needs, a stream kept open past its token, and streams
 * that are never read. A polite client is measured beside each attack against
 * its own latency before it.
 */

const PER_OWNER = 10;
const PER_PROCESS = 25;

/** A refused stream's answer, in the shape the shared problem matcher reads. */
function refusal(c: SseClient, path: string): Response {
  return {
    status: c.status,
    headers: c.headers,
    body: JSON.parse(c.text()) as unknown,
    req: { path },
  } as unknown as Response;
}

describe('hostile clients: event streams', () => {
  let t: TestApp;
  let base: string;
  let port: number;
  let hub: JobEventsService;
  let pool: Pool;
  const open: SseClient[] = [];
  const agent = streamAgent();

  const streams = async (owner: string, jobId: string, count: number, token = tokenFor(owner)) => {
    const clients = await Promise.all(
      Array.from({ length: count }, () => openSse(`${base}${JOBS}/${jobId}/events`, bearer(token), agent)),
    );
    open.push(...clients);
    return clients;
  };
  const closeAll = async () => {
    for (const c of open.splice(0)) c.destroy();
    await waitFor('every stream to be released', () => hub.subscriberCount() === 0);
  };

  before(async () => {
    t = await createTestApp({ SSE_MAX_STREAMS: String(PER_PROCESS) });
    await t.app.listen(0, '127.0.0.1');
    port = (t.app.getHttpServer().address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
    hub = t.app.get(JobEventsService);
    pool = t.app.get(Database).pool;
  });
  after(async () => {
    for (const c of open) c.destroy();
    agent.destroy();
    await t.close();
  });

  it('200 streams from one owner: 10 open and the rest get a 429 with Retry-After before any stream starts, while a polite client is served', async (tc) => {
    const attacker = newOwner('streamer');
    const target = await insertJob(t.db, { owner: attacker, status: 'running', items: 10 });
    const politeOwner = newOwner('polite');
    const politeJob = await insertJob(t.db, { owner: politeOwner, status: 'running', items: 10 });
    const polite = new PoliteClient(base, bearer(tokenFor(politeOwner)));
    try {
      const p50 = await polite.baseline(`${JOBS}?limit=10`);
      const bound = latencyBound(p50);

      const attempts = await streams(attacker, target, 200);
      const statuses = tally(attempts.map((c) => c.status));
      const during = await polite.series(`${JOBS}?limit=10`, 10);
      const [own] = await streams(politeOwner, politeJob, 1);
      tc.diagnostic(
        `200 streams from one owner: ${JSON.stringify(statuses)}; open streams ${hub.subscriberCount()}; ` +
          `polite GET /jobs: baseline p50 ${p50.toFixed(1)} ms, during ${summary(during)}; polite stream ${own.status}`,
      );
      expect(statuses).toEqual({ '200': PER_OWNER, '429': 200 - PER_OWNER });
      const refused = attempts.filter((c) => c.status === 429);
      await Promise.all(refused.map((c) => c.waitForClose(10_000)));
      for (const c of refused) {
        expectProblem(refusal(c, `${JOBS}/${target}/events`), 429, {
          type: '/problems/too-many-streams',
          max_streams: PER_OWNER,
          per: 'owner',
        });
        expect(Number(c.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect(c.events).toEqual([]);
      }
      expect({
        polite: during.map((r) => r.status),
        slow: during.filter((r) => r.ms >= bound).map((r) => Math.round(r.ms)),
        stream: own.status,
      }).toEqual({ polite: new Array(10).fill(200), slow: [], stream: 200 });
      await own.waitForEvent((e) => e.event === 'progress');
      expect(hub.subscriberCount()).toBe(PER_OWNER + 1);

      await closeAll();
      const [again] = await streams(attacker, target, 1);
      expect(again.status).toBe(200);
    } finally {
      polite.close();
      await closeAll();
    }
  });

  it('caps the open streams of the process at SSE_MAX_STREAMS, whoever opens them', async () => {
    const owners = [newOwner('a'), newOwner('b'), newOwner('c')];
    const jobs = await Promise.all(owners.map((owner) => insertJob(t.db, { owner, status: 'running' })));
    const opened: SseClient[] = [];
    try {
      for (let i = 0; i < owners.length; i++) opened.push(...(await streams(owners[i], jobs[i], PER_OWNER)));
      expect(tally(opened.map((c) => c.status))).toEqual({
        '200': PER_PROCESS,
        '429': owners.length * PER_OWNER - PER_PROCESS,
      });
      const refused = opened.filter((c) => c.status === 429);
      await Promise.all(refused.map((c) => c.waitForClose(10_000)));
      for (const c of refused) {
        expect(JSON.parse(c.text())).toMatchObject({
          type: '/problems/too-many-streams',
          status: 429,
          max_streams: PER_PROCESS,
          per: 'server',
        });
      }
    } finally {
      await closeAll();
    }
  });

  it('ends a stream with a 401 problem event, and closes it, when its token expires', async () => {
    const owner = newOwner('expiring');
    const id = await insertJob(t.db, { owner, status: 'running' });
    // Expired 3 s ago: still inside the verifier's 5 s of clock tolerance, so accepted for 2 s more.
    const [c] = await streams(owner, id, 1, tokenFor(owner, { expiresIn: -3 }));
    try {
      expect(c.status).toBe(200);
      await c.waitForEvent((e) => e.event === 'progress');
      const problem = await c.waitForEvent((e) => e.event === 'problem', 15_000);
      await c.waitForClose(5_000);
      expect(JSON.parse(problem.data)).toMatchObject({
        type: 'about:blank',
        title: 'Unauthorized',
        status: 401,
        instance: `${JOBS}/${id}/events`,
        detail: expect.stringMatching(/expired/) as unknown,
      });
      expect(c.events.map((e) => e.event)).toEqual(['progress', 'problem']);
      await waitFor('the stream to be released', () => hub.subscriberCount() === 0);
    } finally {
      await closeAll();
    }
  });

  it('streams that are never read hold no database connection: the poller goes on, the polite client is served, and a late reader gets the current state', async (tc) => {
    const owner = newOwner('stuck');
    // 1 MB of params: every progress event is that large, so unread streams fill their sockets at once.
    const id = await insertJob(t.db, {
      owner,
      status: 'running',
      items: 1000,
      params: { blob: 'x'.repeat(1_000_000) },
    });
    const politeOwner = newOwner('polite');
    await insertJob(t.db, { owner: politeOwner, status: 'completed' });
    const polite = new PoliteClient(base, bearer(tokenFor(politeOwner)));
    const server = t.app.getHttpServer();
    const serverSockets: Socket[] = [];
    const track = (s: Socket) => serverSockets.push(s);
    server.on('connection', track);
    const readers: Socket[] = [];
    let sampler: NodeJS.Timeout | undefined;
    try {
      const p50 = await polite.baseline(`${JOBS}?limit=10`);
      const token = tokenFor(owner);
      for (let i = 0; i < 5; i++) {
        const s = connect(port, '127.0.0.1');
        readers.push(s);
        await new Promise<void>((resolve, reject) => {
          s.once('connect', resolve);
          s.once('error', reject);
        });
        // Never read: the socket stays paused.
        s.write(
          `GET ${JOBS}/${id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nAuthorization: Bearer ${token}\r\n\r\n`,
        );
      }
      await waitFor('the streams to be registered', () => hub.subscriberCount(id) === 5);
      let n = 0;
      const change = () =>
        t.db.query(`UPDATE bulk_jobs SET succeeded_items = $2, updated_at = now() WHERE id = $1`, [id, ++n]);
      await waitFor(
        'every unread stream to have more to write than its socket takes',
        async () => {
          await change();
          return readers.every((r) =>
            serverSockets.some((s) => s.remotePort === r.localPort && s.writableLength > 0),
          );
        },
        { intervalMs: 300, timeoutMs: 60_000 },
      );
      // Stuck: the job goes on changing, the poller on reading it. Only the poller uses this pool now.
      const samples: number[] = [];
      sampler = setInterval(() => samples.push(connectionsInUse(pool)), 5);
      const ticks = hub.stats().ticks;
      for (let i = 0; i < 8; i++) {
        await change();
        await sleep(250);
      }
      await waitFor('the poller to go on ticking', () => hub.stats().ticks >= ticks + 4);
      clearInterval(sampler);
      sampler = undefined;
      const during = await polite.series(`${JOBS}?limit=10`, 10);
      await t.db.query(`UPDATE bulk_jobs SET succeeded_items = 999, updated_at = now() WHERE id = $1`, [id]);
      tc.diagnostic(
        `${n} changes of a job with 1 MB params, 5 unread streams, ${hub.stats().ticks - ticks} polls; connections held: max ${Math.max(...samples)}, ` +
          `none in ${samples.filter((s) => s === 0).length} of ${samples.length} samples; ` +
          `polite GET ${summary(during)} (p50 before ${p50.toFixed(1)} ms)`,
      );
      // The poller holds one connection while its query runs, never more, and none between ticks.
      expect(Math.max(...samples)).toBeLessThanOrEqual(1);
      expect(samples.filter((s) => s === 0).length).toBeGreaterThan(samples.length / 2);
      expect(during.map((r) => r.status)).toEqual(new Array(10).fill(200));
      expect(during.filter((r) => r.ms >= latencyBound(p50)).map((r) => Math.round(r.ms))).toEqual([]);

      // A reader that catches up gets the state as it is now, not every state it missed.
      const late = readers[0];
      let text = '';
      late.setEncoding('latin1');
      late.on('data', (chunk: string) => (text = (text + chunk).slice(-3_000_000)));
      await waitFor(
        'the late reader to get the current state',
        () => text.includes('"succeeded_items":999'),
        {
          timeoutMs: 30_000,
        },
      );
    } finally {
      if (sampler) clearInterval(sampler);
      server.off('connection', track);
      for (const r of readers) r.destroy();
      polite.close();
    }
    await waitFor('the unread streams to be released', () => hub.subscriberCount(id) === 0);
  });
});
