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

/** The owner, or this server, already has its cap of streamed creates in progress. */
export class TooManyUploadsError extends DomainError {
  readonly code = 'TOO_MANY_UPLOADS';
  readonly retryAfterSeconds = CONCURRENCY_RETRY_AFTER_SECONDS;
  constructor(
    readonly maxUploads: number,
    readonly per: ConcurrencyScope,
  ) {
    super(
      per === 'owner'
        ? `You already have ${maxUploads} streamed creates in progress, the most allowed at once. ` +
            'Retry once one has finished.'
        : `This server already has ${maxUploads} streamed creates in progress, the most it takes at once. ` +
            `Retry in ${CONCURRENCY_RETRY_AFTER_SECONDS} seconds.`,
    );
    this.extensions.max_uploads = maxUploads;
    this.extensions.per = per;
  }
}

/** The owner, or this server, already has its cap of open event streams. */
export class TooManyStreamsError extends DomainError {
  readonly code = 'TOO_MANY_STREAMS';
  readonly retryAfterSeconds = CONCURRENCY_RETRY_AFTER_SECONDS;
  constructor(
    readonly maxStreams: number,
    readonly per: ConcurrencyScope,
  ) {
    super(
      per === 'owner'
        ? `You already have ${maxStreams} event streams open, the most allowed at once. Close one and retry.`
        : `This server already has ${maxStreams} event streams open, the most it serves at once. ` +
            `Retry in ${CONCURRENCY_RETRY_AFTER_SECONDS} seconds.`,
    );
    this.extensions.max_streams = maxStreams;
    this.extensions.per = per;
  }
}

/** The owner, or this server, already has its cap of results exports in progress. */
export class TooManyExportsError extends DomainError {
  readonly code = 'TOO_MANY_EXPORTS';
  readonly retryAfterSeconds = CONCURRENCY_RETRY_AFTER_SECONDS;
  constructor(
    readonly maxExports: number,
    readonly per: ConcurrencyScope,
  ) {
    super(
      per === 'owner'
        ? `You already have ${maxExports} results exports in progress, the most allowed at once. ` +
            'Retry once one has finished.'
        : `This server already has ${maxExports} results exports in progress, the most it serves at once. ` +
            `Retry in ${CONCURRENCY_RETRY_AFTER_SECONDS} seconds.`,
    );
    this.extensions.max_exports = maxExports;
    this.extensions.per = per;
  }
}
