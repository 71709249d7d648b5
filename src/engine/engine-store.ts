import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';
import type { JobOptions } from '../jobs/job-types';
import { isLockNotAvailable } from '../database/database-errors';
import type { JobStatus } from '../jobs/job-status';
import { maxAttemptsOf, planClaim } from './claim-plan';
import { CLAIM_POOL, ENGINE_POOL } from './engine-pool';
import type { SweptJob, TouchedJob } from './engine-events';
import {
  CLAIM_LIMITED,
  CLAIM_NEXT,
  DEFER_RATE_LIMITED,
  EXTEND_LEASES,
  JOBS_WITH_EXPIRED_LEASES,
  LOCK_JOB,
  LOCK_JOBS,
  LOCK_LIMITED_JOB,
  NEXT_DUE,
  PICK_NEXT,
  APPLY_RESULTS,
  RECORD_FINAL_RESULTS,
  RECORD_RESULTS,
  RETURN_EXPIRED,
  SKIP_RETURNED,
  STILL_LEASED,
} from './engine.sql';
import type { OutcomeKind, RunningItem } from './types';

export interface PickedJob {
  id: string;
  action: string;
  /** The job's status when it was picked: `pending` until its first claim commits. */
  status: JobStatus;
  params: Record<string, unknown>;
  options: JobOptions;
  /** Has a concurrency or rate limit. */
  limited: boolean;
}

interface LimitedJobRow {
  running_items: number;
  rate_tokens: number | null;
  rate_elapsed: number | null;
}

/** The claimed items, as parallel arrays (null when none was claimed). */
export interface ClaimedArrays {
  seqs: number[] | null;
  target_ids: string[] | null;
  datas: (Record<string, unknown> | null)[] | null;
  attempts: number[] | null;
}

interface RecordedTotals {
  job_id: string;
  n: number;
  s: number;
  f: number;
  next_at: Date | null;
  pending_seqs: number[] | null;
}

export type ClaimResult =
  /** Items claimed from one job (possibly none: try again at once). */
  | { kind: 'claimed'; job: PickedJob; items: ClaimedArrays | null }
  /** The job's row was held too long (a cancel in progress): claim from other jobs for a moment. */
  | { kind: 'busy'; jobId: string }
  /** Nothing to claim; the next job is due in waitMs at the earliest (null: none is waiting for time). */
  | { kind: 'idle'; waitMs: number | null };

/** The outcome codes of RECORD_RESULTS. */
const OUTCOME_CODE: Record<OutcomeKind, number> = { succeeded: 0, failed: 1, retry: 2, release: 3 };

const intArray = (values: number[]): string => `{${values.join(',')}}`;

const LEASE_EXPIRED_ERROR = JSON.stringify({
  code: 'LEASE_EXPIRED',
  message: 'the worker running this item stopped renewing its lease (it stopped or lost the database)',
});

/** The engine's access to PostgreSQL; the SQL itself is in engine.sql.ts. */
@Injectable()
export class EngineStore implements OnApplicationShutdown {
  constructor(
    @Inject(ENGINE_POOL) private readonly pool: Pool,
    @Inject(CLAIM_POOL) private readonly claimPool: Pool,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([this.pool.end(), this.claimPool.end()]);
  }

  /**
   * Claims up to `wanted` items of one job for `workerId`: the job served
   * least recently among those whose actions this worker has (except
   * `avoid`), within the job's concurrency and rate limits.
   */
  async claim(
    workerId: string,
    wanted: number,
    actions: string[],
    leaseMs: number,
    avoid: string[],
  ): Promise<ClaimResult> {
    const client = await this.claimPool.connect();
    let broken: Error | undefined;
    let jobId: string | undefined;
    try {
      const { rows } = await client.query<PickedJob & ClaimedArrays>(CLAIM_NEXT, [
        actions,
        avoid,
        workerId,
        leaseMs,
        wanted,
      ]);
      const job = rows[0];
      if (!job) {
        const { rows: due } = await client.query<{ next_in_ms: number | null }>(NEXT_DUE, [actions, avoid]);
        const next = due[0]?.next_in_ms ?? null;
        return { kind: 'idle', waitMs: next === null ? null : Math.max(0, next) };
      }
      jobId = job.id;
      const claimed = job.limited
        ? await this.claimLimited(client, job, wanted, actions, workerId, leaseMs)
        : job;
      return { kind: 'claimed', job, items: claimed };
    } catch (err) {
      const code = (err as { code?: string }).code;
      // An error without a SQLSTATE is the connection's own: do not reuse it.
      if (!code) broken = err as Error;
      if (!isLockNotAvailable(err)) throw err;
      // The job row stayed locked beyond the claim's lock_timeout: a cancel
      // (or a long sweep) holds it, and the claim, rolled back, no longer
      // holds any item. Leave that job alone for a moment; which one it was
      // is asked again when the failed statement picked it itself.
      jobId ??= (await client.query<{ id: string }>(PICK_NEXT, [actions, avoid])).rows[0]?.id;
      return jobId ? { kind: 'busy', jobId } : { kind: 'idle', waitMs: 0 };
    } finally {
      client.release(broken);
    }
  }

