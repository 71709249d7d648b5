import { expect } from 'expect';
import { performance } from 'node:perf_hooks';
import type { TestApp } from '../support/app';
import { JOBS } from '../support/api';
import { insertJob } from '../support/factories';
import { bearer, newOwner, tokenFor } from '../support/tokens';

/** The median of a non-empty list. */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * A client that minds its manners: an owner of its own with a few jobs, who
 * reads its first page and one job. Its latency is compared with its own
 * baseline, measured in the same test just before the hostile client starts,
 * never with a fixed number of milliseconds.
 */
export class PoliteClient {
  private readonly token: string;
  private jobId = '';
  private baselineMs = 0;

  private constructor(
    private readonly t: TestApp,
    readonly owner: string,
  ) {
    this.token = tokenFor(owner);
  }

  static async start(t: TestApp): Promise<PoliteClient> {
    const client = new PoliteClient(t, newOwner('polite'));
    for (let i = 0; i < 3; i++)
      client.jobId = await insertJob(t.db, { owner: client.owner, status: 'completed', items: 2 });
    return client;
  }

  /** One round: GET /jobs and GET /jobs/{id}; both must answer 200. Returns its duration in ms. */
  async round(): Promise<number> {
    const started = performance.now();
    const list = await this.t.http().get(JOBS).query({ limit: '10' }).set(bearer(this.token));
    const one = await this.t.http().get(`${JOBS}/${this.jobId}`).set(bearer(this.token));
    const took = performance.now() - started;
    expect({ list: list.status, one: one.status }).toEqual({ list: 200, one: 200 });
    return took;
  }

  /** The median of `rounds` rounds, one after another, before anything hostile runs. */
  async measureBaseline(rounds = 15): Promise<number> {
    await this.round(); // warm-up: the first statements of a kind are prepared
    const took: number[] = [];
    for (let i = 0; i < rounds; i++) took.push(await this.round());
    this.baselineMs = median(took);
    return this.baselineMs;
  }

  /**
   * Keeps making rounds while `hostile` runs; every round must succeed, and
   * their median must stay within a generous bound of the baseline (the
   * machine is shared with the hostile client and the database, so only an
   * order-of-magnitude slowdown counts as starved). Returns what it measured.
   */
  async duringExpectServed<T>(
    hostile: () => Promise<T>,
  ): Promise<{ result: T; rounds: number; medianMs: number; baselineMs: number }> {
    let done = false;
    const took: number[] = [];
    const polite = (async () => {
      while (!done) took.push(await this.round());
    })();
    let result: T;
    try {
      result = await hostile();
    } finally {
      done = true;
      await polite;
    }
    // At least a few rounds, even when the hostile part was quick.
    while (took.length < 5) took.push(await this.round());
    const medianMs = median(took);
    expect({ medianMs, bound: medianMs <= Math.max(10 * this.baselineMs, this.baselineMs + 200) }).toEqual({
      medianMs,
      bound: true,
    });
    return { result, rounds: took.length, medianMs, baselineMs: this.baselineMs };
  }
}
