import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import type { ItemStatus, JobStatus } from '../../src/jobs/job-status';

export interface JobFactoryOptions {
  owner: string;
  status?: JobStatus;
  action?: string;
  items?: number;
  /** Status of every item; by default derived from the job status. */
  itemStatus?: ItemStatus;
  /** One status per item, in seq order; overrides `items` and `itemStatus`. */
  itemStatuses?: ItemStatus[];
  createdAt?: Date;
  deletedAt?: Date | null;
  purgeAt?: Date | null;
  params?: Record<string, unknown>;
}

const ITEM_STATUS_FOR: Record<JobStatus, ItemStatus> = {
  pending: 'pending',
  running: 'running',
  paused: 'pending',
  cancelling: 'running',
  completed: 'succeeded',
  failed: 'failed',
  cancelled: 'skipped',
};

const FINISHED_ITEM_STATUSES: readonly ItemStatus[] = ['succeeded', 'failed', 'skipped'];

/**
 * Inserts a job with `items` items straight into the database, in any status,
 * with counters that agree with its items.
 */
export async function insertJob(db: DataSource, opts: JobFactoryOptions): Promise<string> {
  const id = randomUUID();
  const status = opts.status ?? 'pending';
  const statuses =
    opts.itemStatuses ??
    new Array<ItemStatus>(opts.items ?? 3).fill(opts.itemStatus ?? ITEM_STATUS_FOR[status]);
  const count = (s: ItemStatus) => statuses.filter((x) => x === s).length;
  const terminal = ['completed', 'failed', 'cancelled'].includes(status);
  const createdAt = opts.createdAt ?? new Date();
  // One transaction: a purge or a worker running beside the test never sees the job without its items.
  await db.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO bulk_jobs (id, owner, action, params, status, total_items, succeeded_items, failed_items,
       skipped_items, created_at, updated_at, started_at, finished_at, deleted_at, purge_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14)`,
      [
        id,
        opts.owner,
        opts.action ?? 'noop',
        opts.params ?? {},
        status,
        statuses.length,
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
    if (statuses.length > 0) {
      await tx.query(
        `INSERT INTO bulk_job_items (job_id, seq, target_id, status, attempts, finished_at, last_error)
       SELECT $1, t.ord - 1, 'target-' || t.ord,
              t.status,
              CASE WHEN t.status = 'pending' THEN 0 ELSE 1 END,
              CASE WHEN t.status = ANY($3) THEN $4::timestamptz END,
              CASE WHEN t.status = 'failed' THEN '{"code":"TEST","message":"failed in a factory"}'::jsonb END
       FROM unnest($2::text[]) WITH ORDINALITY AS t(status, ord)`,
        [id, statuses, FINISHED_ITEM_STATUSES, createdAt],
      );
    }
  });
  return id;
}

/**
 * Inserts `count` jobs without items for `owner` in one statement, the newest
 * first in `created_at` order, one millisecond apart.
 */
export async function insertManyJobs(
  db: DataSource,
  owner: string,
  count: number,
  status: JobStatus = 'completed',
): Promise<void> {
  await db.query(
    `INSERT INTO bulk_jobs (id, owner, action, status, created_at, updated_at)
     SELECT gen_random_uuid(), $1, 'noop', $2, t, t
     FROM (SELECT now() - g * interval '1 millisecond' AS t FROM generate_series(1, $3) AS g) s`,
    [owner, status, count],
  );
}

export async function jobRow(db: DataSource, id: string): Promise<Record<string, unknown> | undefined> {
  const rows: Record<string, unknown>[] = await db.query('SELECT * FROM bulk_jobs WHERE id = $1', [id]);
  return rows[0];
}

export interface ItemRowInDb {
  seq: number;
  target_id: string;
  data: Record<string, unknown> | null;
  status: ItemStatus;
  finished_at: Date | null;
}

/** The job's items as stored, in seq order. */
export async function itemRows(db: DataSource, jobId: string): Promise<ItemRowInDb[]> {
  return db.query(
    'SELECT seq, target_id, data, status, finished_at FROM bulk_job_items WHERE job_id = $1 ORDER BY seq',
    [jobId],
  );
}

/** How many jobs `owner` has in the database, deleted ones included. */
export async function countJobs(db: DataSource, owner: string): Promise<number> {
  const rows: { n: number }[] = await db.query('SELECT count(*)::int AS n FROM bulk_jobs WHERE owner = $1', [
    owner,
  ]);
  return rows[0].n;
}
