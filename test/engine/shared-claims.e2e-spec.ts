import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { NoopAction } from '../../src/actions/noop.action';
import type { ClaimStart, EngineStore } from '../../src/engine/engine-store';
import { newRunningItem } from '../../src/engine/types';
import { createJob } from '../support/api';
import type { TestApp } from '../support/app';
import {
  createEngineDatabase,
  createEngineTestApp,
  type EngineDatabase,
  handDrivenStore,
} from '../support/engine';
import { newOwner } from '../support/tokens';

const WORKER_A = 'worker-a:1:shared';
const WORKER_B = 'worker-b:1:shared';
const CLAIM = 5;

interface Claimed {
  shared: boolean;
  seqs: number[];
  reservedFrom: number | null;
}

/**
 * What the claims of several workers on one job tell each other, through the
 * job row: who claimed last (a worker not alone on a job keeps to one claim
 * in flight) and how far claims have gone (a claim that continues the job
 * starts past every item claimed so far). Two workers driven by hand through
 * the engine's store, so that the order of their claims is the test's.
 */
describe('claims of one job by several workers', () => {
  let db: EngineDatabase;
  let t: TestApp;
  let store: EngineStore;

  before(async () => {
    db = await createEngineDatabase();
    // The API only (it also applies the migrations): the workers are this spec's hands.
    t = await createEngineTestApp(db.url);
    store = handDrivenStore(db.url);
  });

  after(async () => {
    await store?.onApplicationShutdown();
    await t?.close();
    await db?.drop();
  });

  /** Jobs of earlier tests, which the claims of later ones leave alone. */
  const earlier: string[] = [];

  const claim = async (worker: string, from: ClaimStart | null = null, reserve = false): Promise<Claimed> => {
    const res = await store.claim(worker, CLAIM, ['noop'], 60_000, earlier, from, reserve);
    if (res.kind !== 'claimed') throw new Error(`${worker} claimed nothing: ${res.kind}`);
    return {
      shared: res.job.shared,
      seqs: [...(res.items?.seqs ?? [])].sort((x, y) => x - y),
      reservedFrom: res.reservedFrom,
    };
  };

  const range = (from: number, count = CLAIM) => Array.from({ length: count }, (_, i) => from + i);

  const jobRow = async (id: string): Promise<{ last_claimed_by: string | null; claim_frontier: number }> => {
    const rows: { last_claimed_by: string | null; claim_frontier: number }[] = await t.db.query(
      `SELECT last_claimed_by, claim_frontier FROM bulk_jobs WHERE id = $1`,
      [id],
    );
    return rows[0];
  };

  it('stamps the claiming worker and the frontier, and tells a worker when another one claimed before it', async () => {
    const job = await createJob(t, newOwner(), {
      action: 'noop',
      targets: Array.from({ length: 30 }, (_, i) => `t${i}`),
    });
    expect(await jobRow(job.id)).toEqual({ last_claimed_by: null, claim_frontier: 0 });

    // A alone: its claims are not shared, and each moves the frontier past what it took.
    const a1 = await claim(WORKER_A);
    expect(a1).toEqual({ shared: false, seqs: [0, 1, 2, 3, 4], reservedFrom: null });
    expect(await jobRow(job.id)).toEqual({ last_claimed_by: WORKER_A, claim_frontier: 5 });
    expect(await claim(WORKER_A, { jobId: job.id, seq: 0 })).toEqual({
      shared: false,
      seqs: [5, 6, 7, 8, 9],
      reservedFrom: null,
    });

    // B's claim finds A's stamp: B is not alone on the job.
    const b1 = await claim(WORKER_B);
    expect(b1).toEqual({ shared: true, seqs: [10, 11, 12, 13, 14], reservedFrom: null });
    expect(await jobRow(job.id)).toEqual({ last_claimed_by: WORKER_B, claim_frontier: 15 });

    // A continues the job from where its own last claim began (seq 5): the claim starts at the
    // frontier, past B's items, and A learns that another worker claimed in between.
    const a3 = await claim(WORKER_A, { jobId: job.id, seq: 5 });
    expect(a3).toEqual({ shared: true, seqs: [15, 16, 17, 18, 19], reservedFrom: null });
    expect(await jobRow(job.id)).toEqual({ last_claimed_by: WORKER_A, claim_frontier: 20 });
    earlier.push(job.id);
  });

  it('reserves the next range for a worker that asks, past every other reservation, and claims it', async () => {
    const job = await createJob(t, newOwner(), {
      action: 'noop',
      targets: Array.from({ length: 40 }, (_, i) => `t${i}`),
    });
    // A's full claim reserves the five seqs past what it took.
    const a1 = await claim(WORKER_A, null, true);
    expect(a1).toEqual({ shared: false, seqs: range(0), reservedFrom: 5 });
    expect(await jobRow(job.id)).toEqual({ last_claimed_by: WORKER_A, claim_frontier: 10 });

    // B continues the job from the frontier, past A's reservation, and reserves its own.
    const b1 = await claim(WORKER_B, { jobId: job.id, seq: 0 }, true);
    expect(b1).toEqual({ shared: true, seqs: range(10), reservedFrom: 15 });

    // Each claims its own range, although the frontier is past both.
    const a2 = await claim(WORKER_A, { jobId: job.id, seq: 5, reserved: true }, true);
    expect(a2).toEqual({ shared: true, seqs: range(5), reservedFrom: 20 });
    const b2 = await claim(WORKER_B, { jobId: job.id, seq: 15, reserved: true }, true);
    expect(b2).toEqual({ shared: true, seqs: range(15), reservedFrom: 25 });
    expect(await jobRow(job.id)).toEqual({ last_claimed_by: WORKER_B, claim_frontier: 30 });

    // A claim without `reserve` reserves nothing and moves the frontier past its items only.
    const a3 = await claim(WORKER_A, { jobId: job.id, seq: 20, reserved: true });
    expect(a3).toEqual({ shared: true, seqs: range(20), reservedFrom: null });
    expect(await jobRow(job.id)).toEqual({ last_claimed_by: WORKER_A, claim_frontier: 30 });

    // B's reservation (25-29) was not claimed: it waits below the frontier for a claim from the start.
    const a4 = await claim(WORKER_A, { jobId: job.id, seq: 0 }, true);
    expect(a4).toEqual({ shared: false, seqs: range(30), reservedFrom: 35 });
    expect((await claim(WORKER_B, null, true)).seqs).toEqual(range(25));
    earlier.push(job.id);
  });

  it('gives claims in flight at once disjoint ranges, and each claims its own', async () => {
    const workers = Array.from({ length: 8 }, (_, k) => `worker-${k}:1:shared`);
    const job = await createJob(t, newOwner(), {
      action: 'noop',
      targets: Array.from({ length: 8 * 4 * CLAIM }, (_, i) => `t${i}`),
    });
    // One claim after another: each continues past the last reservation and reserves its own.
    const first: Claimed[] = [];
    for (const w of workers) first.push(await claim(w, { jobId: job.id, seq: 0 }, true));
    expect(first.map((c) => c.reservedFrom)).toEqual(workers.map((_, k) => 10 * k + 5));

    // Then every worker claims its range and reserves the next, all at once, twice.
    let ranges = first.map((c) => c.reservedFrom!);
    const taken = first.flatMap((c) => c.seqs);
    for (let round = 0; round < 2; round++) {
      const claims = await Promise.all(
        workers.map((w, k) => claim(w, { jobId: job.id, seq: ranges[k], reserved: true }, true)),
      );
      for (const [k, c] of claims.entries()) expect(c.seqs).toEqual(range(ranges[k]));
      taken.push(...claims.flatMap((c) => c.seqs));
      ranges = claims.map((c) => c.reservedFrom!);
      // The reservations made at once do not overlap, and lie past everything claimed so far.
      const sorted = [...ranges].sort((x, y) => x - y);
      for (let k = 1; k < sorted.length; k++) expect(sorted[k] - sorted[k - 1]).toBeGreaterThanOrEqual(CLAIM);
      expect(sorted[0]).toBeGreaterThan(Math.max(...taken));
      expect((await jobRow(job.id)).claim_frontier).toBe(sorted[sorted.length - 1] + CLAIM);
    }
    expect(new Set(taken).size).toBe(taken.length);
    earlier.push(job.id);
  });

  it('leaves items pending again below the frontier to a claim from the job’s start', async () => {
    const job = await createJob(t, newOwner(), {
      action: 'noop',
      targets: Array.from({ length: 12 }, (_, i) => `t${i}`),
    });
    const first = await claim(WORKER_A);
    expect(first.seqs).toEqual([0, 1, 2, 3, 4]);

    // Item 2 is retried at once: pending again, below the frontier (5).
    const noop = new NoopAction();
    const item = newRunningItem(
      { id: job.id, action: 'noop', params: {}, handler: noop, maxAttempts: 3 },
      2,
      't2',
      null,
      1,
    );
    item.outcome = 'retry';
    item.error = { code: 'TRY_AGAIN', message: 'once more' };
    item.delayMs = 0;
    await store.record(WORKER_A, [item]);

    // A claim that continues the job does not go back for it...
    expect((await claim(WORKER_A, { jobId: job.id, seq: 0 })).seqs).toEqual([5, 6, 7, 8, 9]);
    // ...the next claim from the start does, with the rest of the job.
    expect((await claim(WORKER_A)).seqs).toEqual([2, 10, 11]);
    expect(await jobRow(job.id)).toMatchObject({ claim_frontier: 12 });
  });
});
