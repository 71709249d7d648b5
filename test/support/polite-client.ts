import { Agent, request } from 'node:http';
import type { Pool } from 'pg';

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
