import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * rate_limit_windows: the per-principal rate limit, counted once for every
 * API process (src/limits/shared-rate-limiter.ts).
 *
 * UNLOGGED: each reservation is a one-statement transaction on this table
 * alone, and without WAL its commit waits for no flush. What a crash or a
 * failover to a standby loses (the table comes back empty) is at most the
 * current and the previous minute's counts: callers get a fresh minute once.
 * A fill factor of 70 leaves room on each page for the next versions of its
 * rows (a reservation is a HOT update: no indexed column changes).
 */
export class SharedRateLimits1765030000000 implements MigrationInterface {
  name = 'SharedRateLimits1765030000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE UNLOGGED TABLE rate_limit_windows (
        key text NOT NULL,
        window_start timestamp(3) with time zone NOT NULL,
        used integer NOT NULL,
        granted integer NOT NULL,
        CONSTRAINT rate_limit_windows_pkey PRIMARY KEY (key, window_start),
        CONSTRAINT rate_limit_windows_used_check CHECK (granted >= 0 AND used >= granted)
      ) WITH (fillfactor = 70)`);
    await q.query(`CREATE INDEX rate_limit_windows_window_start_idx ON rate_limit_windows (window_start)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rate_limit_windows`);
  }
}
