import type { Pool } from 'pg';

/**
 * A connection pooler in transaction mode (PgBouncer's `pool_mode =
 * transaction`, RDS Proxy, Supavisor) hands each transaction, or each
 * statement outside one, to whichever server connection is free: nothing a
 * session sets survives it. DATABASE_URL says the service is behind one with
 * `?pooler=transaction` (its other values: `none`, the default, for a direct
 * connection or a pooler in session mode). Behind one the service:
 *
 * - sends no settings as startup parameters (PgBouncer refuses unknown ones,
 *   and would lose them if told to ignore them): statement_timeout and
 *   idle_in_transaction_session_timeout are then the role's or the
 *   database's (`ALTER ROLE … SET`, or the pooler's connect_query), and the
 *   claim's lock_timeout is set for its own transaction (SET LOCAL);
 * - takes the migration lock for the migrations' one transaction
 *   (pg_advisory_xact_lock), as it does everywhere;
 * - uses no named (prepared) statements (on a direct connection the API
 *   prepares its hottest two, Database.prepares), and, as everywhere, no
 *   LISTEN or session `SET`.
 */
export type PoolerMode = 'none' | 'transaction';

export const POOLER_MODES: readonly PoolerMode[] = ['none', 'transaction'];

/** The pooler mode a connection URL declares (`?pooler=…`); `none` when it declares none. */
export function poolerMode(url: string | undefined): PoolerMode {
  if (!url) return 'none';
  let value: string | null;
  try {
    value = new URL(url).searchParams.get('pooler');
  } catch {
    return 'none';
  }
  if (value === null || value === '') return 'none';
  if ((POOLER_MODES as readonly string[]).includes(value)) return value as PoolerMode;
  throw new Error(`unknown pooler mode "${value}" in the database URL (one of: ${POOLER_MODES.join(', ')})`);
}

/** Whether statements on `pool` may land on a different server connection at each transaction. */
export function behindTransactionPooler(pool: Pool): boolean {
  return poolerMode(pool.options.connectionString) === 'transaction';
}
