import { Check, Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { sqlLiterals } from '../database/sql';
import { BulkJob } from './bulk-job.entity';

/** Where a job's end notification stands. */
export const WEBHOOK_STATUSES = ['pending', 'delivered', 'failed'] as const;
export type WebhookStatus = (typeof WEBHOOK_STATUSES)[number];

/**
 * The webhook outbox: one row per event to deliver (`bulk_job.finished`).
 * The trigger bulk_jobs_notify_finished (migration JobWebhooks) writes it in
 * the transaction that ends the job, whoever ends it, so that an event exists
 * exactly when the job's end is committed. `id` is the event's `webhook-id`
 * on every attempt. A worker claims a due row by moving `next_attempt_at`
 * past the attempt (its lease): a worker that dies mid-attempt leaves the row
 * due again once the lease runs out.
 */
@Entity({ name: 'bulk_job_webhooks' })
@Check('bulk_job_webhooks_status_check', `status IN (${sqlLiterals(WEBHOOK_STATUSES)})`)
/** Deliveries scan only the pending events, by due time. */
@Index('bulk_job_webhooks_due_idx', ['nextAttemptAt'], { where: `status = 'pending'` })
/** A job's notification: its latest event. */
@Index('bulk_job_webhooks_job_idx', ['jobId', 'createdAt'])
export class BulkJobWebhook {
  @PrimaryColumn('uuid', { primaryKeyConstraintName: 'bulk_job_webhooks_pkey' })
  id: string;

  @Column('uuid', { name: 'job_id' })
  jobId: string;

  /** A purge of the job removes its events with it. */
  @ManyToOne(() => BulkJob, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'job_id', foreignKeyConstraintName: 'bulk_job_webhooks_job_id_fkey' })
  job?: BulkJob;

  @Column('text')
  url: string;

  /** The request body, fixed at the first attempt so that every retry sends the same bytes. */
  @Column('text', { nullable: true })
  body: string | null;

  @Column('text', { default: 'pending' })
  status: WebhookStatus;

  @Column('integer', { default: 0 })
  attempts: number;

  @Column('text', { name: 'last_error', nullable: true })
  lastError: string | null;

  @Column('timestamp with time zone', { name: 'next_attempt_at', precision: 3, default: () => 'now()' })
  nextAttemptAt: Date;

  @Column('timestamp with time zone', { name: 'delivered_at', precision: 3, nullable: true })
  deliveredAt: Date | null;

  @Column('timestamp with time zone', { name: 'created_at', precision: 3, default: () => 'now()' })
  createdAt: Date;
}
