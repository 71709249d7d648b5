import type { ItemStatus, JobStatus } from '../jobs/job-status';
import type { JobError } from '../jobs/job-types';
import type { BulkJobItemResponseDto, BulkJobResponseDto } from './dto/bulk-job-response.dto';

/** Column list of a job as the API shows it; every job query selects these. */
export const JOB_COLUMNS = `id, owner, action, params, options, status, total_items, succeeded_items,
  failed_items, skipped_items, error, created_at, started_at, finished_at, updated_at, deleted_at, purge_at`;

export interface JobRow {
  id: string;
  owner: string;
  action: string;
  params: Record<string, unknown>;
  options: Record<string, unknown>;
  status: JobStatus;
  total_items: number;
  succeeded_items: number;
  failed_items: number;
  skipped_items: number;
  error: JobError | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
  deleted_at: Date | null;
  purge_at: Date | null;
}

export const ITEM_COLUMNS = `seq, target_id, data, status, attempts, last_error, result, started_at, finished_at`;

export interface ItemRow {
  seq: number;
  target_id: string;
  data: Record<string, unknown> | null;
  status: ItemStatus;
  attempts: number;
  last_error: JobError | null;
  result: unknown;
  started_at: Date | null;
  finished_at: Date | null;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function progressOf(
  row: Pick<JobRow, 'total_items' | 'succeeded_items' | 'failed_items' | 'skipped_items'>,
): number {
  if (row.total_items <= 0) return 0;
  const done = row.succeeded_items + row.failed_items + row.skipped_items;
  // Rounded down, so that a job reads 1 only when every item is done.
  return Math.floor((done * 10_000) / row.total_items) / 10_000;
}

export function toJobResponse(row: JobRow): BulkJobResponseDto {
  return {
    id: row.id,
    action: row.action,
    params: row.params,
    options: row.options,
    status: row.status,
    total_items: row.total_items,
    succeeded_items: row.succeeded_items,
    failed_items: row.failed_items,
    skipped_items: row.skipped_items,
    progress: progressOf(row),
    owner: row.owner,
    error: row.error,
    deleted_at: iso(row.deleted_at),
    purge_at: iso(row.purge_at),
    created_at: row.created_at.toISOString(),
    started_at: iso(row.started_at),
    finished_at: iso(row.finished_at),
    updated_at: row.updated_at.toISOString(),
  };
}

export function toItemResponse(row: ItemRow): BulkJobItemResponseDto {
  return {
    seq: row.seq,
    target_id: row.target_id,
    data: row.data,
    status: row.status,
    attempts: row.attempts,
    last_error: row.last_error,
    result: row.result ?? null,
    started_at: iso(row.started_at),
    finished_at: iso(row.finished_at),
  };
}
