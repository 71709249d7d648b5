import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';
import type { JobOptions } from '../jobs/job-types';
import { isLockNotAvailable } from '../database/database-errors';
import { behindTransactionPooler } from '../database/pooler';
import { inTransaction, transaction } from '../database/sql';
import { takesReturnedItems, type JobStatus } from '../jobs/job-status';
import { maxAttemptsOf, planClaim } from './claim-plan';
import { BEGIN_ENGINE, BEGIN_WITH_CLAIM_LOCK_TIMEOUT, CLAIM_POOL, ENGINE_POOL } from './engine-pool';
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
  CANCEL_SWEEP,
  RECORD_FINAL_RANGE,
  RECORD_FINAL_RESULTS,
  RECORD_RESULTS,
  RETURN_EXPIRED,
  SKIP_RETURNED,
  STILL_LEASED,
  type RecordParams,
} from './engine.sql';
import type { ClaimedJob, OutcomeKind, RunningItem } from './types';

export interface PickedJob {
  id: string;
  action: string;
  /** The job's status when it was picked: `pending` until its first claim commits. */
  status: JobStatus;
  params: Record<string, unknown>;
  options: JobOptions;
  /** Has a concurrency or rate limit. */
  limited: boolean;
  /** The job's last claim before this one was another worker's: this worker is not alone on it. */
  shared: boolean;
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

/** What one batch of the cancel sweep did to its job. */
export interface CancelSwept extends TouchedJob {
  /** Pending items it skipped. */
  skipped: number;
  /** The highest seq it skipped (null: none). */
  last: number | null;
}

export type ClaimResult =
  /** Items claimed from one job (possibly none: try again at once). */
  | {
      kind: 'claimed';
      job: PickedJob;
      items: ClaimedArrays | null;
      /** Where the range this claim reserved for the worker's next one begins (null: none; see ClaimFrom). */
      reservedFrom: number | null;
    }
  /** The job's row was held too long (a cancel in progress): claim from other jobs for a moment. */
  | { kind: 'busy'; jobId: string }
  /** Nothing to claim; the next job is due in waitMs at the earliest (null: none is waiting for time). */
  | { kind: 'idle'; waitMs: number | null };

/** Where a claim of one job starts (see ClaimFrom in engine.sql.ts). */
export interface ClaimStart {
  jobId: string;
  seq: number;
  /** seq begins a range that an earlier claim reserved for this worker. */
  reserved?: boolean;
}

/** An array literal (`{a,b}`) of integers or outcome names, which need no quoting. */
const arrayLiteral = (values: (number | OutcomeKind)[]): string => `{${values.join(',')}}`;

/**
 * The keys of `items` as the engine's statements take them: each job once
 * (:jobIds), and per item the job's 1-based index in it and the seq, as
 * array literals (:jobIndexes, :seqs).
 */
function itemKeys(items: RunningItem[]): { jobIds: string[]; jobIndexes: string; seqs: string } {
  const jobIndex = new Map<string, number>();
  const jobIds: string[] = [];
  const idx = new Array<number>(items.length);
  const seqs = new Array<number>(items.length);
  // A batch is usually one job's items: the map is asked only when the job changes.
  let lastJob: ClaimedJob | undefined;
  let j = 0;
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (item.job !== lastJob) {
      lastJob = item.job;
      const jobId = lastJob.id;
      const known = jobIndex.get(jobId);
      if (known === undefined) {
        j = jobIds.push(jobId);
        jobIndex.set(jobId, j);
      } else {
        j = known;
      }
    }
    idx[i] = j;
    seqs[i] = item.seq;
  }
  return { jobIds, jobIndexes: arrayLiteral(idx), seqs: arrayLiteral(seqs) };
}

/**
 * A one-job batch whose seqs span at most this many times its size is
 * written by its seq range (RECORD_FINAL_RANGE): a claim takes a job's
 * pending items in seq order, so a batch is one or a few claims' worth of
 * neighbouring seqs, interleaved with other workers' claims at most. A wider
 * batch (a retry of an early item among late ones) is looked up by key.
 */
