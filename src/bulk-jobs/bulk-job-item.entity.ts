import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { ItemStatus } from './bulk-job-status';
import type { JobError } from './bulk-job.entity';

/**
 * One target of a job. The key is (job_id, seq): seq is the target's position
 * in the request, which keeps items in request order and makes keyset paging
 * over a job's items an index range scan.
 */
@Entity({ name: 'bulk_job_items' })
export class BulkJobItem {
  @PrimaryColumn('uuid', { name: 'job_id' })
  jobId: string;

  @PrimaryColumn('integer')
  seq: number;

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
export class BulkJobIdempotencyKey {
  @PrimaryColumn('text')
  owner: string;

  @PrimaryColumn('text')
  key: string;

  @Column('text', { name: 'request_hash' })
  requestHash: string;

  @Column('uuid', { name: 'job_id' })
  jobId: string;

  @Column('timestamp with time zone', { name: 'created_at', precision: 3, default: () => 'now()' })
  createdAt: Date;
}
