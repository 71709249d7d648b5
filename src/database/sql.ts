import type { Pool } from 'pg';
import { type DataSource, EntityManager } from 'typeorm';

/**
 * Runs hand-written SQL and returns its rows, so that `… RETURNING` reads the
 * same as a SELECT (TypeORM's raw `query()` answers UPDATE and DELETE with
 * `[rows, rowCount]` on PostgreSQL and with the rows for everything else).
 *
 * Outside a transaction the statement goes straight to the pg pool under the
 * DataSource: TypeORM's query runner adds a checkout object, two event
 * broadcasts and several awaits per statement, a measurable share of a
 * request that is one primary-key lookup (bench/README.md). Inside a
 * transaction (an EntityManager with a query runner) it runs on that runner.
 */
export async function queryRows<T>(
  db: DataSource | EntityManager,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const pool = poolOf(db);
  if (pool) return (await pool.query(sql, params)).rows as T[];
  const raw: unknown = await db.query(sql, params);
  if (Array.isArray(raw) && raw.length === 2 && Array.isArray(raw[0]) && typeof raw[1] === 'number') {
    return raw[0] as T[];
  }
  return raw as T[];
}

/** The pg pool of a PostgreSQL DataSource (or of a manager outside a transaction); undefined otherwise. */
function poolOf(db: DataSource | EntityManager): Pool | undefined {
  if (db instanceof EntityManager) {
    if (db.queryRunner) return undefined;
    db = db.connection;
  }
  if (db.options.type !== 'postgres') return undefined;
  return (db.driver as unknown as { master?: Pool }).master;
}

/** `'a', 'b'`: constant strings as SQL literals, for an `IN (…)` list in DDL and in fixed statements. */
export function sqlLiterals(values: readonly string[]): string {
  return values.map((v) => `'${v.replaceAll("'", "''")}'`).join(', ');
}