const RANGE_SPREAD = 16;

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
  ) {
    this.claimLockBegin = behindTransactionPooler(claimPool) ? BEGIN_WITH_CLAIM_LOCK_TIMEOUT : undefined;
  }

  /**
   * Behind a pooler in transaction mode the claim connection has no
   * lock_timeout of its own (createEnginePool): each claim that locks then
   * runs in a transaction that sets it (two more round trips per claim).
   */
  private readonly claimLockBegin: string | undefined;

  private withClaimLockTimeout<T>(client: PoolClient, fn: () => Promise<T>): Promise<T> {
    return this.claimLockBegin ? inTransaction(client, fn, undefined, this.claimLockBegin) : fn();
  }

  private inClaimTransaction<T>(client: PoolClient, fn: (tx: PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(client, fn, undefined, this.claimLockBegin ?? BEGIN_ENGINE);
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([this.pool.end(), this.claimPool.end()]);
  }

  /**
   * Claims up to `wanted` items of one job for `workerId`: the job served
   * least recently among those whose actions this worker has (except
   * `avoid`), within the job's concurrency and rate limits. When that job is
   * `from.jobId`, its pending items are looked for from seq `from.seq` on;
   * with `reserve`, a full claim of an unlimited job reserves the next range
   * for this worker (ClaimFrom in engine.sql.ts).
   */
  async claim(
    workerId: string,
    wanted: number,
    actions: string[],
    leaseMs: number,
    avoid: string[],
    from: ClaimStart | null = null,
    reserve = false,
  ): Promise<ClaimResult> {
    const client = await this.claimPool.connect();
    let broken: Error | undefined;
    // A connection that breaks while it is checked out but between statements (the
    // server ended it) reports it as an 'error' event, which must not crash the worker.
    const lost = (err: Error) => {
      broken ??= err;
    };
    client.on('error', lost);
    let jobId: string | undefined;
    try {
      const [job] = await this.withClaimLockTimeout(client, () =>
        CLAIM_NEXT.rows<PickedJob & ClaimedArrays & { reserved_from: number | null }>(client, {
          actions,
          avoid,
          worker: workerId,
          leaseMs,
          count: wanted,
          fromJob: from?.jobId ?? null,
          fromSeq: from?.seq ?? 0,
          fromReserved: from?.reserved ?? false,
          reserve,
        }),
      );
      if (!job) {
        const [due] = await NEXT_DUE.rows<{ next_in_ms: number | null }>(client, { actions, avoid });
        const next = due?.next_in_ms ?? null;
        return { kind: 'idle', waitMs: next === null ? null : Math.max(0, next) };
      }
      jobId = job.id;
      if (!job.limited) return { kind: 'claimed', job, items: job, reservedFrom: job.reserved_from };
      const claimed = await this.inTurn(job.id, () =>
        this.claimLimited(client, job, wanted, actions, workerId, leaseMs),
      );
      return { kind: 'claimed', job, items: claimed, reservedFrom: null };
    } catch (err) {
      const code = (err as { code?: string }).code;
      // An error without a SQLSTATE is the connection's own: do not reuse it.
      if (!code) broken = err as Error;
      if (!isLockNotAvailable(err)) throw err;
      // The job row stayed locked beyond the claim's lock_timeout: a cancel
      // (or a long sweep) holds it, and the claim, rolled back, no longer
      // holds any item. Leave that job alone for a moment; which one it was
      // is asked again when the failed statement picked it itself.
      jobId ??= (
        await PICK_NEXT.rows<{ id: string }>(client, {
          actions,
          avoid,
        })
      )[0]?.id;
      return jobId ? { kind: 'busy', jobId } : { kind: 'idle', waitMs: 0 };
    } finally {
      if (!broken) client.removeListener('error', lost);
      client.release(broken);
    }
  }

  /**
   * Runs fn after the worker's other claims of the same limited job. Each locks
   * the job's row; waiting for the row's lock instead could outlast the claim's
   * lock_timeout and have the worker leave its own job alone for a while.
   */
  private async inTurn<T>(jobId: string, fn: () => Promise<T>): Promise<T> {
    const before = this.limitedClaims.get(jobId);
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    this.limitedClaims.set(jobId, mine);
    try {
      await before;
      return await fn();
    } finally {
      done();
      if (this.limitedClaims.get(jobId) === mine) this.limitedClaims.delete(jobId);
    }
  }

  /** The last of this worker's claims of a limited job in flight, by job id (inTurn). */
  private readonly limitedClaims = new Map<string, Promise<void>>();

  /** A job with a concurrency or rate limit: its row is locked first, so that the room read is the room claimed. */
  private async claimLimited(
    client: PoolClient,
    job: PickedJob,
    wanted: number,
    actions: string[],
    workerId: string,
    leaseMs: number,
  ): Promise<ClaimedArrays | null> {
    return this.inClaimTransaction(client, async () => {
      const [room] = await LOCK_LIMITED_JOB.rows<LimitedJobRow>(client, { actions, jobId: job.id });
      if (!room) return null;
      const plan = planClaim({
        wanted,
        options: job.options,
        runningItems: room.running_items,
        tokens: room.rate_tokens,
        elapsedSeconds: room.rate_elapsed,
      });
      if (plan.count === 0) {
        await DEFER_RATE_LIMITED.query(client, { jobId: job.id, tokens: plan.tokens, waitMs: plan.waitMs });
        return null;
      }
      const [claimed] = await CLAIM_LIMITED.rows<ClaimedArrays>(client, {
        jobId: job.id,
        worker: workerId,
        leaseMs,
        count: plan.count,
        tokens: plan.tokens,
        rate: job.options.rate_limit_per_second ?? null,
        fromJob: null,
        fromSeq: 0,
        fromReserved: false,
        reserve: false,
      });
      return claimed;
    });
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
    // Integer and outcome arrays go as array literals built here (itemKeys): much cheaper
    // than the driver's per-element escaping, and the noop path writes nothing else.
    const outcomes = new Array<OutcomeKind>(n);
    let results: (string | null)[] | null = null;
    let errors: (string | null)[] | null = null;
    let delays: (number | null)[] | null = null;
    let returning = false;
    let allSucceeded = true;
    for (let i = 0; i < n; i++) {
      const item = items[i];
      const outcome = item.outcome!;
      outcomes[i] = outcome;
      if (outcome !== 'succeeded') allSucceeded = false;
      if (outcome === 'succeeded' && item.result !== null)
        (results ??= new Array<string | null>(n).fill(null))[i] = item.result as string;
      if (item.error) (errors ??= new Array<string | null>(n).fill(null))[i] = JSON.stringify(item.error);
      if (outcome === 'retry') (delays ??= new Array<number | null>(n).fill(null))[i] = item.delayMs;
      // Back to pending: not for RECORD_FINAL_RESULTS, which takes final outcomes only.
      if (outcome === 'retry' || outcome === 'release') returning = true;
    }
    const keys = itemKeys(items);
    if (keys.jobIds.length === 1 && !returning) {
      // The usual batch: one statement, one round trip.
      let lo = items[0].seq;
      let hi = lo;
      for (let i = 1; i < n; i++) {
        const seq = items[i].seq;
        if (seq < lo) lo = seq;
        else if (seq > hi) hi = seq;
      }
      if (hi - lo < RANGE_SPREAD * n) {
        return RECORD_FINAL_RANGE.rows<TouchedJob>(this.pool, {
          worker: workerId,
          jobId: keys.jobIds[0],
          lo,
          hi,
          seqs: keys.seqs,
          // Every item succeeded (the usual batch): no outcome array to build, send or parse.
          outcomes: allSucceeded ? null : arrayLiteral(outcomes),
          results,
          errors,
        });
      }
    }
    const params: RecordParams = {
      worker: workerId,
      ...keys,
      outcomes: arrayLiteral(outcomes),
      results,
      errors,
      delays,
    };
    if (params.jobIds.length === 1 && !returning) {
      return RECORD_FINAL_RESULTS.rows<TouchedJob>(this.pool, params);
    }
    return transaction(
      this.pool,
      async (client) => {
        const totals = await RECORD_RESULTS.rows<RecordedTotals>(client, params);
        if (totals.length === 0) return [];
        const skipped = new Array<number>(totals.length).fill(0);
        // One job and nothing made pending (the usual batch): APPLY_RESULTS locks the one row itself.
        if (totals.length > 1 || totals.some((t) => t.pending_seqs)) {
          const locked = await LOCK_JOBS.rows<{ id: string; status: JobStatus }>(client, {
            jobIds: totals.map((t) => t.job_id),
          });
          const statusOf = new Map(locked.map((j) => [j.id, j.status]));
          for (let i = 0; i < totals.length; i++) {
            const t = totals[i];
            const status = statusOf.get(t.job_id);
            if (t.pending_seqs && !(status && takesReturnedItems(status))) {
              const res = await SKIP_RETURNED.query(client, { jobId: t.job_id, seqs: t.pending_seqs });
              skipped[i] = res.rowCount ?? 0;
              t.next_at = null;
            }
          }
        }
        return APPLY_RESULTS.rows<TouchedJob>(client, {
          jobIds: totals.map((t) => t.job_id),
          left: totals.map((t) => t.n),
          succeeded: totals.map((t) => t.s),
          failed: totals.map((t) => t.f),
          skipped,
          nextAt: totals.map((t) => t.next_at),
        });
      },
      BEGIN_ENGINE,
    );
  }

  /**
   * Extends the leases of `items`, which `workerId` holds. Returns the items
   * extended; one that is missing here was lost (its lease expired and was
   * swept), unless it was being recorded at that moment.
   */
  async extendLeases(
    workerId: string,
    leaseMs: number,
    items: RunningItem[],
  ): Promise<Map<string, Set<number>>> {
    return groupBySeq(
      await EXTEND_LEASES.rows<{ job_id: string; seq: number }>(this.pool, {
        worker: workerId,
        leaseMs,
        ...itemKeys(items),
      }),
    );
  }

  /** Which of `items` are still leased to `workerId`. */
  async stillLeased(workerId: string, items: RunningItem[]): Promise<Map<string, Set<number>>> {
    return groupBySeq(
      await STILL_LEASED.rows<{ job_id: string; seq: number }>(this.pool, {
        worker: workerId,
        jobIds: items.map((i) => i.job.id),
        seqs: items.map((i) => i.seq),
      }),
    );
  }

  /**
   * One batch of the cancel sweep (CANCEL_SWEEP): up to `batch` pending items
   * of one cancelling job skipped, the job cancelled once nothing is left.
   * Undefined when no cancelling job has anything left to do.
   */
  async sweepCancelled(
    batch: number,
    avoid: string[],
    cursors: ReadonlyMap<string, number>,
  ): Promise<CancelSwept | undefined> {
    return (
      await CANCEL_SWEEP.rows<CancelSwept>(this.pool, {
        batch,
        avoid,
        cursorJobs: [...cursors.keys()],
        cursorSeqs: [...cursors.values()],
      })
    )[0];
  }

  /**
   * Returns items whose lease expired (their worker died or lost the
   * database) to pending, job by job, each in a short transaction.
   * Returns what it did to each job.
   */
  async sweepExpiredLeases(): Promise<SweptJob[]> {
    const jobs = await JOBS_WITH_EXPIRED_LEASES.rows<{ job_id: string }>(this.pool, {});
    const swept: SweptJob[] = [];
    for (const { job_id: jobId } of jobs) {
      const done = await transaction(
        this.pool,
        async (client): Promise<SweptJob | undefined> => {
          const [job] = await LOCK_JOB.rows<{ status: JobStatus; options: JobOptions }>(client, { jobId });
          if (!job) return undefined;
          const cancelling = !takesReturnedItems(job.status);
          const [t] = await RETURN_EXPIRED.rows<{ n: number; f: number; k: number; next_at: Date | null }>(
            client,
            {
              jobId,
              cancelling,
              maxAttempts: maxAttemptsOf(job.options),
              error: LEASE_EXPIRED_ERROR,
            },
          );
          if (t.n === 0) return undefined;
          const [applied] = await APPLY_RESULTS.rows<TouchedJob>(client, {
            jobIds: [jobId],
            left: [t.n],
            succeeded: [0],
            failed: [t.f],
            skipped: [t.k],
            nextAt: [t.next_at],
          });
          return { id: jobId, status: applied?.status ?? job.status, returned: t.n };
        },
        BEGIN_ENGINE,
      );
      if (done) swept.push(done);
    }
    return swept;
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
