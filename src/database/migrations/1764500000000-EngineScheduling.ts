import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Scheduling state the workers keep on each job, so that claims and
 * finalisation read one row instead of counting items:
 * - running_items: items claimed and not yet recorded (the per-job
 *   concurrency limit and the cancelling → cancelled transition read it);
 * - last_claimed_at: round robin between jobs (the least recently served
 *   job is claimed from next);
 * - claimable_at: when the job can next be claimed from (a retry's backoff
 *   or the rate limit pushes it into the future; so does having nothing
 *   pending, until a writer that makes items pending lowers it again);
 *   NULL once the job is finished;
 * - rate_tokens / rate_updated_at: the token bucket of rate_limit_per_second.
 * No index is added on bulk_job_items: the claim uses the existing partial
 * index over pending items and the sweep the one over running items.
 */
export class EngineScheduling1764500000000 implements MigrationInterface {
  name = 'EngineScheduling1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE bulk_jobs
        ADD COLUMN running_items   integer NOT NULL DEFAULT 0,
        ADD COLUMN last_claimed_at timestamptz(3),
        ADD COLUMN claimable_at    timestamptz(3) DEFAULT now(),
        ADD COLUMN rate_tokens     double precision,
        ADD COLUMN rate_updated_at timestamptz,
        ADD CONSTRAINT bulk_jobs_running_items_check CHECK (
          running_items >= 0
          AND succeeded_items + failed_items + skipped_items + running_items <= total_items)`);
    // Jobs already in flight when this runs: count what their workers hold.
    await q.query(`
      UPDATE bulk_jobs j SET running_items = r.n
      FROM (SELECT job_id, count(*)::int AS n FROM bulk_job_items WHERE status = 'running' GROUP BY job_id) r
      WHERE j.id = r.job_id`);
    await q.query(`UPDATE bulk_jobs SET claimable_at = NULL WHERE status NOT IN ('pending', 'running')`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE bulk_jobs
        DROP CONSTRAINT bulk_jobs_running_items_check,
        DROP COLUMN rate_updated_at,
        DROP COLUMN rate_tokens,
        DROP COLUMN claimable_at,
        DROP COLUMN last_claimed_at,
        DROP COLUMN running_items`);
  }
}
