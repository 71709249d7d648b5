import { expect } from 'expect';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/app';
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
import { createHosts, forward, netnsProblem, type HostNet } from '../support/netns';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const ITEMS = 20_000;
const LEASE_MS = 4000;

/**
 * A downstream that counts requests per Idempotency-Key and applies each key
 * once (a repeat is answered 200 without a second effect), and records which
 * host each request came from.
 */
class Downstream {
  readonly deliveries = new Map<string, number>();
  readonly applied = new Set<string>();
  readonly fromAddress = new Map<string, number>();
  private server!: Server;
  port = 0;

  async start(host: string): Promise<void> {
    this.server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const key = String(req.headers['idempotency-key'] ?? '');
        this.deliveries.set(key, (this.deliveries.get(key) ?? 0) + 1);
        this.applied.add(key);
        const from = req.socket.remoteAddress ?? '';
        this.fromAddress.set(from, (this.fromAddress.get(from) ?? 0) + 1);
        // A little work per request, so that the job outlasts the cut.
        setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'), 15);
      });
    });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => this.server.listen(0, host, r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/**
 * Four hosts made of network namespaces (two API processes, two workers) on
 * one PostgreSQL; one worker host's link is cut in the middle of a job of
 * 20,000 http items and brought back later. Needs root and iproute2 (as the
 * README's `npm test` has on the machines it supports): without them this
 * spec fails, it does not skip.
 */
describe('a worker host cut off from the network mid-job', () => {
  let db: EngineDatabase;
  let t: TestApp;
  let hosts: HostNet | undefined;
  let fwd: { port: number; close(): Promise<void> } | undefined;
  const downstream = new Downstream();
  const procs: WorkerProcess[] = [];

  before(async () => {
    const problem = netnsProblem();
    if (problem) throw new Error(`this spec builds hosts with network namespaces and ${problem}`);
    db = await createEngineDatabase();
    // The migrations, and a connection for the spec's reads.
    t = await createEngineTestApp(db.url);
    hosts = createHosts(4);
    const server = new URL(db.url);
    fwd = await forward(hosts.hub, { host: server.hostname, port: Number(server.port || 5432) });
    const hostUrl = new URL(db.url);
    hostUrl.hostname = hosts.hub;
    hostUrl.port = String(fwd.port);
    await downstream.start(hosts.hub);
    const env = {
      ACTIONS_HTTP_ALLOWED_HOSTS: `${hosts.hub}:${downstream.port}`,
      ACTIONS_HTTP_TIMEOUT_MS: '3000',
      DATABASE_MIGRATIONS_RUN: 'false',
      WORKER_LEASE_MS: String(LEASE_MS),
      WORKER_CONCURRENCY: '10',
      WORKER_BATCH_SIZE: '100',
      WORKER_POLL_INTERVAL_MS: '100',
      WORKER_RETRY_BASE_MS: '200',
    };
    const [api1, api2, w1, w2] = hosts.hosts;
    for (const h of [api1, api2]) {
      procs.push(
        startWorker(
          hostUrl.toString(),
          { ...env, HOST: h.address, PORT: '3000' },
          { prefix: h.exec, api: true },
        ),
      );
    }
    for (const h of [w1, w2]) procs.push(startWorker(hostUrl.toString(), env, { prefix: h.exec }));
    await Promise.all(procs.map((p) => p.ready));
  });

  after(async () => {
    await killAll(procs);
    await fwd?.close();
    await downstream.stop();
    hosts?.destroy();
    await t?.close();
    await db?.drop();
  });

  it('completes the job with every item applied once; the cut worker stops, and rejoins when the link is back', async () => {
    const [api1, api2, w1, w2] = hosts!.hosts;
    const [, , cutWorker, otherWorker] = procs;
    const owner = newOwner();
    const created = await fetch(`http://${api1.address}:3000/api/actions/bulk/jobs`, {
      method: 'POST',
      headers: { ...bearer(tokenFor(owner)), 'content-type': 'application/json' },
      body: JSON.stringify({
        action: 'http',
        params: { url: `http://${hosts!.hub}:${downstream.port}/items/{id}`, method: 'POST' },
        targets: Array.from({ length: ITEMS }, (_, i) => `t${i}`),
      }),
    });
    expect(created.status).toBe(202);
    const jobId = ((await created.json()) as { id: string }).id;
    const leasedTo = async (worker: string): Promise<number> =>
      (
        await t.db.query<{ n: number }[]>(
          `SELECT count(*)::int AS n FROM bulk_job_items WHERE job_id = $1 AND status = 'running' AND lease_owner = $2`,
          [jobId, worker],
        )
      )[0].n;
    const succeeded = async (): Promise<number> =>
      (
        await t.db.query<{ n: number }[]>('SELECT succeeded_items AS n FROM bulk_jobs WHERE id = $1', [jobId])
      )[0].n;

    // Both workers under way, the one to be cut holding leases.
    await waitFor('both worker hosts to call the downstream', () =>
      [w1, w2].every((h) => (downstream.fromAddress.get(h.address) ?? 0) > 50),
    );
    await waitFor('the worker to be cut to hold leases', async () => (await leasedTo(cutWorker.id)) > 0);

    hosts!.cut(w1);
    const cutAt = Date.now();
    const linesBefore = cutWorker.output.length;
    // It notices: its lease renewal fails (the client's timeout, half a lease) before the lease runs out.
    await waitFor(
      'the cut worker to report its lease renewal failing',
      () => cutWorker.output.slice(linesBefore).some((l) => /lease renewal failed/.test(l)),
      { timeoutMs: 30_000 },
    );
    // Its leases run out and the other worker's sweep gives the items back; it claims nothing meanwhile.
    await waitFor('the cut worker to hold no lease', async () => (await leasedTo(cutWorker.id)) === 0, {
      timeoutMs: 30_000,
    });
    const fromCutBefore = downstream.fromAddress.get(w1.address) ?? 0;
    const progress = await succeeded();
    await waitFor('the other worker to go on alone', async () => (await succeeded()) > progress + 500, {
      timeoutMs: 60_000,
    });
    expect(await leasedTo(cutWorker.id)).toBe(0);
    expect(downstream.fromAddress.get(w1.address) ?? 0).toBe(fromCutBefore);
    expect(await succeeded()).toBeLessThan(ITEMS);

    hosts!.restore(w1);
    const cutMs = Date.now() - cutAt;
    // It rejoins without a restart: the same process calls the downstream again.
    await waitFor(
      'the cut worker to work again',
      () => (downstream.fromAddress.get(w1.address) ?? 0) > fromCutBefore,
      { timeoutMs: 60_000 },
    );
    expect(cutWorker.alive()).toBe(true);

    const done = await waitForJob(t.db, jobId, ['completed', 'failed'], 180_000);
    expect(done.status).toBe('completed');
    // The job as an API host that played no part reads it.
    const read = await fetch(`http://${api2.address}:3000/api/actions/bulk/jobs/${jobId}`, {
      headers: bearer(tokenFor(owner)),
    });
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ status: 'completed', succeeded_items: ITEMS, failed_items: 0 });
    const statuses = await t.db.query<{ status: string; n: number }[]>(
      'SELECT status, count(*)::int AS n FROM bulk_job_items WHERE job_id = $1 GROUP BY status',
      [jobId],
    );
    expect(statuses).toEqual([{ status: 'succeeded', n: ITEMS }]);
    // Every key reached the downstream, and only the job's stable keys did: a repeat after the cut
    // carried the same key, so the downstream applied each item once.
    const expected = new Set(Array.from({ length: ITEMS }, (_, seq) => `"${jobId}:${seq}"`));
    expect(downstream.applied.size).toBe(ITEMS);
    expect([...downstream.applied].filter((k) => !expected.has(k))).toEqual([]);
    const repeats = [...downstream.deliveries.values()].reduce((a, n) => a + n, 0) - ITEMS;
    expect(repeats).toBeGreaterThanOrEqual(0);
    expect(otherWorker.alive()).toBe(true);
    console.log(
      `partition: cut for ${cutMs} ms; ${repeats} repeated deliveries; requests per host: ${JSON.stringify(Object.fromEntries(downstream.fromAddress))}`,
    );
  });
});
