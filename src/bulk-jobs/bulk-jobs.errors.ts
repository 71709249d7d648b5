import { DomainError } from '../common/problem-details/domain-error';
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
    super(`Bulk action job ${jobId} is ${jobStatus}; only pending or running jobs can be cancelled.`);
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
      `You already have ${maxActiveJobs} pending, running or cancelling jobs, the most allowed at once. ` +
        'Wait for one to finish, or cancel one, and try again.',
    );
    this.extensions.max_active_jobs = maxActiveJobs;
  }
}
