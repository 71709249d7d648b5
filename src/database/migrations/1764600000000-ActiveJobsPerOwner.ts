import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The owner's unfinished jobs, for the BULK_JOBS_MAX_ACTIVE_PER_OWNER check
 * that every create makes: it reads only the owner's active jobs, however
 * many finished ones the owner keeps.
 */
export class ActiveJobsPerOwner1764600000000 implements MigrationInterface {
  name = 'ActiveJobsPerOwner1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE INDEX bulk_jobs_owner_active_idx ON bulk_jobs (owner)
         WHERE status IN ('pending', 'running', 'cancelling') AND deleted_at IS NULL`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX bulk_jobs_owner_active_idx`);
  }
}
