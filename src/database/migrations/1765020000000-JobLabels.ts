import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * labels: a client's own key → value strings on a job, filtered on with
 * `GET /jobs?label=key:value` (`labels @> '{"key":"value"}'`), which the GIN
 * index with jsonb_path_ops serves (the smaller of the two jsonb operator
 * classes, and all that containment needs).
 */
export class JobLabels1765020000000 implements MigrationInterface {
  name = 'JobLabels1765020000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE bulk_jobs ADD COLUMN labels jsonb NOT NULL DEFAULT '{}'`);
    await q.query(`CREATE INDEX bulk_jobs_labels_idx ON bulk_jobs USING gin (labels jsonb_path_ops)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX bulk_jobs_labels_idx`);
    await q.query(`ALTER TABLE bulk_jobs DROP COLUMN labels`);
  }
}
