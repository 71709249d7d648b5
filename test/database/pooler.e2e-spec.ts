import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { loadEnv } from '../../src/config/env';
import { Database } from '../../src/database/database';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { runMigrationsLocked } from '../../src/database/migrate';
import { prepared } from '../../src/database/sql';
import { poolerMode } from '../../src/database/pooler';
import { CLAIM_LOCK_TIMEOUT_MS, createEnginePool } from '../../src/engine/engine-pool';
import type { EngineStore } from '../../src/engine/engine-store';
import { SCHEMA_ENTITIES } from '../../src/entities';
import { createJob } from '../support/api';
import type { TestApp } from '../support/app';
import {
  createEngineDatabase,
  createEngineTestApp,
  type EngineDatabase,
  handDrivenStore,
} from '../support/engine';
import { newOwner } from '../support/tokens';

/**
 * `?pooler=transaction` on a URL: the service relies on no session state.
 * These specs run on whatever TEST_DATABASE_URL is: the server itself in the
 * usual run (PostgreSQL ignores the parameter's meaning, so what they check
 * is what the service sends and does), or PgBouncer in transaction mode in
 * CI's pooler step, where a session setting or lock would be lost.
 */
function pooled(url: string): string {
  const u = new URL(url);
  u.searchParams.set('pooler', 'transaction');
  return u.toString();
}

/**
 * The same database on the server itself: behind the pooler step's PgBouncer
 * (DIRECT_DATABASE_URL names the server), else `url` without a pooler mode.
 */
function direct(url: string): string {
  const u = new URL(url);
  u.searchParams.delete('pooler');
  const server = process.env.DIRECT_DATABASE_URL;
  if (server) {
    const s = new URL(server);
    u.host = s.host;
    u.username = s.username;
    u.password = s.password;
  }
  return u.toString();
}

async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe('the pooler mode a database URL declares', () => {
  it('is none unless the URL says transaction, and an unknown mode stops the boot', () => {
    expect(poolerMode(undefined)).toBe('none');
    expect(poolerMode('postgres://u@h/db')).toBe('none');
    expect(poolerMode('postgres://u@h/db?pooler=none')).toBe('none');
    expect(poolerMode('postgres://u@h:6432/db?sslmode=disable&pooler=transaction')).toBe('transaction');
    expect(() => poolerMode('postgres://u@h/db?pooler=session')).toThrow(/unknown pooler mode "session"/);
    expect(() => loadEnv({ DATABASE_URL: 'postgres://u@h/db?pooler=statement' })).toThrow(
      /DATABASE_URL: pooler must be none or transaction/,
    );
    expect(loadEnv({ DATABASE_URL: 'postgres://u@h/db?pooler=transaction' }).DATABASE_URL).toContain(
      'pooler=',
    );
  });
});

describe('migrations behind a pooler in transaction mode', () => {
  let db: EngineDatabase;
  const sources: DataSource[] = [];

  before(async () => {
    db = await createEngineDatabase();
  });

  after(async () => {
    for (const s of sources) if (s.isInitialized) await s.destroy();
    await db?.drop();
  });

  it('run once when three processes start together, and leave no lock behind', async () => {
    const url = pooled(db.url);
    for (let i = 0; i < 3; i++) {
      sources.push(
        await new DataSource(dataSourceOptions({ url, poolSize: 2, entities: SCHEMA_ENTITIES })).initialize(),
      );
    }
    const results = await Promise.all(sources.map((s) => runMigrationsLocked(s)));
    const all = sources[0].migrations.map((m) => m.name);
    // One of them applied every migration; the others waited for its lock and found nothing to do.
    expect(results.filter((r) => r.length > 0)).toEqual([all]);
    expect(results.filter((r) => r.length === 0)).toHaveLength(2);
    const applied = await withClient(db.url, async (c) => {
      const { rows } = await c.query<{ name: string }>('SELECT name FROM bulk_jobs_migrations ORDER BY id');
      const locks = await c.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
      );
      return { names: rows.map((r) => r.name), advisoryLocks: locks.rows[0].n };
    });
    expect(applied.names).toEqual(all);
    // A session lock would still be held by a server connection the pooler keeps.
    expect(applied.advisoryLocks).toBe(0);
  });
});

