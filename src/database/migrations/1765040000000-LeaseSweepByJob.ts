import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Drops bulk_job_items_running_idx (lease_expires_at, running items only).
 * Every claim and every lease renewal inserted an entry into it for each
 * item (lease_expires_at is in its key, so a renewal cannot be a HOT update
 * either), and the lease sweep, its only reader, already went through
 * bulk_job_items_running_seq_idx (job_id, seq; running items too), which the
 * planner prefers for its DISTINCT job_id: the claims paid for an index
 * nothing read. A claim of 1,000 items wrote 2,000 fewer blocks without it
 * (bench/README.md, "Engine", item 34).
 */
export class LeaseSweepByJob1765040000000 implements MigrationInterface {
  name = 'LeaseSweepByJob1765040000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX bulk_job_items_running_idx`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE INDEX bulk_job_items_running_idx ON bulk_job_items (lease_expires_at) WHERE status = 'running'`,
    );
  }
}
