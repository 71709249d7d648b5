import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Storage settings of the two tables the workers update all the time
 * (measured in bench/README.md, "Soak"):
 *
 * - bulk_job_items: every item is updated twice (claimed, then recorded),
 *   and neither update can be HOT (status is in the partial indexes), so a
 *   large job leaves two dead tuples per item behind. With the default scale
 *   factor (20% of the table) autovacuum of a 10M-row table waits for 2M
 *   dead tuples, and the claim's index scan over the pending items wades
 *   through their dead entries meanwhile. Vacuum after 1% (plus 10,000),
 *   without cost-based sleeps long enough to fall behind; analyze after 2%
 *   (the claim's plan depends on how many items are pending). Fill factor
 *   ITEMS_FILLFACTOR leaves room on each page for the claimed version of its
 *   rows, so that a claim writes the new versions beside the old ones
 *   instead of extending the table.
 * - bulk_jobs: a running job's row is updated by every claim and every
 *   recorded batch, with HOT updates (no indexed column changes); a fill
 *   factor of 70 keeps room on the page for them, and a small threshold
 *   vacuums the dead versions of such a small, hot table often.
 */
const ITEMS_FILLFACTOR = 90;

export class HotTableStorage1764700000000 implements MigrationInterface {
  name = 'HotTableStorage1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE bulk_job_items SET (
        fillfactor = ${ITEMS_FILLFACTOR},
        autovacuum_vacuum_scale_factor = 0.01,
        autovacuum_vacuum_threshold = 10000,
        autovacuum_vacuum_insert_scale_factor = 0.05,
        autovacuum_analyze_scale_factor = 0.02,
        autovacuum_vacuum_cost_delay = 1,
        autovacuum_vacuum_cost_limit = 2000
      )`);
    await q.query(`
      ALTER TABLE bulk_jobs SET (
        fillfactor = 70,
        autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_vacuum_threshold = 1000,
        autovacuum_analyze_scale_factor = 0.05,
        autovacuum_vacuum_cost_delay = 1,
        autovacuum_vacuum_cost_limit = 2000
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE bulk_job_items RESET (
        fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
        autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor,
        autovacuum_vacuum_cost_delay, autovacuum_vacuum_cost_limit
      )`);
    await q.query(`
      ALTER TABLE bulk_jobs RESET (
        fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
        autovacuum_analyze_scale_factor, autovacuum_vacuum_cost_delay, autovacuum_vacuum_cost_limit
      )`);
  }
}
