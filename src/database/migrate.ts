import { type DataSource, MigrationExecutor } from 'typeorm';
import type { Queryable } from './sql';

// Arbitrary, fixed key: every process of this service serialises migrations on it.
const MIGRATION_LOCK_KEY = 746_201_915;

/**
 * Applies pending migrations in one transaction that first takes a
 * transaction-scoped advisory lock, so that several API and worker processes
 * starting together against one database run them once, one after the other:
 * the next one waits for the lock, then finds nothing pending. The lock ends
 * with the transaction, so this holds through a pooler in transaction mode
 * too (a session lock would be taken on one server connection and released
 * on another). All the migrations apply or none does; a migration that cannot
 * run in a transaction (`transaction = false`) is refused.
 */
export async function runMigrationsLocked(dataSource: DataSource): Promise<string[]> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.startTransaction();
    try {
      await runner.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      // On this runner, whose transaction is open, the executor reads what is
      // applied and applies the rest inside it (mode 'all' starts no other).
      const executor = new MigrationExecutor(dataSource, runner);
      executor.transaction = 'all';
      const applied = await executor.executePendingMigrations();
      await runner.commitTransaction();
      return applied.map((m) => m.name);
    } catch (err) {
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      throw err;
    }
  } finally {
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
