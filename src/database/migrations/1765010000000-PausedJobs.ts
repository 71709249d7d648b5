import type { MigrationInterface, QueryRunner } from 'typeorm';

const ACTIVE_BEFORE = `status IN ('pending', 'running', 'cancelling') AND deleted_at IS NULL`;
const ACTIVE_AFTER = `status IN ('pending', 'running', 'paused', 'cancelling') AND deleted_at IS NULL`;

/**
 * The `paused` status (POST /jobs/{id}/pause): unfinished, so it counts as
 * active, and the partial indexes over active jobs take it in.
 */
export class PausedJobs1765010000000 implements MigrationInterface {
  name = 'PausedJobs1765010000000';

  async up(q: QueryRunner): Promise<void> {
    await this.statuses(
      q,
      `'pending', 'running', 'paused', 'cancelling', 'completed', 'failed', 'cancelled'`,
    );
    await this.activeIndexes(q, ACTIVE_AFTER);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(
      `UPDATE bulk_jobs SET status = 'running' WHERE status = 'paused' AND started_at IS NOT NULL`,
    );
    await q.query(`UPDATE bulk_jobs SET status = 'pending' WHERE status = 'paused'`);
    await this.statuses(q, `'pending', 'running', 'cancelling', 'completed', 'failed', 'cancelled'`);
    await this.activeIndexes(q, ACTIVE_BEFORE);
  }

  private async statuses(q: QueryRunner, list: string): Promise<void> {
    await q.query(`
      ALTER TABLE bulk_jobs
        DROP CONSTRAINT bulk_jobs_status_check,
        ADD CONSTRAINT bulk_jobs_status_check CHECK (status IN (${list}))`);
  }

  private async activeIndexes(q: QueryRunner, predicate: string): Promise<void> {
    await q.query(`DROP INDEX bulk_jobs_active_idx`);
    await q.query(`CREATE INDEX bulk_jobs_active_idx ON bulk_jobs (created_at, id) WHERE ${predicate}`);
    await q.query(`DROP INDEX bulk_jobs_owner_active_idx`);
    await q.query(`CREATE INDEX bulk_jobs_owner_active_idx ON bulk_jobs (owner) WHERE ${predicate}`);
  }
}
