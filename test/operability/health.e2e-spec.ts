import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/app';
import { ManualClock, useClock } from '../support/clock';
import { createEngineDatabase, createEngineTestApp, type EngineDatabase } from '../support/engine';
import { expectProblem } from '../support/problem-matcher';
import { bearer, tokenFor } from '../support/tokens';

interface HealthBody {
  status: string;
  info: Record<string, { status: string }>;
  error: Record<string, { status: string; message?: string }>;
  details: Record<string, { status: string; message?: string; applied?: number }>;
}

describe('health', () => {
  let db: EngineDatabase;
  let t: TestApp;

  before(async () => {
    // A database of its own: one test takes a migration away.
    db = await createEngineDatabase();
    // A clock that stands still: the limit's minute cannot roll over between the test's requests.
    t = await createEngineTestApp(db.url, {
      env: { RATE_LIMIT_PER_MINUTE: '2' },
      overrides: [useClock(new ManualClock())],
    });
  });

  after(async () => {
    await t?.close();
    await db?.drop();
  });

  it('answers liveness without a token and without asking the database', async () => {
    const res = await t.http().get('/health/live');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toMatch(/no-store/);
    expect((res.body as HealthBody).status).toBe('ok');
  });

  it('answers readiness with the database and migration checks', async () => {
    const res = await t.http().get('/health/ready');
    expect(res.status).toBe(200);
    const body = res.body as HealthBody;
    expect(body.status).toBe('ok');
    expect(body.details.database.status).toBe('up');
    expect(body.details.migrations).toMatchObject({ status: 'up', applied: expect.any(Number) });
    expect(body.details.migrations.applied).toBeGreaterThanOrEqual(3);
  });

  it('is never rate limited, and ignores a token it does not need', async () => {
    for (let i = 0; i < 5; i++) {
      expect((await t.http().get('/health/ready')).status).toBe(200);
      expect((await t.http().get('/health/live').set(bearer('not-a-token'))).status).toBe(200);
    }
    // The limit itself is in force for the API.
    const auth = bearer(tokenFor('health-check-user'));
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push((await t.http().get('/api/actions/bulk/jobs').set(auth)).status);
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('turns red with a 503 problem naming the failed check when a migration is missing', async () => {
    const [last] = await t.db.query<{ id: number; timestamp: string; name: string }[]>(
      `SELECT id, timestamp, name FROM bulk_jobs_migrations ORDER BY timestamp DESC LIMIT 1`,
    );
    await t.db.query(`DELETE FROM bulk_jobs_migrations WHERE id = $1`, [last.id]);
    try {
      const res = await t.http().get('/health/ready');
      expectProblem(res, 503, { type: 'about:blank', title: 'Service Unavailable' });
      expect(res.headers['retry-after']).toBe('5');
      const body = res.body as { detail: string; checks: HealthBody['details'] };
      expect(body.detail).toMatch(/migrations/);
      expect(body.checks.database.status).toBe('up');
      expect(body.checks.migrations).toMatchObject({ status: 'down', message: `not applied: ${last.name}` });
      // Liveness does not depend on it.
      expect((await t.http().get('/health/live')).status).toBe(200);
    } finally {
      await t.db.query(`INSERT INTO bulk_jobs_migrations (id, timestamp, name) VALUES ($1, $2, $3)`, [
        last.id,
        last.timestamp,
        last.name,
      ]);
    }
    expect((await t.http().get('/health/ready')).status).toBe(200);
  });
});
