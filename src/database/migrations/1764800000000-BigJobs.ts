import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Jobs at their advertised size (10,000,000 items):
 *
 * - an index per item status on (job_id, seq), so that GET /items?status=
 *   reads any page of any status from an index (pending and failed had one);
 * - the cancelling jobs, which the workers' cancel sweep reads every poll;
 * - the finished jobs nobody deleted, by finished_at, for
 *   BULK_JOBS_FINISHED_RETENTION_DAYS.
 *
 * Neither bulk_jobs index adds a column that running jobs' counter updates
 * change (status already is in the active indexes; finished_at is set once),
 * so those updates stay HOT.
 */
export class BigJobs1764800000000 implements MigrationInterface {
  name = 'BigJobs1764800000000';

  async up(q: QueryRunner): Promise<void> {
    for (const status of ['succeeded', 'skipped']) {
      await q.query(
        `CREATE INDEX bulk_job_items_${status}_idx ON bulk_job_items (job_id, seq) WHERE status = '${status}'`,
      );
    }
    await q.query(
      `CREATE INDEX bulk_job_items_running_seq_idx ON bulk_job_items (job_id, seq) WHERE status = 'running'`,
    );
    await q.query(`CREATE INDEX bulk_jobs_cancelling_idx ON bulk_jobs (id) WHERE status = 'cancelling'`);
    await q.query(
      `CREATE INDEX bulk_jobs_finished_idx ON bulk_jobs (finished_at)
         WHERE status IN ('completed', 'failed', 'cancelled') AND deleted_at IS NULL`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX bulk_jobs_finished_idx`);
    await q.query(`DROP INDEX bulk_jobs_cancelling_idx`);
    await q.query(`DROP INDEX bulk_job_items_running_seq_idx`);
    await q.query(`DROP INDEX bulk_job_items_skipped_idx`);
    await q.query(`DROP INDEX bulk_job_items_succeeded_idx`);
  }
}
