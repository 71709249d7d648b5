import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import type { Response } from 'supertest';
import { createAppLogger } from '../../src/logging/app-logger';
import { JOBS } from '../support/api';
import { bootTestApp, type TestApp } from '../support/app';
import { captureLogs } from '../support/boot';
import { createEngineDatabase, type EngineDatabase } from '../support/engine';
import { insertJob, jobRow } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { testEnv } from '../support/test-env';
import { bearer, newOwner, tokenFor } from '../support/tokens';
import { waitFor } from '../support/wait';

/** What the database says when the test's trigger refuses a soft delete: none of it may reach a client. */
const REFUSAL = 'soft delete refused by the test trigger';
/** The advisory lock key the pausing trigger waits on. */
const PAUSE_KEY = 4_242_001;

/**
 * The seeded DELETE when its statements fail or wait: on a database of its
 * own, where the test installs triggers on bulk_jobs and holds locks.
 */
describe('DELETE /api/actions/bulk/jobs/{id} when the database fails or holds it', () => {
  let db: EngineDatabase;
  let t: TestApp;
  const logs = captureLogs();
  const clients: Client[] = [];

  before(async () => {
    db = await createEngineDatabase();
    const env = { LOG_LEVEL: 'warn', LOG_FORMAT: 'json' };
    t = await bootTestApp({ databaseUrl: db.url, env, logger: createAppLogger(testEnv(env), logs) });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await t?.close();
    await db?.drop();
  });

  /** A connection of the test's own, beside the app's pool. */
  /**
   * A connection of the test's own, in a transaction: its backend is only known
   * inside one (behind a pooler in transaction mode the next may run elsewhere).
   */
  async function connect(): Promise<{ client: Client; pid: number }> {
    const client = new Client({ connectionString: db.url });
    await client.connect();
    clients.push(client);
    await client.query('BEGIN');
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    return { client, pid: rows[0].pid };
  }

  /** The backends waiting on a lock that `pid` holds. */
  async function blockedBy(pid: number): Promise<number[]> {
    const rows: { pid: number }[] = await t.db.query(
      'SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))',
      [pid],
    );
    return rows.map((r) => r.pid);
  }

  const del = (owner: string, id: string, requestId: string) =>
    t
      .http()
      .delete(`${JOBS}/${id}`)
      .set(bearer(tokenFor(owner)))
      .set('X-Request-Id', requestId);

  /** A BEFORE UPDATE trigger on the soft delete of a job (deleted_at set), with `body` as its PL/pgSQL. */
  async function onSoftDelete(name: string, body: string): Promise<() => Promise<void>> {
    await t.db.query(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ${body} END $$`);
    await t.db.query(
      `CREATE TRIGGER ${name} BEFORE UPDATE ON bulk_jobs FOR EACH ROW
       WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL) EXECUTE FUNCTION ${name}()`,
    );
    return async () => {
      await t.db.query(`DROP TRIGGER ${name} ON bulk_jobs`);
      await t.db.query(`DROP FUNCTION ${name}()`);
    };
  }

  it('answers a failed statement with a generic 500 problem, logs it with the request id, and deletes nothing', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const removeTrigger = await onSoftDelete(
      'refuse_soft_delete',
      `RAISE EXCEPTION '${REFUSAL}: UPDATE bulk_jobs of %', OLD.id USING HINT = 'drop the trigger';`,
    );
    let res: Response;
    try {
      res = await del(owner, id, 'delete-fails-500');
    } finally {
      await removeTrigger();
    }

    expectProblem(res, 500, {
      type: 'about:blank',
      title: 'Internal Server Error',
      detail: 'The server encountered an unexpected error.',
      requestId: 'delete-fails-500',
    });
    // Nothing of the database's answer: no message, hint, SQLSTATE, table, SQL or stack.
    expect(Object.keys(res.body as object).sort()).toEqual(
      ['type', 'title', 'status', 'detail', 'instance', 'error', 'requestId'].sort(),
    );
    for (const secret of [REFUSAL, 'drop the trigger', 'P0001', 'bulk_jobs', 'plpgsql', 'trigger', ' at '])
      expect(res.text).not.toContain(secret);
    expect((await jobRow(t.db, id))?.deleted_at).toBeNull();

    // The server keeps what it did not send: the cause, logged with the request id.
    const line = await waitFor('the error to be logged', () =>
      logs.lines.find((l) => l.level === 'error' && String(l.msg).includes('requestId=delete-fails-500')),
    );
    expect(line).toMatchObject({ context: 'ProblemDetails' });
    expect(String(line.msg)).toContain(`DELETE ${JOBS}/${id} failed with 500`);
    expect(String(line.stack)).toContain(REFUSAL);

    // The trigger was the only reason: without it the same request deletes the job.
    const again = await del(owner, id, 'delete-fails-500-again');
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ job_id: id, status: 'completed', success: true });
  });

  it('answers 503 with Retry-After: 1 when a DELETE that lost a race finds the job held past 2 s, and deletes nothing', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    // The conditional UPDATE matches nothing, as when the job changed under it (the trigger skips the
    // row), after waiting on an advisory lock the test holds: the test then queues its own lock on
    // the table behind the UPDATE's, so that it holds the job before the DELETE, which reads the job
    // as deletable, comes back to lock it.
    const removeTrigger = await onSoftDelete(
      'pause_and_skip_soft_delete',
      `PERFORM pg_advisory_xact_lock_shared(${PAUSE_KEY}); RETURN NULL;`,
    );
    const pause = await connect();
    const holder = await connect();
    let res: Response;
    try {
      await pause.client.query('SELECT pg_advisory_xact_lock($1)', [PAUSE_KEY]);
      const pending = Promise.resolve(del(owner, id, 'delete-held-503'));
      const [deleting] = await waitFor('the DELETE to wait in its UPDATE', async () => {
        const pids = await blockedBy(pause.pid);
        return pids.length > 0 && pids;
      });

      const holding = holder.client.query('LOCK TABLE bulk_jobs IN EXCLUSIVE MODE');
      await waitFor('the holder to queue behind the UPDATE', async () =>
        (await blockedBy(deleting)).includes(holder.pid),
      );
      await pause.client.query('COMMIT');
      await holding;
      // The holder has the table (and now the row); the DELETE waits for them under its 2 s lock_timeout.
      await holder.client.query('SELECT 1 FROM bulk_jobs WHERE id = $1 FOR UPDATE', [id]);
      res = await pending;
    } finally {
      await holder.client.query('ROLLBACK');
      await pause.client.query('ROLLBACK');
      await removeTrigger();
    }

    expectProblem(res, 503, {
      type: 'about:blank',
      title: 'Service Unavailable',
      detail: 'The job is being changed right now. Retry the request.',
      requestId: 'delete-held-503',
    });
    expect(res.headers['retry-after']).toBe('1');
    const row = await jobRow(t.db, id);
    expect(row?.deleted_at).toBeNull();
    expect(row?.status).toBe('completed');
    const line = await waitFor('the 503 to be logged', () =>
      logs.lines.find((l) => l.level === 'warn' && String(l.msg).includes('requestId=delete-held-503')),
    );
    expect(String(line.msg)).toContain('answered 503');

    // Retried once nothing holds the job, the same request deletes it.
    const again = await del(owner, id, 'delete-held-503-again');
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ job_id: id, status: 'completed', success: true });
  });
});
