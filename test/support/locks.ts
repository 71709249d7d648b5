import type { DataSource, QueryRunner } from 'typeorm';

/** The backend pid of a connected query runner, to find who waits on its locks. */
export async function backendPid(runner: QueryRunner): Promise<number> {
  const rows = (await runner.query('SELECT pg_backend_pid() AS pid')) as { pid: number }[];
  return rows[0].pid;
}

/**
 * Resolves once some other session waits on a lock held by `pid`: proof that
 * a request has reached the database and is blocked, not merely sent.
 */
export async function waitUntilBlockedBy(db: DataSource, pid: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows: { n: number }[] = await db.query(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))',
      [pid],
    );
    if (rows[0].n > 0) return;
    if (Date.now() > deadline) throw new Error(`no session blocked by backend ${pid} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
