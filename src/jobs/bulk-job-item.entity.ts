import { Check, Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { sqlLiterals } from '../database/sql';
import { BulkJob } from './bulk-job.entity';
import { ITEM_STATUSES, type ItemStatus } from './job-status';
import type { JobError } from './job-types';

/**
 * One target of a job. The key is (job_id, seq): seq is the target's position
 * in the request, which keeps items in request order and makes keyset paging
 * over a job's items an index range scan. Like BulkJob, it declares the whole
 * schema but the storage parameters (migration HotTableStorage).
 */
@Entity({ name: 'bulk_job_items' })
@Check('bulk_job_items_status_check', `status IN (${sqlLiterals(ITEM_STATUSES)})`)
/** Claims scan only pending items, in order, per job. */
@Index('bulk_job_items_pending_idx', ['jobId', 'seq'], { where: `status = 'pending'` })
/**
 * One index per item status on (job_id, seq): the items listing's status filter reads a page of
 * any status of a 10M-item job from its own index, first page or later (bench/README.md, "bigjob").
 */
@Index('bulk_job_items_failed_idx', ['jobId', 'seq'], { where: `status = 'failed'` })
@Index('bulk_job_items_succeeded_idx', ['jobId', 'seq'], { where: `status = 'succeeded'` })
@Index('bulk_job_items_skipped_idx', ['jobId', 'seq'], { where: `status = 'skipped'` })
/** Running items also for the lease sweep, by job (migration LeaseSweepByJob). */
@Index('bulk_job_items_running_seq_idx', ['jobId', 'seq'], { where: `status = 'running'` })
export class BulkJobItem {
  @PrimaryColumn('uuid', { name: 'job_id', primaryKeyConstraintName: 'bulk_job_items_pkey' })
  jobId: string;

  @PrimaryColumn('integer', { primaryKeyConstraintName: 'bulk_job_items_pkey' })
  seq: number;

  /** A purge of the job removes its items with it. */
  @ManyToOne(() => BulkJob, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'job_id', foreignKeyConstraintName: 'bulk_job_items_job_id_fkey' })
  job?: BulkJob;

  @Column('text', { name: 'target_id' })
  targetId: string;

  @Column('jsonb', { nullable: true })
  data: Record<string, unknown> | null;

  @Column('text', { default: 'pending' })
  status: ItemStatus;

  @Column('integer', { default: 0 })
  attempts: number;

  @Column('jsonb', { name: 'last_error', nullable: true })
  lastError: JobError | null;

  @Column('jsonb', { nullable: true })
  result: unknown;

  @Column('timestamp with time zone', { name: 'available_at', precision: 3, default: () => 'now()' })
  availableAt: Date;

  @Column('text', { name: 'lease_owner', nullable: true })
  leaseOwner: string | null;

  @Column('timestamp with time zone', { name: 'lease_expires_at', precision: 3, nullable: true })
  leaseExpiresAt: Date | null;

  @Column('timestamp with time zone', { name: 'started_at', precision: 3, nullable: true })
  startedAt: Date | null;

  @Column('timestamp with time zone', { name: 'finished_at', precision: 3, nullable: true })
  finishedAt: Date | null;
}

/** Idempotency-Key records: one per (owner, key), kept 24 hours. */
@Entity({ name: 'bulk_job_idempotency_keys' })
/** The purge removes expired records by age. */
@Index('bulk_job_idempotency_keys_created_idx', ['createdAt'])
export class BulkJobIdempotencyKey {
  @PrimaryColumn('text', { primaryKeyConstraintName: 'bulk_job_idempotency_keys_pkey' })
  owner: string;

  @PrimaryColumn('text', { primaryKeyConstraintName: 'bulk_job_idempotency_keys_pkey' })
  key: string;

  @Column('text', { name: 'request_hash' })
  requestHash: string;

  @Column('uuid', { name: 'job_id' })
  jobId: string;

  /** A purge of the job removes its key with it. */
  @ManyToOne(() => BulkJob, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'job_id', foreignKeyConstraintName: 'bulk_job_idempotency_keys_job_id_fkey' })
  job?: BulkJob;

  @Column('timestamp with time zone', { name: 'created_at', precision: 3, default: () => 'now()' })
  createdAt: Date;
}
