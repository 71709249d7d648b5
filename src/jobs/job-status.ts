/** Lifecycle of a job. See README "Status and transitions". */
export const JOB_STATUSES = [
  'pending',
  'running',
  'paused',
  'cancelling',
  'completed',
  'failed',
  'cancelled',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Terminal jobs never change status again; only they may be deleted. */
export const TERMINAL_JOB_STATUSES = [
  'completed',
  'failed',
  'cancelled',
] as const satisfies readonly JobStatus[];
export type TerminalJobStatus = (typeof TERMINAL_JOB_STATUSES)[number];

/** Not finished: they count against BULK_JOBS_MAX_ACTIVE_PER_OWNER. */
export const ACTIVE_JOB_STATUSES = [
  'pending',
  'running',
  'paused',
  'cancelling',
] as const satisfies readonly JobStatus[];

/** Workers claim items of jobs in these statuses. */
export const CLAIMABLE_JOB_STATUSES = ['pending', 'running'] as const satisfies readonly JobStatus[];

/** A client may cancel these; cancelling a `cancelling` job is a no-op. */
export const CANCELLABLE_JOB_STATUSES = [
  'pending',
  'running',
  'paused',
] as const satisfies readonly JobStatus[];

/** A client may pause these (workers then claim nothing more from them); pausing a `paused` job is a no-op. */
export const PAUSABLE_JOB_STATUSES = ['pending', 'running'] as const satisfies readonly JobStatus[];

/**
 * Jobs whose items a worker may give back as pending (a retry, a released or
 * expired lease). In any other unfinished status (cancelling) they are skipped.
 */
export const RETURNABLE_JOB_STATUSES = [
  'pending',
  'running',
  'paused',
] as const satisfies readonly JobStatus[];

export const ITEM_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'skipped'] as const;
export type ItemStatus = (typeof ITEM_STATUSES)[number];

export function isTerminal(status: JobStatus): status is TerminalJobStatus {
  return (TERMINAL_JOB_STATUSES as readonly JobStatus[]).includes(status);
}

export function isDeletable(status: JobStatus): status is TerminalJobStatus {
  return isTerminal(status);
}

export function isCancellable(status: JobStatus): boolean {
  return (CANCELLABLE_JOB_STATUSES as readonly JobStatus[]).includes(status);
}

export function isPausable(status: JobStatus): boolean {
  return (PAUSABLE_JOB_STATUSES as readonly JobStatus[]).includes(status);
}

/** True when items of a job in this status go back to pending rather than being skipped. */
export function takesReturnedItems(status: JobStatus): boolean {
  return (RETURNABLE_JOB_STATUSES as readonly JobStatus[]).includes(status);
}

export function isJobStatus(value: string): value is JobStatus {
  return (JOB_STATUSES as readonly string[]).includes(value);
}

export function isItemStatus(value: string): value is ItemStatus {
  return (ITEM_STATUSES as readonly string[]).includes(value);
}
