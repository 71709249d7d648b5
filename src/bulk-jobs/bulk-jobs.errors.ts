import { DomainError } from '../common/problem-details/domain-error';
import type { ConcurrencyScope } from '../limits/concurrency-limiter';
import type { JobStatus } from '../jobs/job-status';

/** Unknown id, another owner's job, or (for DELETE) an already deleted one. */
export class BulkJobNotFoundError extends DomainError {
  readonly code = 'JOB_NOT_FOUND';
  constructor(readonly jobId: string) {
    super(`Bulk action job ${jobId} was not found.`);
  }
}

export class BulkJobNotDeletableError extends DomainError {
  readonly code = 'JOB_NOT_DELETABLE';
  constructor(
    readonly jobId: string,
    readonly jobStatus: JobStatus,
  ) {
    super(
      `Bulk action job ${jobId} is ${jobStatus}; only completed, failed or cancelled jobs can be deleted.`,
    );
    this.extensions.job_status = jobStatus;
  }
}

export class BulkJobNotCancellableError extends DomainError {
  readonly code = 'JOB_NOT_CANCELLABLE';
  constructor(
    readonly jobId: string,
    readonly jobStatus: JobStatus,
  ) {
    super(`Bulk action job ${jobId} is ${jobStatus}; only pending, running or paused jobs can be cancelled.`);
    this.extensions.job_status = jobStatus;
  }
}

/** Only a finished job's items stay as they are: a retry of a job still running would race its workers. */
export class BulkJobNotRetryableError extends DomainError {
  readonly code = 'JOB_NOT_RETRYABLE';
  constructor(
    readonly jobId: string,
    readonly jobStatus: JobStatus,
  ) {
    super(
      `Bulk action job ${jobId} is ${jobStatus}; only completed, failed or cancelled jobs can be retried.`,
    );
    this.extensions.job_status = jobStatus;
  }
}

export class NothingToRetryError extends DomainError {
  readonly code = 'NOTHING_TO_RETRY';
  constructor(
    readonly jobId: string,
    readonly jobStatus: JobStatus,
    includeSkipped: boolean,
  ) {
    super(
      `Bulk action job ${jobId} has no failed${includeSkipped ? ' or skipped' : ''} items, so there is nothing to retry.` +
        (includeSkipped ? '' : ' Send {"include_skipped": true} to retry its skipped items too.'),
    );
    this.extensions.job_status = jobStatus;
  }
}

export class BulkJobNotPausableError extends DomainError {
  readonly code = 'JOB_NOT_PAUSABLE';
  constructor(
    readonly jobId: string,
    readonly jobStatus: JobStatus,
  ) {
    super(`Bulk action job ${jobId} is ${jobStatus}; only pending or running jobs can be paused.`);
    this.extensions.job_status = jobStatus;
  }
}

export class BulkJobNotResumableError extends DomainError {
  readonly code = 'JOB_NOT_RESUMABLE';
  constructor(
    readonly jobId: string,
    readonly jobStatus: JobStatus,
  ) {
    super(`Bulk action job ${jobId} is ${jobStatus}; only paused jobs can be resumed.`);
    this.extensions.job_status = jobStatus;
  }
}

export class BulkJobNotDeletedError extends DomainError {
  readonly code = 'JOB_NOT_DELETED';
  constructor(readonly jobId: string) {
    super(`Bulk action job ${jobId} is not deleted, so there is nothing to restore.`);
  }
}

export class IdempotencyKeyReusedError extends DomainError {
  readonly code = 'IDEMPOTENCY_KEY_REUSED';
  constructor() {
    super('This Idempotency-Key was already used with a different request body.');
  }
}

/** The owner already has BULK_JOBS_MAX_ACTIVE_PER_OWNER jobs that are not finished. */
export class TooManyActiveJobsError extends DomainError {
  readonly code = 'TOO_MANY_ACTIVE_JOBS';
  constructor(readonly maxActiveJobs: number) {
    super(
      `You already have ${maxActiveJobs} pending, running, paused or cancelling jobs, the most allowed at once. ` +
        'Wait for one to finish, or cancel one, and try again.',
    );
    this.extensions.max_active_jobs = maxActiveJobs;
  }
}

/** How long a client refused for a concurrency cap should wait: a slot frees when another request ends. */
export const CONCURRENCY_RETRY_AFTER_SECONDS = 5;

/**
 * The owner, or this server, already holds its cap of something in progress
 * (`what`: "streamed creates in progress", which the server `takes` or
 * `serves`); `extension` names the cap in the problem, beside `per`.
 */
abstract class ConcurrencyCapError extends DomainError {
  readonly retryAfterSeconds = CONCURRENCY_RETRY_AFTER_SECONDS;
  constructor(
    readonly limit: number,
    readonly per: ConcurrencyScope,
    what: string,
    serverVerb: 'takes' | 'serves',
    ownerAdvice: string,
    extension: string,
  ) {
    super(
      per === 'owner'
        ? `You already have ${limit} ${what}, the most allowed at once. ${ownerAdvice}`
        : `This server already has ${limit} ${what}, the most it ${serverVerb} at once. ` +
            `Retry in ${CONCURRENCY_RETRY_AFTER_SECONDS} seconds.`,
    );
    this.extensions[extension] = limit;
    this.extensions.per = per;
  }
}

/** The owner, or this server, already has its cap of streamed creates in progress. */
export class TooManyUploadsError extends ConcurrencyCapError {
  readonly code = 'TOO_MANY_UPLOADS';
  constructor(maxUploads: number, per: ConcurrencyScope) {
    super(
      maxUploads,
      per,
      'streamed creates in progress',
      'takes',
      'Retry once one has finished.',
      'max_uploads',
    );
  }
}

/** The owner, or this server, already has its cap of open event streams. */
export class TooManyStreamsError extends ConcurrencyCapError {
  readonly code = 'TOO_MANY_STREAMS';
  constructor(maxStreams: number, per: ConcurrencyScope) {
    super(maxStreams, per, 'event streams open', 'serves', 'Close one and retry.', 'max_streams');
  }
}

/** The owner, or this server, already has its cap of results exports in progress. */
export class TooManyExportsError extends ConcurrencyCapError {
  readonly code = 'TOO_MANY_EXPORTS';
  constructor(maxExports: number, per: ConcurrencyScope) {
    super(
      maxExports,
      per,
      'results exports in progress',
      'serves',
      'Retry once one has finished.',
      'max_exports',
    );
  }
}
