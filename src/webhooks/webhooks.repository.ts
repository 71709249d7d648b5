import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import { JOB_VIEW, type JobView } from '../bulk-jobs/bulk-job.mapper';
import { Database } from '../database/database';
import { selectList, sql, type Statement } from '../database/sql';
import { BulkJob } from '../jobs/bulk-job.entity';

/** An event a worker has claimed for one delivery attempt. */
export interface ClaimedWebhook {
  id: string;
  jobId: string;
  url: string;
  /** Null until the first attempt fixes it. */
  body: string | null;
  /** This attempt's number, from 1. */
  attempts: number;
  createdAt: Date;
}

/** How an attempt ended: delivered, retried later, or given up. */
export type WebhookOutcome =
  | { kind: 'delivered' }
  | { kind: 'retry'; error: string; delayMs: number }
  | { kind: 'failed'; error: string };

/**
 * The statements of webhook delivery, on the worker's pool. Written by hand:
 * the claim is an UPDATE over a SKIP LOCKED selection, which TypeORM cannot
 * say. Every statement after the claim is conditional on the attempt it
 * claimed, so that a worker whose lease ran out (and whose event another
 * worker took) cannot overwrite what the other one recorded.
 */
@Injectable()
export class WebhooksRepository {
  private readonly findJob: Statement<{ id: string }>;

  constructor(
    private readonly db: Database,
    @InjectRepository(BulkJob) jobs: Repository<BulkJob>,
  ) {
    this.findJob = sql(`SELECT ${selectList(jobs.metadata, JOB_VIEW)} FROM bulk_jobs WHERE id = :id`);
  }

  /**
   * Up to `limit` due events, each claimed for one attempt: its attempt count
   * goes up and it is not due again for `leaseMs` (the lease; a worker that
   * dies mid-attempt leaves it due again then). Concurrent workers skip each
   * other's rows rather than wait for them.
   */
  claimDue(limit: number, leaseMs: number): Promise<ClaimedWebhook[]> {
    return CLAIM_DUE.rows<ClaimedWebhook>(this.db.pool, { limit, leaseMs });
  }

  async job(id: string): Promise<JobView | undefined> {
    return (await this.findJob.rows<JobView>(this.db.pool, { id }))[0];
  }

  /** Fixes the event's body if no attempt has yet; returns the body every attempt sends. */
  async fixBody(id: string, body: string): Promise<string> {
    const [row] = await FIX_BODY.rows<{ body: string }>(this.db.pool, { id, body });
    return row?.body ?? body;
  }

  /** Records how attempt `attempt` ended; false when the event is no longer this attempt's. */
  async record(id: string, attempt: number, outcome: WebhookOutcome): Promise<boolean> {
    const params = { id, attempt };
    const result =
      outcome.kind === 'delivered'
        ? await DELIVERED.query(this.db.pool, params)
        : outcome.kind === 'retry'
          ? await RETRY.query(this.db.pool, { ...params, error: outcome.error, delayMs: outcome.delayMs })
          : await FAILED.query(this.db.pool, { ...params, error: outcome.error });
    return (result.rowCount ?? 0) > 0;
  }
}

const CLAIM_DUE = sql<{ limit: number; leaseMs: number }>(`
  UPDATE bulk_job_webhooks w
  SET attempts = w.attempts + 1,
      next_attempt_at = now() + make_interval(secs => :leaseMs / 1000.0)
  FROM (
    SELECT id FROM bulk_job_webhooks
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
  ) due
  WHERE w.id = due.id
  RETURNING w.id, w.job_id AS "jobId", w.url, w.body, w.attempts, w.created_at AS "createdAt"`);

const FIX_BODY = sql<{ id: string; body: string }>(`
  UPDATE bulk_job_webhooks SET body = COALESCE(body, :body) WHERE id = :id RETURNING body`);

const THIS_ATTEMPT = `id = :id AND attempts = :attempt AND status = 'pending'`;

const DELIVERED = sql<{ id: string; attempt: number }>(`
  UPDATE bulk_job_webhooks SET status = 'delivered', delivered_at = now(), last_error = NULL
  WHERE ${THIS_ATTEMPT}`);

const RETRY = sql<{ id: string; attempt: number; error: string; delayMs: number }>(`
  UPDATE bulk_job_webhooks
  SET last_error = :error, next_attempt_at = now() + make_interval(secs => :delayMs / 1000.0)
  WHERE ${THIS_ATTEMPT}`);

const FAILED = sql<{ id: string; attempt: number; error: string }>(`
  UPDATE bulk_job_webhooks SET status = 'failed', last_error = :error
  WHERE ${THIS_ATTEMPT}`);