  /** A job with a concurrency or rate limit: its row is locked first, so that the room read is the room claimed. */
  private async claimLimited(
    client: PoolClient,
    job: PickedJob,
    wanted: number,
    actions: string[],
    workerId: string,
    leaseMs: number,
  ): Promise<ClaimedArrays | null> {
    await client.query('BEGIN');
    try {
      const { rows } = await client.query<LimitedJobRow>(LOCK_LIMITED_JOB, [actions, job.id]);
      let claimed: ClaimedArrays | null = null;
      if (rows.length > 0) {
        const plan = planClaim({
          wanted,
          options: job.options,
          runningItems: rows[0].running_items,
          tokens: rows[0].rate_tokens,
          elapsedSeconds: rows[0].rate_elapsed,
        });
        if (plan.count === 0) {
          await client.query(DEFER_RATE_LIMITED, [job.id, plan.tokens, plan.waitMs]);
        } else {
          const res = await client.query<ClaimedArrays>(CLAIM_LIMITED, [
            job.id,
            workerId,
            leaseMs,
            plan.count,
            plan.tokens,
            job.options.rate_limit_per_second ?? null,
          ]);
          claimed = res.rows[0];
        }
      }
      await client.query('COMMIT');
      return claimed;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /**
   * Writes a batch of results. The usual batch (one job, every item final)
   * is one statement. Otherwise it is one transaction of a few statements: every
   * item by one UPDATE (only items still leased to this worker), then the
   * jobs' rows are locked (in id order) and the batch is folded into their
   * counters, finishing jobs that are done. The job rows are locked last and
   * only for two short statements, so that claims of the same job barely
   * wait. A retried or released item of a job that is being cancelled is
   * skipped instead, so that a cancelling job never gets pending items back.
   */
  async record(workerId: string, items: RunningItem[]): Promise<TouchedJob[]> {
    const n = items.length;
    if (n === 0) return [];
    // Integer arrays go as array literals built here: much cheaper than the
    // driver's per-element escaping, and the noop path writes nothing else.
    const jobIndex = new Map<string, number>();
    const jobIds: string[] = [];
    const idx = new Array<number>(n);
    const seqs = new Array<number>(n);
    const outcomes = new Array<number>(n);
    let results: (string | null)[] | null = null;
    let errors: (string | null)[] | null = null;
    let delays: (number | null)[] | null = null;
    let returning = false;
    for (let i = 0; i < n; i++) {
      const item = items[i];
      const jobId = item.job.id;
      let j = jobIndex.get(jobId);
      if (j === undefined) {
        jobIds.push(jobId);
        j = jobIds.length;
        jobIndex.set(jobId, j);
      }
      idx[i] = j;
      seqs[i] = item.seq;
      const outcome = OUTCOME_CODE[item.outcome!];
      outcomes[i] = outcome;
      if (outcome === 0 && item.result !== null)
        (results ??= new Array<string | null>(n).fill(null))[i] = item.result as string;
      if (item.error) (errors ??= new Array<string | null>(n).fill(null))[i] = JSON.stringify(item.error);
      if (outcome === 2) (delays ??= new Array<number | null>(n).fill(null))[i] = item.delayMs;
      if (outcome >= 2) returning = true;
    }
    const params = [
      workerId,
      jobIds,
      intArray(idx),
      intArray(seqs),
      intArray(outcomes),
      results,
      errors,
      delays,
    ];
    if (jobIds.length === 1 && !returning) {
      // The usual batch: one statement, one round trip.
      return (await this.pool.query<TouchedJob>(RECORD_FINAL_RESULTS, params)).rows;
    }
    return this.transaction(async (client) => {
      const { rows: totals } = await client.query<RecordedTotals>(RECORD_RESULTS, params);
      if (totals.length === 0) return [];
      const skipped = new Array<number>(totals.length).fill(0);
      // One job and nothing made pending (the usual batch): APPLY_RESULTS locks the one row itself.
      if (totals.length > 1 || totals.some((t) => t.pending_seqs)) {
        const { rows: locked } = await client.query<{ id: string; status: JobStatus }>(LOCK_JOBS, [
          totals.map((t) => t.job_id),
        ]);
        const statusOf = new Map(locked.map((j) => [j.id, j.status]));
        for (let i = 0; i < totals.length; i++) {
          const t = totals[i];
          const status = statusOf.get(t.job_id);
          if (t.pending_seqs && status !== 'pending' && status !== 'running') {
            const res = await client.query(SKIP_RETURNED, [t.job_id, t.pending_seqs]);
            skipped[i] = res.rowCount ?? 0;
            t.next_at = null;
          }
        }
      }
      const applied = await client.query<TouchedJob>(APPLY_RESULTS, [
        totals.map((t) => t.job_id),
        totals.map((t) => t.n),
        totals.map((t) => t.s),
        totals.map((t) => t.f),
        skipped,
        totals.map((t) => t.next_at),
      ]);
      return applied.rows;
    });
  }

  /**
   * Extends every lease `workerId` holds. Returns the items extended; an item
   * the worker believes it holds and that is missing here was lost (its lease
   * expired and was swept), unless it was being recorded at that moment.
   */
  async extendLeases(workerId: string, leaseMs: number): Promise<Map<string, Set<number>>> {
    const { rows } = await this.pool.query<{ job_id: string; seq: number }>(EXTEND_LEASES, [
      workerId,
      leaseMs,
    ]);
    return groupBySeq(rows);
  }

  /** Which of `items` are still leased to `workerId`. */
  async stillLeased(workerId: string, items: RunningItem[]): Promise<Map<string, Set<number>>> {
    const { rows } = await this.pool.query<{ job_id: string; seq: number }>(STILL_LEASED, [
      workerId,
      items.map((i) => i.job.id),
      items.map((i) => i.seq),
    ]);
    return groupBySeq(rows);
  }

  /**
   * Returns items whose lease expired (their worker died or lost the
   * database) to pending, job by job, each in a short transaction.
   * Returns what it did to each job.
   */
  async sweepExpiredLeases(): Promise<SweptJob[]> {
    const { rows: jobs } = await this.pool.query<{ job_id: string }>(JOBS_WITH_EXPIRED_LEASES);
    const swept: SweptJob[] = [];
    for (const { job_id: jobId } of jobs) {
      const done = await this.transaction(async (client): Promise<SweptJob | undefined> => {
        const { rows } = await client.query<{ status: JobStatus; options: JobOptions }>(LOCK_JOB, [jobId]);
        if (rows.length === 0) return undefined;
        const cancelling = rows[0].status !== 'pending' && rows[0].status !== 'running';
        const { rows: totals } = await client.query<{
          n: number;
          f: number;
          k: number;
          next_at: Date | null;
        }>(RETURN_EXPIRED, [jobId, cancelling, maxAttemptsOf(rows[0].options), LEASE_EXPIRED_ERROR]);
        const t = totals[0];
        if (t.n === 0) return undefined;
        const applied = await client.query<TouchedJob>(APPLY_RESULTS, [
          [jobId],
          [t.n],
          [0],
          [t.f],
          [t.k],
          [t.next_at],
        ]);
        return { id: jobId, status: applied.rows[0]?.status ?? rows[0].status, returned: t.n };
      });
      if (done) swept.push(done);
    }
    return swept;
  }

  private async transaction<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: Error) => {
        broken = rollbackErr;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }
}

function groupBySeq(rows: { job_id: string; seq: number }[]): Map<string, Set<number>> {
  const byJob = new Map<string, Set<number>>();
  for (const r of rows) {
    let seqs = byJob.get(r.job_id);
    if (!seqs) byJob.set(r.job_id, (seqs = new Set()));
    seqs.add(r.seq);
  }
  return byJob;
}
