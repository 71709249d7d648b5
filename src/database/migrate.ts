import type { DataSource } from 'typeorm';
import type { Queryable } from './sql';

// Arbitrary, fixed key: every process of this service serialises migrations on it.
const MIGRATION_LOCK_KEY = 746_201_915;

/**
 * Applies pending migrations while holding a session advisory lock, so that
 * several API and worker processes starting together against one database
 * run them once, one after the other.
 */
export async function runMigrationsLocked(dataSource: DataSource): Promise<string[]> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    return applied.map((m) => m.name);
  } finally {
    await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await runner.release();
  }
}

/**
 * The migrations this code knows of that the database has not applied,
 * read on `on` (the connections the caller serves requests with).
 */
export async function pendingMigrations(dataSource: DataSource, on: Queryable): Promise<string[]> {
  const table = dataSource.options.migrationsTableName ?? 'migrations';
  const { rows } = await on.query<{ name: string }>(`SELECT name FROM "${table}"`);
  const applied = new Set(rows.map((r) => r.name));
  return dataSource.migrations.map((m) => m.name ?? m.constructor.name).filter((name) => !applied.has(name));
}
