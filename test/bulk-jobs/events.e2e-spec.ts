import { expect } from 'expect';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'pg';
import { after, before, describe, it } from 'node:test';
import type { DataSource } from 'typeorm';
import type { BulkJobResponseDto } from '../../src/bulk-jobs/dto/bulk-job-response.dto';
import { JobEventsService } from '../../src/bulk-jobs/job-events.service';
import { Database } from '../../src/database/database';
import { JOBS } from '../support/api';
import { createTestApp, type TestApp } from '../support/app';
import { insertJob } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { openSse, streamAgent, type ReceivedEvent, type SseClient } from '../support/sse-client';
import { bearer, newOwner, tokenFor } from '../support/tokens';
import { sleep, waitFor } from '../support/wait';

const INTERVAL_MS = 250;
const HEARTBEAT_MS = 300;

const job = (e: ReceivedEvent) => JSON.parse(e.data) as BulkJobResponseDto;
const progressEvents = (c: SseClient) => c.events.filter((e) => e.event === 'progress');

/** Moves a job's counters (and status) as a worker's result batches would. */
async function setCounters(
  db: DataSource,
  id: string,
  counters: { succeeded?: number; failed?: number; status?: string },
): Promise<void> {
  await db.query(
    `UPDATE bulk_jobs SET
       succeeded_items = COALESCE($2, succeeded_items),
       failed_items = COALESCE($3, failed_items),
       status = COALESCE($4, status),
       finished_at = CASE WHEN COALESCE($4, status) IN ('completed', 'failed', 'cancelled') THEN now() END,
       updated_at = now()
     WHERE id = $1`,
    [id, counters.succeeded ?? null, counters.failed ?? null, counters.status ?? null],
  );
}

/** Counts the statements matching `match` that the application sends on its pool (Database). */
function countStatements(
  pool: Pool,
  match: (sql: string) => boolean,
): { count: () => number; restore: () => void } {
  let n = 0;
  const viaPool = pool.query;
  pool.query = ((...args: Parameters<Pool['query']>) => {
    if (typeof args[0] === 'string' && match(args[0])) n++;
    return (viaPool as (...a: unknown[]) => unknown).apply(pool, args);
  }) as Pool['query'];
  return {
    count: () => n,
    restore: () => {
      pool.query = viaPool;
    },
  };
}