describe('the claim behind a pooler in transaction mode', () => {
  let db: EngineDatabase;
  let t: TestApp;
  let store: EngineStore;

  before(async () => {
    db = await createEngineDatabase();
    t = await createEngineTestApp(db.url);
    const url = pooled(db.url);
    store = handDrivenStore(url);
  });

  after(async () => {
    await store?.onApplicationShutdown();
    await t?.close();
    await db?.drop();
  });

  it('sends no session settings, and still gives up on a locked job row within its lock_timeout', async () => {
    const job = await createJob(t, newOwner(), { action: 'noop', targets: ['a', 'b', 'c'] });
    const claimPool = createEnginePool(pooled(db.url), 'claim', 5000);
    try {
      // What a claim connection carries outside a transaction: nothing of the service's.
      const { rows } = await claimPool.query<{ lock_timeout: string }>('SHOW lock_timeout');
      expect(rows[0].lock_timeout).toBe('0');
    } finally {
      await claimPool.end();
    }

    // Another transaction holds the job's row, as the API's cancel does while it waits for items.
    const holder = new Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT id FROM bulk_jobs WHERE id = $1 FOR UPDATE', [job.id]);
      const started = Date.now();
      const res = await store.claim('worker-pooled:1:a', 10, ['noop'], 60_000, []);
      const waited = Date.now() - started;
      expect(res).toEqual({ kind: 'busy', jobId: job.id });
      expect(waited).toBeGreaterThanOrEqual(CLAIM_LOCK_TIMEOUT_MS - 20);
      // Without the claim's own lock_timeout it would wait for the holder (here: for ever).
      expect(waited).toBeLessThan(10_000);
      // The claim rolled back: no item is leased.
      const items = await t.db.query<{ status: string }[]>(
        'SELECT status FROM bulk_job_items WHERE job_id = $1 ORDER BY seq',
        [job.id],
      );
      expect(items.map((i) => i.status)).toEqual(['pending', 'pending', 'pending']);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }

    // Once the row is free the same claim takes the items.
    const claimed = await store.claim('worker-pooled:1:a', 10, ['noop'], 60_000, []);
    expect(claimed.kind).toBe('claimed');
    expect(claimed.kind === 'claimed' && claimed.items?.seqs).toEqual([0, 1, 2]);
  });
});

describe('prepared statements', () => {
  let db: EngineDatabase;

  before(async () => {
    db = await createEngineDatabase();
  });

  after(async () => {
    await db?.drop();
  });

  it('are prepared once per connection on a direct URL, and not used behind a pooler in transaction mode', async () => {
    const pooledDatabase = new Database({ url: pooled(db.url), poolSize: 1 });
    const database = new Database({ url: direct(db.url), poolSize: 1 });
    try {
      expect(pooledDatabase.prepares).toBe(false);
      expect(database.prepares).toBe(true);
      const statement = prepared<{ n: number }>('spec_prepared_double', 'SELECT :n::int * 2 AS doubled');
      const found = await database.transaction(async (tx) => {
        const runs = [await statement.rows(tx, { n: 2 }), await statement.rows(tx, { n: 21 })];
        expect(runs).toEqual([[{ doubled: 4 }], [{ doubled: 42 }]]);
        // By its text: a pooler that prepares statements itself keeps them under names of its own.
        const { rows } = await tx.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement = $1 AND NOT from_sql',
          [statement.text],
        );
        return rows[0].n;
      });
      expect(found).toBe(1);
      // Unnamed, a statement is parsed at each run and nothing is kept.
      expect(prepared(undefined, 'SELECT 1').preparedAs).toBeUndefined();
    } finally {
      await Promise.all([database.onApplicationShutdown(), pooledDatabase.onApplicationShutdown()]);
    }
  });
});
