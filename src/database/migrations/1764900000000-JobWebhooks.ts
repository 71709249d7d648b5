import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The webhook outbox (entity BulkJobWebhook) and the trigger that fills it.
 * The trigger runs in the transaction of every change of a job's status,
 * whichever statement makes it (the engine's, a cancel's), so that the event
 * of a job's end is committed with the end itself, or not at all. It fires
 * only when a job that asked for it (`options.notify`) enters a terminal
 * status; a job inserted already finished is covered too.
 */
export class JobWebhooks1764900000000 implements MigrationInterface {
  name = 'JobWebhooks1764900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE bulk_job_webhooks (
        id uuid NOT NULL,
        job_id uuid NOT NULL,
        url text NOT NULL,
        body text,
        status text NOT NULL DEFAULT 'pending',
        attempts integer NOT NULL DEFAULT 0,
        last_error text,
        next_attempt_at timestamp(3) with time zone NOT NULL DEFAULT now(),
        delivered_at timestamp(3) with time zone,
        created_at timestamp(3) with time zone NOT NULL DEFAULT now(),
        CONSTRAINT bulk_job_webhooks_pkey PRIMARY KEY (id),
        CONSTRAINT bulk_job_webhooks_status_check CHECK (status IN ('pending', 'delivered', 'failed')),
        CONSTRAINT bulk_job_webhooks_job_id_fkey FOREIGN KEY (job_id) REFERENCES bulk_jobs (id) ON DELETE CASCADE
      )`);
    await q.query(
      `CREATE INDEX bulk_job_webhooks_due_idx ON bulk_job_webhooks (next_attempt_at) WHERE status = 'pending'`,
    );
    await q.query(`CREATE INDEX bulk_job_webhooks_job_idx ON bulk_job_webhooks (job_id, created_at)`);
    await q.query(`
      CREATE FUNCTION bulk_jobs_notify_finished() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO bulk_job_webhooks (id, job_id, url)
        VALUES (gen_random_uuid(), NEW.id, NEW.options->'notify'->>'url');
        RETURN NULL;
      END $$`);
    await q.query(`
      CREATE TRIGGER bulk_jobs_notify_finished AFTER UPDATE OF status ON bulk_jobs
      FOR EACH ROW
      WHEN (NEW.status IN ('completed', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status
            AND NEW.options->'notify'->>'url' IS NOT NULL)
      EXECUTE FUNCTION bulk_jobs_notify_finished()`);
    await q.query(`
      CREATE TRIGGER bulk_jobs_notify_inserted_finished AFTER INSERT ON bulk_jobs
      FOR EACH ROW
      WHEN (NEW.status IN ('completed', 'failed', 'cancelled') AND NEW.options->'notify'->>'url' IS NOT NULL)
      EXECUTE FUNCTION bulk_jobs_notify_finished()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER bulk_jobs_notify_inserted_finished ON bulk_jobs`);
    await q.query(`DROP TRIGGER bulk_jobs_notify_finished ON bulk_jobs`);
    await q.query(`DROP FUNCTION bulk_jobs_notify_finished()`);
    await q.query(`DROP TABLE bulk_job_webhooks`);
  }
}
