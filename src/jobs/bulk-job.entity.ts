import {
  Check,
  Column,
  CreateDateColumn,
  DeleteDateColumn,
  Entity,
  Index,
  PrimaryColumn,
  UpdateDateColumn,
} from 'typeorm';
import { sqlLiterals } from '../database/sql';
import { ACTIVE, CANCELLING, FINISHED } from './job-conditions';
import { JOB_STATUSES, TERMINAL_JOB_STATUSES, type JobStatus } from './job-status';
import type { JobError, JobOptions } from './job-types';

/**
 * Indexes with descending columns. TypeORM's @Index takes columns without a
 * direction, so these are declared `synchronize: false`: the migrations
 * create them, TypeORM's schema diff neither drops nor creates them, and the
 * schema spec (test/database/schema.e2e-spec.ts) checks that the database
 * has them exactly as written here.
 */
export const DESCENDING_INDEXES = {
  /** An owner's jobs, newest first (GET /jobs keyset pages). */
  ownerCreated: { name: 'bulk_jobs_owner_created_idx', columns: 'owner, created_at DESC, id DESC' },
  /** Every owner's jobs, newest first (an admin's GET /jobs). */
  created: { name: 'bulk_jobs_created_idx', columns: 'created_at DESC, id DESC' },
} as const;

/**
 * Indexes of another access method than btree, which TypeORM's @Index cannot
 * say: declared `synchronize: false` as DESCENDING_INDEXES are, and checked
 * the same way by the schema spec.
 */
export const OTHER_METHOD_INDEXES = {
  /** `GET /jobs?label=key:value`: containment (`labels @> …`) on the labels. */
  labels: { name: 'bulk_jobs_labels_idx', using: 'gin', columns: 'labels jsonb_path_ops' },
} as const;

/**
 * One bulk action job. Timestamps are kept at millisecond precision so that a
 * keyset cursor built from a JavaScript Date matches the stored value exactly.
 *
 * The entity declares the whole schema that the migrations build (keys,
 * checks, indexes with their predicates), so that `migration:generate` on an
 * up-to-date database finds nothing to do. Not declarable, and invisible to
 * TypeORM's diff: the table's storage parameters (fill factor, autovacuum;
 * migration HotTableStorage) and the column order of DESCENDING_INDEXES.
 */
@Entity({ name: 'bulk_jobs' })
@Check('bulk_jobs_status_check', `status IN (${sqlLiterals(JOB_STATUSES)})`)
@Check(
  'bulk_jobs_counters_check',
  `succeeded_items >= 0 AND failed_items >= 0 AND skipped_items >= 0
   AND succeeded_items + failed_items + skipped_items <= total_items`,
)
@Check(
  'bulk_jobs_deleted_terminal_check',
  `deleted_at IS NULL OR status IN (${sqlLiterals(TERMINAL_JOB_STATUSES)})`,
)
@Check(
  'bulk_jobs_running_items_check',
  `running_items >= 0
   AND succeeded_items + failed_items + skipped_items + running_items <= total_items`,
)
@Index(DESCENDING_INDEXES.ownerCreated.name, { synchronize: false })
@Index(DESCENDING_INDEXES.created.name, { synchronize: false })
@Index(OTHER_METHOD_INDEXES.labels.name, { synchronize: false })
/** The periodic purge reads only deleted jobs, by purge time. */
@Index('bulk_jobs_purge_idx', ['purgeAt'], { where: 'purge_at IS NOT NULL' })
/** Unfinished jobs, oldest first. */
@Index('bulk_jobs_active_idx', ['createdAt', 'id'], { where: ACTIVE })
/** An owner's unfinished jobs, for the BULK_JOBS_MAX_ACTIVE_PER_OWNER check of every create. */
@Index('bulk_jobs_owner_active_idx', ['owner'], { where: ACTIVE })
/** Cancelled jobs whose pending items the workers' cancel sweep skips in batches. */
@Index('bulk_jobs_cancelling_idx', ['id'], { where: CANCELLING })
/** Finished jobs nobody deleted, oldest first, for BULK_JOBS_FINISHED_RETENTION_DAYS. */
@Index('bulk_jobs_finished_idx', ['finishedAt'], { where: FINISHED })
export class BulkJob {
  @PrimaryColumn('uuid', { primaryKeyConstraintName: 'bulk_jobs_pkey' })
  id: string;

  @Column('text')
  owner: string;

  @Column('text')
  action: string;

  @Column('jsonb', { default: {} })
  params: Record<string, unknown>;

  @Column('jsonb', { default: {} })
  options: JobOptions;

  @Column('text', { default: 'pending' })
  status: JobStatus;

  @Column('integer', { name: 'total_items', default: 0 })
  totalItems: number;

  @Column('integer', { name: 'succeeded_items', default: 0 })
  succeededItems: number;

  @Column('integer', { name: 'failed_items', default: 0 })
  failedItems: number;

  @Column('integer', { name: 'skipped_items', default: 0 })
  skippedItems: number;

  @Column('jsonb', { nullable: true })
  error: JobError | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamp with time zone', precision: 3 })
  createdAt: Date;

  @Column('timestamp with time zone', { name: 'started_at', precision: 3, nullable: true })
  startedAt: Date | null;

  @Column('timestamp with time zone', { name: 'finished_at', precision: 3, nullable: true })
  finishedAt: Date | null;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamp with time zone', precision: 3 })
  updatedAt: Date;

  @DeleteDateColumn({ name: 'deleted_at', type: 'timestamp with time zone', precision: 3 })
  deletedAt: Date | null;

  @Column('timestamp with time zone', { name: 'purge_at', precision: 3, nullable: true })
  purgeAt: Date | null;

  /** The client's labels: up to 16 keys to strings (src/jobs/job-labels.ts). */
  @Column('jsonb', { default: {} })
  labels: Record<string, string>;

  /** The job whose failed (and skipped) items this one retries; null for a job created from targets. */
  @Column('uuid', { name: 'retry_of', nullable: true })
  retryOf: string | null;

  // Scheduling state kept by the workers (src/engine); the API does not show it.

  /** Items claimed by a worker and not yet recorded. */
  @Column('integer', { name: 'running_items', default: 0 })
  runningItems: number;

  /** Round robin: the job served least recently is claimed from next. */
  @Column('timestamp with time zone', { name: 'last_claimed_at', precision: 3, nullable: true })
  lastClaimedAt: Date | null;

  /** The worker that made the last claim: a worker that finds another one's here is not alone on the job. */
  @Column('text', { name: 'last_claimed_by', nullable: true })
  lastClaimedBy: string | null;

  /** One past the highest seq claimed so far: a claim that continues the job starts there. */
  @Column('integer', { name: 'claim_frontier', default: 0 })
  claimFrontier: number;

  /** When the job can next be claimed from (backoff, rate limit, nothing pending); null once finished. */
  @Column('timestamp with time zone', {
    name: 'claimable_at',
    precision: 3,
    nullable: true,
    default: () => 'now()',
  })
  claimableAt: Date | null;

  /** Token bucket of options.rate_limit_per_second. */
  @Column('double precision', { name: 'rate_tokens', nullable: true })
  rateTokens: number | null;

  @Column('timestamp with time zone', { name: 'rate_updated_at', nullable: true })
  rateUpdatedAt: Date | null;
}
