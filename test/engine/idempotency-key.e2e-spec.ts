import { expect } from 'expect';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/app';
import { createJob } from '../support/api';
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
import { newOwner } from '../support/tokens';

interface Seen {
  at: number;
  path: string;
  /** The raw Idempotency-Key header, as sent. */
  key: string | undefined;
}

/**
 * How to answer the nth (0-based) request for a path: at once, after a delay, never, or as a
 * downstream that honours the key (see Downstream.keyed).
 */
type Answer = 'now' | 'hold' | { afterMs: number } | { keyed: { effectMs: number } };
type Plan = (path: string, nth: number) => Answer;

/**
 * A local downstream that records every request with its Idempotency-Key and
 * answers 200 as the plan registered for the path's prefix says. A held request
 * stays open until its client goes away.
 */
class Downstream {
  readonly seen: Seen[] = [];
  /** Effects applied per key by `keyed` answers: what a downstream that honours the key stores. */
  readonly effects = new Map<string, number>();
  private readonly inFlight = new Set<string>();
  private readonly plans = new Map<string, Plan>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private server!: Server;
  port = 0;

  plan(prefix: string, plan: Plan): void {
    this.plans.set(prefix, plan);
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      req.resume();
      req.on('end', () => this.answer(req, res));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '';
    const nth = this.requests(path).length;
    const key = req.headers['idempotency-key'];
    this.seen.push({ at: Date.now(), path, key: Array.isArray(key) ? key.join(',') : key });
    const prefix = [...this.plans.keys()].find((p) => path.startsWith(p));
    const answer = prefix ? this.plans.get(prefix)!(path, nth) : 'now';
    if (answer === 'hold') return;
    if (answer === 'now') return void res.writeHead(200).end();
    if ('keyed' in answer) return this.keyed(key as string, answer.keyed.effectMs, res);
    this.later(answer.afterMs, () => {
      if (!res.destroyed) res.writeHead(200).end();
    });
  }

