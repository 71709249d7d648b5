import { Logger } from '@nestjs/common';
import { isTerminal, type JobStatus } from '../jobs/job-status';
import { isDatabaseUnavailable, loggableMessage } from '../database/database-errors';
import type { Metrics } from '../metrics/metrics';
import type { OutcomeKind, RunningItem } from './types';

/** A job whose counters a write or a sweep changed, with its status after it. */
export interface TouchedJob {
  id: string;
  status: JobStatus;
}

/** What a sweep did to one job. */
export interface SweptJob extends TouchedJob {
  /** Items whose expired lease the sweep took back. */
  returned: number;
}

/** What a recorded item outcome counts as in bulk_jobs_items_processed_total. */
const OUTCOME_LABEL: Record<OutcomeKind, string | undefined> = {
  succeeded: 'succeeded',
  failed: 'failed',
  retry: 'retried',
  // Given back unfinished on shutdown: no attempt was used, nothing to count.
  release: undefined,
};

/**
 * The engine's log lines for what happens to jobs (started, finished, leases
 * reclaimed), each with the job id as a field, and its metrics.
 */
export class EngineEvents {
  private readonly logger = new Logger('Engine');

  constructor(
    readonly workerId: string,
    readonly metrics: Metrics,
  ) {}

  /**
   * Counts a recorded batch, one increment per run of items of the same
   * action and outcome rather than per item (a batch is usually one job's
   * items, most of them with the same outcome).
   */
  recorded(items: readonly RunningItem[]): void {
    let action: string | undefined;
    let outcome: string | undefined;
    let n = 0;
    for (const item of items) {
      const label = item.outcome ? OUTCOME_LABEL[item.outcome] : undefined;
      if (!label) continue;
      const itemAction = item.job.action;
      if (label === outcome && itemAction === action) {
        n++;
        continue;
      }
      if (n > 0) this.metrics.itemsProcessed.inc({ action: action!, outcome: outcome! }, n);
      action = itemAction;
      outcome = label;
      n = 1;
    }
    if (n > 0) this.metrics.itemsProcessed.inc({ action: action!, outcome: outcome! }, n);
  }

  /** This worker's claim moved the job from pending to running. */
  started(jobId: string, action: string, items: number): void {
    this.logger.log({ msg: `job ${jobId} started`, jobId, action, claimed: items, worker: this.workerId });
  }

  /** Jobs a write or a sweep of this worker finished (those of `jobs` now in a terminal status). */
  finished(jobs: readonly TouchedJob[]): void {
    for (const job of jobs) {
      if (isTerminal(job.status)) {
        this.logger.log({
          msg: `job ${job.id} ${job.status}`,
          jobId: job.id,
          status: job.status,
          worker: this.workerId,
        });
      }
    }
  }

  /** A sweep took back items whose lease had expired. */
  reclaimed(swept: readonly SweptJob[]): void {
    let total = 0;
    for (const job of swept) {
      total += job.returned;
      this.logger.warn({
        msg: `job ${job.id}: took back ${job.returned} item(s) whose lease expired`,
        jobId: job.id,
        items: job.returned,
        worker: this.workerId,
      });
    }
    if (total > 0) this.metrics.leaseReclaims.inc(total);
    this.finished(swept);
  }
}

/**
 * Logs a loop's database failures without a line per retry: the first
 * failure of an outage is a warning, the next ones are debug lines, and the
 * first success after them says how long it lasted. Errors that are not a
 * lost database are logged every time.
 */
export class FailureLog {
  private failingSince: number | undefined;
  private failures = 0;

  constructor(
    private readonly logger: Logger,
    private readonly what: string,
  ) {}

  /** How many attempts in a row have failed. */
  get consecutive(): number {
    return this.failures;
  }

  failed(err: unknown, retryMs: number): void {
    const message = loggableMessage(err);
    this.failures++;
    if (!isDatabaseUnavailable(err)) {
      this.logger.error(`${this.what} failed: ${message}`);
    } else if (this.failingSince === undefined) {
      this.failingSince = Date.now();
      this.logger.warn(
        `${this.what} failed, the database is unreachable (${message}); retrying every ${retryMs} ms or less`,
      );
    } else {
      this.logger.debug(`${this.what} failed again: ${message}`);
    }
  }

  succeeded(): void {
    if (this.failures === 0) return;
    if (this.failingSince !== undefined) {
      this.logger.log(
        `${this.what} works again after ${Date.now() - this.failingSince} ms (${this.failures} failed attempt(s))`,
      );
    }
    this.failures = 0;
    this.failingSince = undefined;
  }
}
