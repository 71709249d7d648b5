import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Two columns of bulk_jobs that let several workers share one job, both
 * written by every claim:
 * - last_claimed_by: the worker that made the job's last claim. A worker that
 *   finds another worker's name there is not alone on the job and claims from
 *   it one claim at a time;
 * - claim_frontier: one past the highest seq claimed so far. A claim that
 *   continues the job starts there, so that it does not walk over the items
 *   other workers claimed since this worker's last claim.
 * Two workers of two claims each put four claims of one job at the database
 * at once, each skipping the others' items, and were slower together than
 * one worker alone (bench/README.md, "Engine", items 45-47).
 * Nullable or with a constant default: adding them rewrites nothing.
 */
export class SharedJobClaims1765050000000 implements MigrationInterface {
  name = 'SharedJobClaims1765050000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE bulk_jobs ADD COLUMN last_claimed_by text, ADD COLUMN claim_frontier integer NOT NULL DEFAULT 0`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE bulk_jobs DROP COLUMN last_claimed_by, DROP COLUMN claim_frontier`);
  }
}
