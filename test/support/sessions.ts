import type { DataSource } from 'typeorm';

/**
 * Sessions of this database that are running the items COPY right now: the
 * uploads that hold a connection, counted on the server, apart from the
 * short statements (a rate-limit reservation, a sweep) that share the pool.
 */
export async function activeCopies(db: DataSource): Promise<number> {
  const rows: { n: number }[] = await db.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND state = 'active' AND query ILIKE 'COPY bulk_job_items%'`,
  );
  return rows[0].n;
}