describe('GET /api/actions/bulk/jobs/{id}/events', () => {
  let t: TestApp;
  let base: string;
  let hub: JobEventsService;
  const open: SseClient[] = [];

  before(async () => {
    t = await createTestApp({
      SSE_PROGRESS_INTERVAL_MS: String(INTERVAL_MS),
      SSE_HEARTBEAT_MS: String(HEARTBEAT_MS),
      // The fan-out test follows four jobs of one owner with 200 streams; the caps have their own spec.
      SSE_MAX_STREAMS_PER_OWNER: '0',
    });
    await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
    hub = t.app.get(JobEventsService);
  });
  after(async () => {
    for (const c of open) c.destroy();
    await t.close();
  });

  const stream = async (owner: string, id: string, headers: Record<string, string> = {}, scope?: string) => {
    const c = await openSse(`${base}${JOBS}/${id}/events`, {
      ...bearer(tokenFor(owner, scope ? { scope } : {})),
      ...headers,
    });
    open.push(c);
    return c;
  };
  const runningJob = (owner: string, items = 10) => insertJob(t.db, { owner, status: 'running', items });

  it('opens an event stream whose first event is the job as GET shows it', async () => {
    const owner = newOwner();
    const id = await runningJob(owner);
    const c = await stream(owner, id, { 'X-Request-Id': 'sse-trace-1' });
    expect(c.status).toBe(200);
    expect(c.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(c.headers['cache-control']).toMatch(/no-cache/);
    expect(c.headers['x-accel-buffering']).toBe('no');
    expect(c.headers['x-request-id']).toBe('sse-trace-1');

    const first = await c.waitForEvent(() => true);
    expect(first.event).toBe('progress');
    expect(first.id).toMatch(/^[\w-]{8,}$/);
    const shown = await t
      .http()
      .get(`${JOBS}/${id}`)
      .set(bearer(tokenFor(owner)));
    expect(job(first)).toEqual(shown.body);
    c.destroy();
  });

  it('sends a progress event for each change of the counters, then end with the terminal status, and closes', async () => {
    const owner = newOwner();
    const id = await runningJob(owner);
    const c = await stream(owner, id);
    await c.waitForEvent((e) => e.event === 'progress');
    for (let n = 1; n <= 4; n++) {
      await setCounters(t.db, id, { succeeded: n });
      await c.waitForEvent((e) => e.event === 'progress' && job(e).succeeded_items === n);
    }
    await setCounters(t.db, id, { succeeded: 8, failed: 2, status: 'failed' });
    const end = await c.waitForEvent((e) => e.event === 'end');
    await c.waitForClose();

    expect(job(end)).toMatchObject({
      id,
      status: 'failed',
      succeeded_items: 8,
      failed_items: 2,
      progress: 1,
    });
    expect(progressEvents(c).map((e) => job(e).succeeded_items)).toEqual([0, 1, 2, 3, 4]);
    expect(c.events[c.events.length - 1]).toBe(end);
    // Every event names its state; a state seen twice would be a repeat.
    const ids = c.events.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    await waitFor('the hub to let go of the stream', async () => hub.subscriberCount(id) === 0);
  });

  // Judged by the server's own counts, not by arrival times on a client that shares a busy machine:
  // the poller's ticks (one query each) and the events, each naming a distinct job state.
  it('sends at most one progress event per poll tick, a tick at most every interval, however fast the counters change', async () => {
    const owner = newOwner();
    const id = await runningJob(owner, 1000);
    const c = await stream(owner, id);
    await c.waitForEvent((e) => e.event === 'progress');
    const ticksBefore = hub.stats().ticks;
    const started = performance.now();
    // 150 changes, in rounds of 30 written as fast as the database takes them; after each round
    // the client waits for that round's last state.
    for (let round = 1; round <= 5; round++) {
      for (let k = 1; k <= 30; k++) await setCounters(t.db, id, { succeeded: (round - 1) * 30 + k });
      await c.waitForEvent((e) => e.event === 'progress' && job(e).succeeded_items === round * 30);
    }
    const ticks = hub.stats().ticks - ticksBefore;
    const elapsed = performance.now() - started;
    await setCounters(t.db, id, { succeeded: 1000, status: 'completed' });
    const end = await c.waitForEvent((e) => e.event === 'end');
    await c.waitForClose();

    const progress = progressEvents(c);
    // The first event was sent when the stream opened; every other one by a tick, at most one each.
    expect(progress.length).toBeGreaterThanOrEqual(1 + 5);
    expect(progress.length - 1).toBeLessThanOrEqual(ticks);
    // The poller waits a whole interval after each tick: however many changes, no more ticks than that.
    expect(ticks).toBeLessThanOrEqual(Math.ceil(elapsed / INTERVAL_MS) + 1);
    for (let i = 1; i < progress.length; i++) {
      expect(job(progress[i]).succeeded_items).toBeGreaterThan(job(progress[i - 1]).succeeded_items);
    }
    const ids = c.events.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(job(end)).toMatchObject({ status: 'completed', succeeded_items: 1000, progress: 1 });
  });

  it('sends heartbeat comments and no event while nothing changes', async () => {
    const owner = newOwner();
    const id = await runningJob(owner);
    const c = await stream(owner, id);
    await c.waitForEvent(() => true);
    const ticksBefore = hub.stats().ticks;
    // Two heartbeats, and two polls that found nothing new (a tick starts after the previous one ended).
    await waitFor(
      'two heartbeats and two polls',
      () => c.comments.length >= 2 && hub.stats().ticks >= ticksBefore + 2,
      { intervalMs: 20 },
    );
    expect(new Set(c.comments.map((x) => x.text))).toEqual(new Set(['heartbeat']));
    expect(c.events).toHaveLength(1);
    c.destroy();
  });

  it('answers a finished job with its end event alone, and a deleted one as GET shows it', async () => {
    const owner = newOwner();
    const done = await insertJob(t.db, { owner, status: 'completed' });
    const c = await stream(owner, done);
    await c.waitForClose();
    expect(c.events.map((e) => e.event)).toEqual(['end']);
    expect(job(c.events[0])).toMatchObject({ id: done, status: 'completed', deleted_at: null });

    const deleted = await insertJob(t.db, {
      owner,
      status: 'cancelled',
      deletedAt: new Date(),
      purgeAt: new Date(Date.now() + 86_400_000),
    });
    const d = await stream(owner, deleted);
    await d.waitForClose();
    expect(d.events.map((e) => e.event)).toEqual(['end']);
    const shown = job(d.events[0]);
    expect(shown.status).toBe('cancelled');
    expect(shown.deleted_at).not.toBeNull();
    expect(shown.purge_at).not.toBeNull();
  });

  it('sends a 404 problem event and closes when the job is purged while the stream is open', async () => {
    const owner = newOwner();
    const id = await runningJob(owner);
    const c = await stream(owner, id, { 'X-Request-Id': 'sse-purged' });
    await c.waitForEvent(() => true);
    await t.db.query(`DELETE FROM bulk_jobs WHERE id = $1`, [id]);
    const problem = await c.waitForEvent((e) => e.event === 'problem');
    await c.waitForClose();
    expect(JSON.parse(problem.data)).toEqual({
      type: '/problems/job-not-found',
      title: 'Job not found.',
      status: 404,
      detail: `Bulk action job ${id} was not found.`,
      error: `Bulk action job ${id} was not found.`,
      instance: `${JOBS}/${id}/events`,
      requestId: 'sse-purged',
    });
  });

  describe('problems before the stream starts', () => {
    const get = (id: string) => t.http().get(`${JOBS}/${id}/events`).set('Accept', 'text/event-stream');

    it('401 without a token, and with a token that is not valid', async () => {
      const id = await runningJob(newOwner());
      expectProblem(await get(id), 401, { type: 'about:blank' });
      const res = await get(id).set(
        bearer(tokenFor(newOwner(), { secret: 'another-secret-that-is-long-enough-0123' })),
      );
      expectProblem(res, 401, { type: 'about:blank' });
      expect(res.headers['www-authenticate']).toMatch(/invalid_token/);
    });

    it('403 without the read scope', async () => {
      const owner = newOwner();
      const id = await runningJob(owner);
      expectProblem(await get(id).set(bearer(tokenFor(owner, { scope: 'bulk-jobs:write' }))), 403, {
        required_scope: 'bulk-jobs:read',
      });
    });

    it('404 for an unknown job, another owner’s job and a purged job, exactly as GET', async () => {
      const reader = newOwner();
      const unknown = '6f1c1f0e-0000-4000-8000-000000000000';
      const theirs = await runningJob(newOwner());
      const purged = await insertJob(t.db, {
        owner: reader,
        status: 'completed',
        deletedAt: new Date(Date.now() - 2 * 86_400_000),
        purgeAt: new Date(Date.now() - 86_400_000),
      });
      for (const id of [unknown, theirs, purged]) {
        const res = await get(id).set(bearer(tokenFor(reader)));
        expectProblem(res, 404, { type: '/problems/job-not-found' });
        const plain = await t
          .http()
          .get(`${JOBS}/${id}`)
          .set(bearer(tokenFor(reader)));
        expect(plain.status).toBe(404);
      }
      expect(hub.subscriberCount()).toBe(0);
    });

    it('400 validation-error with details.id when the id is not a UUID', async () => {
      expectProblem(await get('not-a-uuid').set(bearer(tokenFor(newOwner()))), 400, {
        type: '/problems/validation-error',
        details: { id: 'must be a UUID' },
      });
    });
  });

  it("lets an admin follow another owner's job", async () => {
    const id = await runningJob(newOwner());
    const c = await stream(newOwner('admin'), id, {}, 'bulk-jobs:read bulk-jobs:admin');
    expect(c.status).toBe(200);
    expect(job(await c.waitForEvent(() => true)).id).toBe(id);
    c.destroy();
  });

  it('answers HEAD with the stream headers and no body', async () => {
    const owner = newOwner();
    const id = await runningJob(owner);
    const res = await t
      .http()
      .head(`${JOBS}/${id}/events`)
      .set(bearer(tokenFor(owner)));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(hub.subscriberCount(id)).toBe(0);
  });

  it('does not repeat the state a reconnecting client names in Last-Event-ID', async () => {
    const owner = newOwner();
    const id = await runningJob(owner);
    const first = await stream(owner, id);
    const seen = await first.waitForEvent(() => true);
    first.destroy();

    const again = await stream(owner, id, { 'Last-Event-ID': seen.id! });
    const ticksBefore = hub.stats().ticks;
    await waitFor('two polls of the unchanged job', () => hub.stats().ticks >= ticksBefore + 2, {
      intervalMs: 20,
    });
    expect(again.events).toEqual([]);
    await setCounters(t.db, id, { succeeded: 5 });
    const next = await again.waitForEvent(() => true);
    expect(next.event).toBe('progress');
    expect(job(next).succeeded_items).toBe(5);
    expect(next.id).not.toBe(seen.id);
    again.destroy();
  });

  it('counts a stream against the caps only while it is open: not after HEAD, a finished job, a 404 or a disconnect', async () => {
    await waitFor('earlier streams to be released', () => hub.openStreams() === 0);
    const owner = newOwner();
    const running = await runningJob(owner);
    const done = await insertJob(t.db, { owner, status: 'completed' });
    const head = await t
      .http()
      .head(`${JOBS}/${running}/events`)
      .set(bearer(tokenFor(owner)));
    expect(head.status).toBe(200);
    const finished = await stream(owner, done);
    await finished.waitForClose();
    const missing = await stream(owner, '6f1c1f0e-0000-4000-8000-000000000000');
    expect(missing.status).toBe(404);
    await missing.waitForClose();
    expect(hub.openStreams(owner)).toBe(0);

    const live = await stream(owner, running);
    await live.waitForEvent(() => true);
    expect(hub.openStreams(owner)).toBe(1);
    live.destroy();
    await waitFor('the slot to be freed', () => hub.openStreams() === 0);
  });

  it('releases a client that disconnects: no subscriber, no timer left', async () => {
    await waitFor('earlier streams to be released', async () => hub.subscriberCount() === 0);
    const owner = newOwner();
    const id = await runningJob(owner);
    const c = await stream(owner, id);
    await c.waitForEvent(() => true);
    expect(hub.subscriberCount(id)).toBe(1);
    expect(hub.stats().active).toBe(true);

    c.destroy();
    await waitFor('the hub to drop the subscriber', () => hub.subscriberCount(id) === 0);
    expect(hub.stats()).toMatchObject({ subscribers: 0, jobs: 0, active: false });
    // Nothing polls once nobody listens (a negative check: several intervals go by).
    const ticks = hub.stats().ticks;
    await sleep(INTERVAL_MS * 3);
    expect(hub.stats().ticks).toBe(ticks);
  });

  it('serves 200 concurrent subscribers with one query per tick, whatever their number', async () => {
    await waitFor('earlier streams to be released', async () => hub.subscriberCount() === 0);
    const owner = newOwner();
    const jobIds = await Promise.all([1, 2, 3, 4].map(() => runningJob(owner, 100)));
    const agent = streamAgent();
    const token = tokenFor(owner);
    const clients = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        openSse(`${base}${JOBS}/${jobIds[i % 4]}/events`, bearer(token), agent).then((c) => {
          open.push(c);
          return c;
        }),
      ),
    );
    expect(clients.map((c) => c.status)).toEqual(new Array(200).fill(200));
    await Promise.all(clients.map((c) => c.waitForEvent(() => true, 20_000)));
    await waitFor('every subscriber to be registered', async () => hub.subscriberCount() === 200);
    expect(hub.stats().jobs).toBe(4);

    // Count the poller's statements where they leave for the database, independently of the hub's own counter.
    const counter = countStatements(
      t.app.get(Database).pool,
      (sql) => sql.includes('bulk_jobs') && sql.includes('ANY($1::uuid[])'),
    );
    try {
      const ticksBefore = hub.stats().ticks;
      const started = performance.now();
      for (let n = 1; n <= 3; n++) {
        await Promise.all(jobIds.map((id) => setCounters(t.db, id, { succeeded: n * 10 })));
        await Promise.all(
          clients.map((c) =>
            c.waitForEvent((e) => e.event === 'progress' && job(e).succeeded_items === n * 10),
          ),
        );
      }
      await Promise.all(jobIds.map((id) => setCounters(t.db, id, { succeeded: 100, status: 'completed' })));
      await Promise.all(clients.map((c) => c.waitForClose(20_000)));
      const elapsed = performance.now() - started;
      const ticks = hub.stats().ticks - ticksBefore;

      for (const c of clients) {
        const last = c.events[c.events.length - 1];
        expect(last.event).toBe('end');
        expect(job(last)).toMatchObject({ status: 'completed', succeeded_items: 100 });
        expect(progressEvents(c).map((e) => job(e).succeeded_items)).toEqual([0, 10, 20, 30]);
      }
      // 200 clients polling on their own would make about 800 statements a second.
      expect(counter.count()).toBe(ticks);
      expect(ticks).toBeGreaterThan(0);
      expect(ticks).toBeLessThanOrEqual(Math.ceil(elapsed / INTERVAL_MS) + 1);
    } finally {
      counter.restore();
    }
    await waitFor('the hub to release every stream', async () => hub.subscriberCount() === 0);
    expect(hub.stats().active).toBe(false);
    agent.destroy();
  });
});
