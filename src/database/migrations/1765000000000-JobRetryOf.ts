import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * retry_of: the job whose failed (and skipped) items a job retries
 * (POST /jobs/{id}/retry). No foreign key: the original may be purged before
 * its retry, and the retry still says where it came from.
 */
export class JobRetryOf1765000000000 implements MigrationInterface {
  name = 'JobRetryOf1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE bulk_jobs ADD COLUMN retry_of uuid`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE bulk_jobs DROP COLUMN retry_of`);
  }
}
