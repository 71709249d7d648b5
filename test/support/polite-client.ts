import { expect } from 'expect';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Pool } from 'pg';
import type { TestApp } from './app';
import { JOBS } from './api';
import { insertJob } from './factories';
import { bearer, newOwner, tokenFor } from './tokens';

/** One answered request: its status and how long it took, in ms. */
export interface Timed {
  status: number;
  ms: number;
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
};

export const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

/**
 * How slow a polite request may be while an attack runs: ten times its own
 * median before the attack, and never less than a second, so that a loaded
 * machine does not fail the test; a request that waits for a database
 * connection the attack holds (3 s, then a 503) still does.
 */
export const latencyBound = (baselineP50: number): number => Math.max(10 * baselineP50, 1000);

/**
 * A well-behaved client on one keep-alive connection of its own: it sends a
 * request, reads the whole answer, and only then sends the next one.
 */
export class PoliteClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });

  constructor(
    private readonly base: string,
    private readonly headers: Record<string, string> = {},
  ) {}

  /** GET `path`, timed from the first byte sent to the last byte read; bounded by `timeoutMs`. */
  get(path: string, timeoutMs = 20_000): Promise<Timed & { body: string }> {
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const req = request(`${this.base}${path}`, { headers: this.headers, agent: this.agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started, body }));
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${path}: no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end();
    });
  }

  /** `count` GETs one after the other. */
  async series(path: string, count: number): Promise<Timed[]> {
    const out: Timed[] = [];
    for (let i = 0; i < count; i++) {
      const { status, ms } = await this.get(path);
      out.push({ status, ms });
    }
    return out;
  }

  /**
   * The median latency of `count` GETs of `path`, after a few unmeasured ones
   * (the connection, the statements' first plans); throws unless all are 200.
   */
  async baseline(path: string, count = 20): Promise<number> {
    await this.series(path, 3);
    const runs = await this.series(path, count);
    const failed = runs.filter((r) => r.status !== 200);
    if (failed.length > 0) throw new Error(`baseline GET ${path}: ${JSON.stringify(failed)}`);
    return median(runs.map((r) => r.ms));
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Latencies as `p50 1.2 ms, p95 3.4 ms, max 5.6 ms`. */
export function summary(runs: Timed[]): string {
  const ms = runs.map((r) => r.ms);
  const f = (v: number) => `${v.toFixed(1)} ms`;
  return `p50 ${f(median(ms))}, p95 ${f(percentile(ms, 95))}, max ${f(Math.max(...ms))}`;
}

/** How many of each: `{ "200": 10, "429": 190 }`; `none` counts the undefined ones (no answer). */
export function tally(values: (number | string | undefined)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) {
    const key = String(v ?? 'none');
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/** Connections of a pool that a request holds right now. */
export const connectionsInUse = (pool: Pool): number => pool.totalCount - pool.idleCount;

/**
 * An owner that minds its manners, through the test app's HTTP client: an owner of its own with a few jobs, who
 * reads its first page and one job. Its latency is compared with its own
 * baseline, measured in the same test just before the hostile client starts,
 * never with a fixed number of milliseconds.
 */
export class PoliteOwner {
  private readonly token: string;
  private jobId = '';
  private baselineMs = 0;

  private constructor(
    private readonly t: TestApp,
    readonly owner: string,
  ) {
    this.token = tokenFor(owner);
  }

  static async start(t: TestApp): Promise<PoliteOwner> {
    const client = new PoliteOwner(t, newOwner('polite'));
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
   * order-of-magnitude slowdown counts as starved: latencyBound). Returns what it measured.
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
    expect({ medianMs, bound: medianMs <= latencyBound(this.baselineMs) }).toEqual({
      medianMs,
      bound: true,
    });
    return { result, rounds: took.length, medianMs, baselineMs: this.baselineMs };
  }
}
