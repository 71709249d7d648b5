import type { MigrationInterface, QueryRunner } from 'typeorm';

export class InitBulkJobs1764400000000 implements MigrationInterface {
  name = 'InitBulkJobs1764400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE bulk_jobs (
        id              uuid PRIMARY KEY,
        owner           text NOT NULL,
        action          text NOT NULL,
        params          jsonb NOT NULL DEFAULT '{}'::jsonb,
        options         jsonb NOT NULL DEFAULT '{}'::jsonb,
        status          text NOT NULL DEFAULT 'pending',
        total_items     integer NOT NULL DEFAULT 0,
        succeeded_items integer NOT NULL DEFAULT 0,
        failed_items    integer NOT NULL DEFAULT 0,
        skipped_items   integer NOT NULL DEFAULT 0,
        error           jsonb,
        created_at      timestamptz(3) NOT NULL DEFAULT now(),
        started_at      timestamptz(3),
        finished_at     timestamptz(3),
        updated_at      timestamptz(3) NOT NULL DEFAULT now(),
        deleted_at      timestamptz(3),
        purge_at        timestamptz(3),
        CONSTRAINT bulk_jobs_status_check CHECK (status IN
          ('pending', 'running', 'cancelling', 'completed', 'failed', 'cancelled')),
        CONSTRAINT bulk_jobs_counters_check CHECK (
          succeeded_items >= 0 AND failed_items >= 0 AND skipped_items >= 0
          AND succeeded_items + failed_items + skipped_items <= total_items),
        CONSTRAINT bulk_jobs_deleted_terminal_check CHECK (
          deleted_at IS NULL OR status IN ('completed', 'failed', 'cancelled'))
      )`);
    await q.query(`CREATE INDEX bulk_jobs_owner_created_idx ON bulk_jobs (owner, created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX bulk_jobs_created_idx ON bulk_jobs (created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX bulk_jobs_purge_idx ON bulk_jobs (purge_at) WHERE purge_at IS NOT NULL`);
    await q.query(
      `CREATE INDEX bulk_jobs_active_idx ON bulk_jobs (created_at, id)
         WHERE status IN ('pending', 'running', 'cancelling') AND deleted_at IS NULL`,
    );

    await q.query(`
      CREATE TABLE bulk_job_items (
        job_id           uuid NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
        seq              integer NOT NULL,
        target_id        text NOT NULL,
        data             jsonb,
        status           text NOT NULL DEFAULT 'pending',
        attempts         integer NOT NULL DEFAULT 0,
        last_error       jsonb,
        result           jsonb,
        available_at     timestamptz(3) NOT NULL DEFAULT now(),
        lease_owner      text,
        lease_expires_at timestamptz(3),
        started_at       timestamptz(3),
        finished_at      timestamptz(3),
        CONSTRAINT bulk_job_items_pkey PRIMARY KEY (job_id, seq),
        CONSTRAINT bulk_job_items_status_check CHECK (status IN
          ('pending', 'running', 'succeeded', 'failed', 'skipped'))
      )`);
    // Claims scan only pending items, in order, per job.
    await q.query(
      `CREATE INDEX bulk_job_items_pending_idx ON bulk_job_items (job_id, seq)
         WHERE status = 'pending'`,
    );
    // Lease sweeps scan only running items.
    await q.query(
      `CREATE INDEX bulk_job_items_running_idx ON bulk_job_items (lease_expires_at)
         WHERE status = 'running'`,
    );
    // Failed items are few; this keeps "show me the failures" of a large job cheap.
    await q.query(
      `CREATE INDEX bulk_job_items_failed_idx ON bulk_job_items (job_id, seq)
         WHERE status = 'failed'`,
    );

    await q.query(`
      CREATE TABLE bulk_job_idempotency_keys (
        owner        text NOT NULL,
        key          text NOT NULL,
        request_hash text NOT NULL,
        job_id       uuid NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
        created_at   timestamptz(3) NOT NULL DEFAULT now(),
        CONSTRAINT bulk_job_idempotency_keys_pkey PRIMARY KEY (owner, key)
      )`);
    await q.query(
      `CREATE INDEX bulk_job_idempotency_keys_created_idx ON bulk_job_idempotency_keys (created_at)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE bulk_job_idempotency_keys`);
    await q.query(`DROP TABLE bulk_job_items`);
    await q.query(`DROP TABLE bulk_jobs`);
  }
}
