import { redactParams } from '../actions/credential-headers';
import type { BulkJobItem } from '../jobs/bulk-job-item.entity';
import type { BulkJob } from '../jobs/bulk-job.entity';
import { isTerminal } from '../jobs/job-status';
import type {
  BulkJobItemResponseDto,
  BulkJobResponseDto,
  NotificationResponseDto,
} from './dto/bulk-job-response.dto';

/**
 * What the API reads of a job: the entity's columns but the workers'
 * scheduling state. The repository reads rows straight into this shape
 * (its select lists come from the entity's metadata); the mapper turns it
 * into the response.
 */
export const JOB_VIEW = [
  'id',
  'owner',
  'action',
  'params',
  'options',
  'status',
  'totalItems',
  'succeededItems',
  'failedItems',
  'skippedItems',
  'error',
  'createdAt',
  'startedAt',
  'finishedAt',
  'updatedAt',
  'deletedAt',
  'purgeAt',
  'retryOf',
  'labels',
] as const satisfies readonly (keyof BulkJob)[];
export type JobView = Pick<BulkJob, (typeof JOB_VIEW)[number]> & {
  /** The latest webhook event of a job that asked for one (options.notify), if it has one yet. */
  notification?: NotificationView | null;
};

/** What the API reads of a job's webhook event. */
export interface NotificationView {
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  lastError: string | null;
  deliveredAt: Date | null;
}

/** What the API reads of an item. */
export const ITEM_VIEW = [
  'seq',
  'targetId',
  'data',
  'status',
  'attempts',
  'lastError',
  'result',
  'startedAt',
  'finishedAt',
] as const satisfies readonly (keyof BulkJobItem)[];
export type ItemView = Pick<BulkJobItem, (typeof ITEM_VIEW)[number]>;

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function progressOf(
  job: Pick<JobView, 'totalItems' | 'succeededItems' | 'failedItems' | 'skippedItems'>,
): number {
  if (job.totalItems <= 0) return 0;
  const done = job.succeededItems + job.failedItems + job.skippedItems;
  // Rounded down, so that a job reads 1 only when every item is done.
  return Math.floor((done * 10_000) / job.totalItems) / 10_000;
}

/**
 * The job as every response shows it (GET, lists, creates and their replays,
 * cancel, restore, events): credential headers in its params redacted.
 */
export function toJobResponse(job: JobView): BulkJobResponseDto {
  return {
    id: job.id,
    action: job.action,
    params: redactParams(job.params),
    options: job.options,
    status: job.status,
    labels: job.labels,
    total_items: job.totalItems,
    succeeded_items: job.succeededItems,
    failed_items: job.failedItems,
    skipped_items: job.skippedItems,
    progress: progressOf(job),
    owner: job.owner,
    error: job.error,
    deleted_at: iso(job.deletedAt),
    purge_at: iso(job.purgeAt),
    retry_of: job.retryOf,
    created_at: job.createdAt.toISOString(),
    started_at: iso(job.startedAt),
    finished_at: iso(job.finishedAt),
    updated_at: job.updatedAt.toISOString(),
    notification: notificationOf(job),
  };
}

/**
 * Where the job's webhook stands: null when it asked for none; `waiting`
 * until it ends; then its event's state (`pending` until delivered or given up).
 */
function notificationOf(job: JobView): NotificationResponseDto | null {
  if (!job.options?.notify) return null;
  const n = job.notification;
  if (!n) {
    return {
      status: isTerminal(job.status) ? 'pending' : 'waiting',
      attempts: 0,
      last_error: null,
      delivered_at: null,
    };
  }
  return {
    status: n.status,
    attempts: n.attempts,
    last_error: n.lastError,
    delivered_at: iso(n.deliveredAt),
  };
}

export function toItemResponse(item: ItemView): BulkJobItemResponseDto {
  return {
    seq: item.seq,
    target_id: item.targetId,
    data: item.data,
    status: item.status,
    attempts: item.attempts,
    last_error: item.lastError,
    result: item.result ?? null,
    started_at: iso(item.startedAt),
    finished_at: iso(item.finishedAt),
  };
}
