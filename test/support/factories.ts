import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import type { ItemStatus, JobStatus } from '../../src/bulk-jobs/bulk-job-status';

export interface JobFactoryOptions {
  owner: string;
  status?: JobStatus;
  action?: string;
  items?: number;
  /** Status of every item; by default derived from the job status. */
  itemStatus?: ItemStatus;
  createdAt?: Date;
  deletedAt?: Date | null;
  purgeAt?: Date | null;
  params?: Record<string, unknown>;
}

const ITEM_STATUS_FOR: Record<JobStatus, ItemStatus> = {
  pending: 'pending',
  running: 'running',
  cancelling: 'running',
  completed: 'succeeded',
  failed: 'failed',
  cancelled: 'skipped',
};

/**
 * Inserts a job with `items` items straight into the database, in any status,
 * with counters that agree with its items.
 */
export async function insertJob(db: DataSource, opts: JobFactoryOptions): Promise<string> {
  const id = randomUUID();
  const status = opts.status ?? 'pending';
  const n = opts.items ?? 3;
  const itemStatus = opts.itemStatus ?? ITEM_STATUS_FOR[status];
  const count = (s: ItemStatus) => (itemStatus === s ? n : 0);
  const terminal = ['completed', 'failed', 'cancelled'].includes(status);
  const createdAt = opts.createdAt ?? new Date();
  await db.query(
    `INSERT INTO bulk_jobs (id, owner, action, params, status, total_items, succeeded_items, failed_items,
       skipped_items, created_at, updated_at, started_at, finished_at, deleted_at, purge_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14)`,
    [
      id,
      opts.owner,
      opts.action ?? 'noop',
      opts.params ?? {},
      status,
      n,
      count('succeeded'),
      count('failed'),
      count('skipped'),
      createdAt,
      status === 'pending' ? null : createdAt,
      terminal ? createdAt : null,
      opts.deletedAt ?? null,
      opts.purgeAt ?? null,
    ],
  );
  if (n > 0) {
    await db.query(
      `INSERT INTO bulk_job_items (job_id, seq, target_id, status, attempts, finished_at, last_error)
       SELECT $1, g - 1, 'target-' || g, $2, $3, $4, $5 FROM generate_series(1, $6) AS g`,
      [
        id,
        itemStatus,
        itemStatus === 'pending' ? 0 : 1,
        ['succeeded', 'failed', 'skipped'].includes(itemStatus) ? createdAt : null,
        itemStatus === 'failed' ? { code: 'TEST', message: 'failed in a factory' } : null,
        n,
      ],
    );
  }
  return id;
}

export async function jobRow(db: DataSource, id: string): Promise<Record<string, unknown> | undefined> {
  const rows: Record<string, unknown>[] = await db.query('SELECT * FROM bulk_jobs WHERE id = $1', [id]);
  return rows[0];
}
