import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { createAppLogger } from '../../src/logging/app-logger';
import { bootTestApp, type TestApp } from '../support/app';
import { captureLogs } from '../support/boot';
import { createEngineDatabase, type EngineDatabase } from '../support/engine';
import { insertJob, jobRow } from '../support/factories';
import { testEnv } from '../support/test-env';
import { newOwner } from '../support/tokens';
import { sleep, waitFor } from '../support/wait';

/** The shortest interval the configuration allows. */
const INTERVAL_MS = 1000;
const DAY_MS = 86_400_000;

/**
 * The purge timer of a running app (BULK_JOBS_PURGE_INTERVAL_MS), on a
 * database of its own: nothing but its ticks removes jobs there, and the
 * test may install a trigger on bulk_jobs and lock the table.
 */
describe('the periodic purge', () => {
  let db: EngineDatabase;
  let t: TestApp;
  const logs = captureLogs();

  before(async () => {
    db = await createEngineDatabase();
    const env = { LOG_LEVEL: 'log', LOG_FORMAT: 'json', BULK_JOBS_PURGE_INTERVAL_MS: String(INTERVAL_MS) };
    t = await bootTestApp({ databaseUrl: db.url, env, logger: createAppLogger(testEnv(env), logs) });
  });

  after(async () => {
    await t?.close();
    await db?.drop();
  });

  const purgerLines = () => logs.lines.filter((l) => l.context === 'BulkJobsPurger');
  const gone = async (id: string) => (await jobRow(t.db, id)) === undefined;
  const itemCount = async (id: string) => {
    const rows: { n: number }[] = await t.db.query(
      'SELECT count(*)::int AS n FROM bulk_job_items WHERE job_id = $1',
      [id],
    );
    return rows[0].n;
  };
  const expiredJob = (owner: string) =>
    insertJob(t.db, {
      owner,
      status: 'completed',
      items: 3,
      deletedAt: new Date(Date.now() - 31 * DAY_MS),
      purgeAt: new Date(Date.now() - 60_000),
    });

  it('removes an expired job with its items on its own, and keeps a retained one and a live one', async () => {
    const owner = newOwner();
    const expired = await expiredJob(owner);
    const retained = await insertJob(t.db, {
      owner,
      status: 'cancelled',
      deletedAt: new Date(),
      purgeAt: new Date(Date.now() + DAY_MS),
    });
    const live = await insertJob(t.db, { owner, status: 'completed' });

    await waitFor('a tick to purge the expired job', () => gone(expired));
    expect(await itemCount(expired)).toBe(0);
    expect(await jobRow(t.db, retained)).toMatchObject({ status: 'cancelled', deleted_at: expect.any(Date) });
    expect(await itemCount(retained)).toBe(3);
    expect(await jobRow(t.db, live)).toMatchObject({ status: 'completed', deleted_at: null });
    await waitFor('the purge to be logged', () =>
      purgerLines().find((l) => l.msg === 'purged 1 deleted job(s) past their retention'),
    );
  });

  it('logs a tick that fails, and the next tick still runs', async () => {
    const expired = await expiredJob(newOwner());
    await t.db.query(
      `CREATE FUNCTION refuse_purge() RETURNS trigger LANGUAGE plpgsql
       AS $$ BEGIN RAISE EXCEPTION 'purge refused by the test trigger'; END $$`,
    );
    await t.db.query(
      'CREATE TRIGGER refuse_purge BEFORE DELETE ON bulk_jobs FOR EACH STATEMENT EXECUTE FUNCTION refuse_purge()',
    );
    try {
      const failed = await waitFor('a failed tick to be logged', () =>
        purgerLines().find((l) => l.level === 'warn' && String(l.msg).startsWith('purge failed:')),
      );
      expect(String(failed.msg)).toContain('purge refused by the test trigger');
      expect(await gone(expired)).toBe(false);
    } finally {
      await t.db.query('DROP TRIGGER refuse_purge ON bulk_jobs');
      await t.db.query('DROP FUNCTION refuse_purge()');
    }
    await waitFor('a later tick to purge the job', () => gone(expired));
    expect(await itemCount(expired)).toBe(0);
  });

  it('does not start a tick while the previous one still runs', async () => {
    const expired = await expiredJob(newOwner());
    // Writes to bulk_jobs wait while the test holds the table in SHARE mode: a purge waits with them.
    const holder = new Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE bulk_jobs IN SHARE MODE');
      const { rows } = await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const waitingPurges = async () => {
        const found: { n: number }[] = await t.db.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE '%DELETE FROM bulk_jobs WHERE id = %'`,
          [rows[0].pid],
        );
        return found[0].n;
      };
      await waitFor('a purge to wait on the table', async () => (await waitingPurges()) > 0);
      // Several intervals go by: a timer without the guard would have sent a purge each time.
      await sleep(INTERVAL_MS * 4);
      expect(await waitingPurges()).toBe(1);
      expect(await gone(expired)).toBe(false);
      await holder.query('ROLLBACK');
    } finally {
      await holder.end();
    }
    await waitFor('the waiting purge to finish', () => gone(expired));
  });
});
