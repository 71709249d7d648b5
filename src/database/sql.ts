import type { DataSource, EntityManager } from 'typeorm';

/**
 * Runs hand-written SQL and returns its rows. TypeORM's raw `query()` answers
 * UPDATE and DELETE with `[rows, rowCount]` on PostgreSQL and with the rows for
 * everything else; this evens that out so that `… RETURNING` reads the same
 * as a SELECT.
 */
export async function queryRows<T>(db: DataSource | EntityManager, sql: string, params: unknown[] = []): Promise<T[]> {
  const raw: unknown = await db.query(sql, params);
  if (Array.isArray(raw) && raw.length === 2 && Array.isArray(raw[0]) && typeof raw[1] === 'number') {
    return raw[0] as T[];
  }
  return raw as T[];
}
