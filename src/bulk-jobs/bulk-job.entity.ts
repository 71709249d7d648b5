import { Column, CreateDateColumn, DeleteDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import type { JobStatus } from './bulk-job-status';

export interface JobError {
  code: string;
  message: string;
}

export interface JobOptions {
  max_attempts?: number;
  concurrency?: number;
  rate_limit_per_second?: number;
}

/**
 * One bulk action job. Timestamps are kept at millisecond precision so that a
 * keyset cursor built from a JavaScript Date matches the stored value exactly.
 * Indexes (named, with sort orders and predicates) live in the migrations.
 */
@Entity({ name: 'bulk_jobs' })
export class BulkJob {
  @PrimaryColumn('uuid')
  id: string;

  @Column('text')
  owner: string;

  @Column('text')
  action: string;

  @Column('jsonb', { default: () => `'{}'::jsonb` })
  params: Record<string, unknown>;

  @Column('jsonb', { default: () => `'{}'::jsonb` })
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

  // Scheduling state kept by the workers (src/engine); the API does not show it.

  /** Items claimed by a worker and not yet recorded. */
  @Column('integer', { name: 'running_items', default: 0 })
  runningItems: number;

  /** Round robin: the job served least recently is claimed from next. */
  @Column('timestamp with time zone', { name: 'last_claimed_at', precision: 3, nullable: true })
  lastClaimedAt: Date | null;

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
