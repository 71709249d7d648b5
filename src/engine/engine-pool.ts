import { Logger } from '@nestjs/common';
import { Pool } from 'pg';
import { poolSettings } from '../database/data-source-options';
import { poolerMode } from '../database/pooler';

export const ENGINE_POOL = Symbol('ENGINE_POOL');
export const CLAIM_POOL = Symbol('CLAIM_POOL');

/**
 * How long a claim waits for a job row. A claim holds pending items while it
 * waits, and the API's cancel waits for pending items while it holds the job
 * row: the claim must be the one that gives up.
 */
export const CLAIM_LOCK_TIMEOUT_MS = 200;

/**
 * How long a worker's transaction may sit idle between its statements. A
 * healthy one waits only for the worker's next statement, milliseconds; one
 * whose worker was cut off from the network mid-transaction (no FIN reaches
 * the server, nor a pooler in between) would otherwise hold its item and job
 * rows, and so every other worker's claims, writes and sweeps of the job,
 * for the connection's idle_in_transaction_session_timeout (60 s). The server
 * ends it after this long instead and the rows are free again; for the worker
 * it is a failed statement like any other.
 */
export const ENGINE_IDLE_IN_TRANSACTION_MS = 5000;

/** A worker's transaction: BEGIN with the idle limit above, in one round trip. */
export const BEGIN_ENGINE = `BEGIN; SET LOCAL idle_in_transaction_session_timeout = ${ENGINE_IDLE_IN_TRANSACTION_MS}`;

/** A claim's transaction behind a pooler in transaction mode, where the connection cannot carry lock_timeout. */
export const BEGIN_WITH_CLAIM_LOCK_TIMEOUT = `${BEGIN_ENGINE}; SET LOCAL lock_timeout = ${CLAIM_LOCK_TIMEOUT_MS}`;

/**
 * The planner's price of a random page read on the workers' connections.
 * The default (4, for spinning disks) prices the result write's primary-key
 * lookups, one per item, above a scan of the whole items table for tables up
 * to a few hundred thousand rows; with the statistics of a freshly inserted
 * job (every item pending, no lease owner) the write then scanned the table
 * and joined its input with a nested loop: 1.9 s per batch of 1,000 at 150,000
 * items against 55 ms with this price (bench/README.md, "Engine"). The items
 * the workers touch are the recently written ones, in memory.
 */
export const ENGINE_RANDOM_PAGE_COST = 1.1;

/**
 * The workers' own connections, beside TypeORM's pool. Claims and result
 * writes are the hottest statements of the service: on connections of their
 * own they never queue behind API requests in an embedded process (or the
 * other way round), and each statement is one plain round trip without
 * TypeORM's query-runner bookkeeping. The main pool serves result writes,
 * lease renewal and the sweep (one each at a time); claims have connections
 * of their own (one per claim in flight, WORKER_CLAIMS_IN_FLIGHT) with a
 * short lock_timeout.
 */
export function createEnginePool(
  url: string,
  purpose: 'main' | 'claim',
  connectTimeoutMs: number,
  leaseMs?: number,
  claimsInFlight = 1,
): Pool {
  const pool = new Pool({
    // A host cut off from the database (a partition, not a closed connection)
    // gets no answer and no error: TCP retries for many minutes. The client
    // gives up on a statement after half a lease, so that a renewal sent a
    // third of a lease after the last one fails before the lease runs out;
    // the connection is then closed (a statement without SQLSTATE breaks it)
    // and the next one is made anew once the network is back.
    ...(leaseMs ? { query_timeout: Math.max(5000, Math.floor(leaseMs / 2)) } : {}),
    ...poolSettings({ url, poolSize: purpose === 'claim' ? claimsInFlight : 3, connectTimeoutMs }),
    connectionString: url,
    application_name: purpose === 'claim' ? 'bulk-jobs-worker-claim' : 'bulk-jobs-worker',
    // Behind a pooler in transaction mode no startup parameter gets through: the
    // claim sets its lock_timeout per transaction (EngineStore.claim), and the
    // role carries random_page_cost (README, "Behind a connection pooler").
    ...(poolerMode(url) === 'transaction'
      ? {}
      : {
          options: `-c random_page_cost=${ENGINE_RANDOM_PAGE_COST}`,
          ...(purpose === 'claim' ? { lock_timeout: CLAIM_LOCK_TIMEOUT_MS } : {}),
        }),
  });
  const logger = new Logger('EnginePool');
  // An idle connection that breaks must not crash the process; the next checkout reconnects.
  pool.on('error', (err) => logger.warn(`idle database connection failed: ${err.message}`));
  return pool;
}