  /**
   * A downstream as the IETF Idempotency-Key draft has it: the first request
   * with a key applies the effect (taking effectMs, whatever the client does
   * meanwhile); a repeat while it runs is a 409; a repeat after it is answered
   * with the stored result, without applying the effect again.
   */
  private keyed(key: string, effectMs: number, res: ServerResponse): void {
    if (this.inFlight.has(key)) return void res.writeHead(409).end();
    if (this.effects.has(key)) return void res.writeHead(200).end();
    this.inFlight.add(key);
    this.later(effectMs, () => {
      this.inFlight.delete(key);
      this.effects.set(key, (this.effects.get(key) ?? 0) + 1);
      if (!res.destroyed) res.writeHead(200).end();
    });
  }

  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  requests(path: string): Seen[] {
    return this.seen.filter((s) => s.path === path);
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/**
 * The key promised for an item: the job's id and the item's seq, the same on
 * every attempt, sent as a structured-field string (RFC 8941: in quotes).
 */
const keyOf = (jobId: string, seq: number) => `"${jobId}:${seq}"`;

/** An sf-string whose content needs no escaping: printable ASCII without `"` or `\`. */
const SF_PLAIN_STRING = /^"[\x20\x21\x23-\x5b\x5d-\x7e]*"$/;

describe('Idempotency-Key: one per item of a job, across every attempt', () => {
  let db: EngineDatabase;
  let t: TestApp;
  const downstream = new Downstream();
  const workers: WorkerProcess[] = [];
  const owner = newOwner();
  let base = '';

  before(async () => {
    await downstream.start();
    base = `http://127.0.0.1:${downstream.port}`;
    db = await createEngineDatabase();
    const env = {
      ACTIONS_HTTP_ALLOWED_HOSTS: `127.0.0.1:${downstream.port}`,
      WORKER_RETRY_BASE_MS: '200',
      WORKER_LEASE_MS: '3000',
      WORKER_SWEEP_INTERVAL_MS: '500',
      WORKER_POLL_INTERVAL_MS: '100',
      WORKER_BATCH_SIZE: '10',
      WORKER_CONCURRENCY: '4',
    };
    // The API only: two worker processes run the items, so that one can be killed.
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

  it('sends the same key again after a timeout whose request got through', async () => {
    // The first request for `slow` is processed, but its answer comes after the action's timeout.
    downstream.plan('/a/', (path, nth) => (path === '/a/slow' && nth === 0 ? { afterMs: 1500 } : 'now'));
    const job = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/a/{id}`, timeout_ms: 500 },
      targets: ['slow', 'fast'],
    });
    expect(await waitForJob(t.db, job.id, ['completed', 'failed'], 30_000)).toMatchObject({
      status: 'completed',
      succeeded_items: 2,
    });

    const slow = downstream.requests('/a/slow');
    const fast = downstream.requests('/a/fast');
    expect(slow.map((s) => s.key)).toEqual([keyOf(job.id, 0), keyOf(job.id, 0)]);
    expect(fast.map((s) => s.key)).toEqual([keyOf(job.id, 1)]);
    // The retry came after the timeout (500 ms from when the worker sent the first request, a few
    // ms before the downstream saw it), as a second attempt of the same item.
    expect(slow[1].at - slow[0].at).toBeGreaterThanOrEqual(450);
    const items: { seq: number; attempts: number; last_error: { code: string } | null }[] = await t.db.query(
      'SELECT seq, attempts, last_error FROM bulk_job_items WHERE job_id = $1 ORDER BY seq',
      [job.id],
    );
    expect(items).toEqual([
      { seq: 0, attempts: 2, last_error: { code: 'HTTP_TIMEOUT', message: expect.any(String) } },
      { seq: 1, attempts: 1, last_error: null },
    ]);
  });

  it('retries a 409 for a repeat in flight, so that a downstream honouring the key applies the item once', async () => {
    // Each request's effect takes 1.5 s; the action gives up after 0.5 s and retries while it still runs.
    downstream.plan('/d/', () => ({ keyed: { effectMs: 1500 } }));
    const job = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/d/{id}`, timeout_ms: 500 },
      targets: ['charge'],
      options: { max_attempts: 10 },
    });
    expect(await waitForJob(t.db, job.id, ['completed', 'failed'], 30_000)).toMatchObject({
      status: 'completed',
      succeeded_items: 1,
    });
    const sent = downstream.requests('/d/charge');
    // A timeout, at least one 409 while the first request was still being applied, then the stored answer.
    expect(sent.length).toBeGreaterThanOrEqual(3);
    expect(new Set(sent.map((s) => s.key))).toEqual(new Set([keyOf(job.id, 0)]));
    expect(downstream.effects.get(keyOf(job.id, 0))).toBe(1);
    const [item]: { attempts: number }[] = await t.db.query(
      'SELECT attempts FROM bulk_job_items WHERE job_id = $1',
      [job.id],
    );
    expect(item.attempts).toBe(sent.length);
  });

  it('gives two items of one job, and the same target in two jobs, different keys', async () => {
    downstream.plan('/c/', () => 'now');
    const first = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/c/{id}` },
      targets: ['same', 'other'],
    });
    const second = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/c/{id}` },
      targets: ['same'],
    });
    for (const job of [first, second]) {
      expect((await waitForJob(t.db, job.id, ['completed', 'failed'], 30_000)).status).toBe('completed');
    }

    const keys = [...downstream.requests('/c/same'), ...downstream.requests('/c/other')].map((s) => s.key);
    expect(keys.sort()).toEqual([keyOf(first.id, 0), keyOf(first.id, 1), keyOf(second.id, 0)].sort());
    expect(new Set(keys).size).toBe(3);
    for (const key of keys) expect(key).toMatch(SF_PLAIN_STRING);
  });

  it('sends the same key from the worker that re-claims the item of a worker SIGKILLed mid-request', async () => {
    // The first request is held open: its worker dies while waiting for the answer.
    downstream.plan('/b/', (_path, nth) => (nth === 0 ? 'hold' : 'now'));
    const job = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/b/{id}`, timeout_ms: 60_000 },
      targets: ['held'],
    });
    await waitFor('the downstream to hold the first request', async () =>
      downstream.requests('/b/held').length === 1 ? true : undefined,
    );
    const [{ lease_owner: holder }]: { lease_owner: string }[] = await t.db.query(
      'SELECT lease_owner FROM bulk_job_items WHERE job_id = $1',
      [job.id],
    );
    const victim = workers.find((w) => w.id === holder);
    expect(victim).toBeDefined();
    victim!.child.kill('SIGKILL');
    expect((await victim!.exited).signal).toBe('SIGKILL');

    // The lease expires, a sweep gives the item back, the other worker runs it again.
    expect(await waitForJob(t.db, job.id, ['completed', 'failed'], 30_000)).toMatchObject({
      status: 'completed',
      succeeded_items: 1,
    });
    expect(downstream.requests('/b/held').map((s) => s.key)).toEqual([keyOf(job.id, 0), keyOf(job.id, 0)]);
    const [item]: { attempts: number; last_error: { code: string } }[] = await t.db.query(
      'SELECT attempts, last_error FROM bulk_job_items WHERE job_id = $1',
      [job.id],
    );
    expect(item.attempts).toBe(2);
    expect(item.last_error.code).toBe('LEASE_EXPIRED');
  });
});
