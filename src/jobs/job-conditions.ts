import { sqlLiterals } from '../database/sql';
import {
  ACTIVE_JOB_STATUSES,
  CANCELLABLE_JOB_STATUSES,
  CLAIMABLE_JOB_STATUSES,
  PAUSABLE_JOB_STATUSES,
  TERMINAL_JOB_STATUSES,
} from './job-status';

/*
 * Conditions on a bulk_jobs row, in SQL, written once from the status
 * constants. The partial indexes (bulk-job.entity.ts) are declared with
 * the same text as the statements that must use them, so that PostgreSQL
 * sees the index predicate in the query.
 */

/** Not finished: what BULK_JOBS_MAX_ACTIVE_PER_OWNER counts. */
export const ACTIVE = `status IN (${sqlLiterals(ACTIVE_JOB_STATUSES)}) AND deleted_at IS NULL`;

/** What a client may delete: a finished job not deleted yet. */
export const DELETABLE = `status IN (${sqlLiterals(TERMINAL_JOB_STATUSES)}) AND deleted_at IS NULL`;

/** What a client may cancel: a pending, running or paused job not deleted. */
export const CANCELLABLE = `status IN (${sqlLiterals(CANCELLABLE_JOB_STATUSES)}) AND deleted_at IS NULL`;

/** What a client may pause: a pending or running job not deleted. */
export const PAUSABLE = `status IN (${sqlLiterals(PAUSABLE_JOB_STATUSES)}) AND deleted_at IS NULL`;

/** What a client may resume: a paused job (never deleted: only finished jobs are). */
export const RESUMABLE = `status = 'paused' AND deleted_at IS NULL`;

/** Clients see a job, deleted or not, until its purge time; a purged row is gone for them even before the purge removes it. */
export const VISIBLE = `(purge_at IS NULL OR purge_at > now())`;

/** Deleted and still retained: what a restore may bring back. */
export const RESTORABLE = `deleted_at IS NOT NULL AND purge_at > now()`;

/** A job whose items workers claim (its unclaimed items are the queue). */
export const CLAIMABLE = `status IN (${sqlLiterals(CLAIMABLE_JOB_STATUSES)})`;

/** Cancelled, with items the engine has still to skip or settle (a cancel sweep's work). */
export const CANCELLING = `status = 'cancelling'`;

/** Finished and not deleted: what BULK_JOBS_FINISHED_RETENTION_DAYS expires, by finished_at. */
export const FINISHED = DELETABLE;
