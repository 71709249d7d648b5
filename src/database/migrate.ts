import type { DataSource } from 'typeorm';

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

/** True when every migration the code knows of has been applied. */
export async function migrationsUpToDate(dataSource: DataSource): Promise<boolean> {
  return !(await dataSource.showMigrations());
}
