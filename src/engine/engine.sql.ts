import { sql } from '../database/sql';
import { skipPendingBatch } from '../jobs/cancel-batch.sql';
import type { OutcomeKind } from './types';

/**
 * Every statement the workers run, in one place: each a named constant with
 * its parameters spelled out (`:name`, see Statement in src/database/sql.ts).
 *
 * Locks, and why they cannot deadlock:
 * - a result write updates its own running items, then locks the rows of
 *   their jobs (in id order) for two short statements;
 * - a claim locks pending items (SKIP LOCKED), then updates the job row at
 *   the end of the same statement. The API's cancel locks the job row and
 *   then waits for pending items, which a claim in flight may hold: the
 *   claim connection's lock_timeout breaks that cycle in favour of the
 *   cancel (the claim rolls back and the worker leaves the job alone for a
 *   moment);
 * - a job with a concurrency or rate limit is claimed with its row locked
 *   first, so that two workers cannot both read the same room;
 * - the lease sweep locks the job row, then its expired items (SKIP LOCKED).
 * The job row is thus held only briefly by writes and claims, which is what
 * lets several workers claim from and write to one large job at once.
 */

/** A job workers may claim from (paused, cancelling, finished and deleted jobs get no new claims). */
const CLAIMABLE = `status IN ('pending', 'running') AND deleted_at IS NULL
  AND action = ANY(:actions::text[])
  AND running_items < COALESCE((options->>'concurrency')::int, 2147483647)`;

/** A job's options.priority (-10 to 10, default 0): claims serve higher priorities first. */
const PRIORITY = `COALESCE((options->>'priority')::int, 0)`;

const PICK = `
  SELECT id, action, params, options, status, xmin AS version, last_claimed_by, claim_frontier,
         (options ? 'concurrency' OR options ? 'rate_limit_per_second') AS limited
  FROM bulk_jobs
  WHERE ${CLAIMABLE} AND claimable_at <= now() AND NOT (id = ANY(:avoid::uuid[]))
  ORDER BY ${PRIORITY} DESC, last_claimed_at ASC NULLS FIRST, created_at, id
  LIMIT 1`;

/**
 * A job with nothing left to claim is looked at again after this long even if
 * nobody says otherwise. Every writer that makes items pending (retries, lease
 * sweeps) also lowers claimable_at, so this is only a safety net, e.g. for
 * items added to a job outside the service.
 */
const RECHECK = `interval '10 seconds'`;

/** How a claim statement gives the job's rate bucket: SQL for the tokens before the claim and the rate per second. */
interface RateBucket {
  tokens: string;
  rate: string;
}

/**
 * The item claim and job update shared by both claim statements; the CTE
 * `target` (id, version, claim_frontier) names the job. Claims up to :count items for worker
 * :worker, leased for :leaseMs ms.
 *
 * Pending items are taken in seq order from the job's first one, through the
 * pending-items index, which holds a dead entry for every item claimed since
 * the last vacuum: a claim late in a large job read thousands of index pages
 * before its first live entry (27 ms of a 53 ms claim at 150,000 items done on
 * a server without autovacuum; bench/README.md, "Engine"). When the target is
 * job :fromJob, the claim starts instead at seq :fromSeq, a hint from the
 * worker (where its last claim of that job began), or at the job's
 * claim_frontier (one past the highest seq any claim of it took), whichever
 * is later: without the frontier, a worker's claims walked over every item
 * other workers had claimed since its last one (bench/README.md, "Engine",
 * item 47). The claim moves the frontier on.
 *
 * Two claims of one job in flight at once (two workers, or a worker's two
 * claim loops) read the same frontier, so without more they took the same
 * items, one of them stepping over each row the other had locked. So a
 * worker asks each full claim to reserve the next :count seqs past the
 * frontier for a next claim of its own (:reserve): the job row's update
 * moves the frontier on by that much more and returns where the range
 * begins. The update reads the row's latest version, so concurrent claims
 * reserve disjoint ranges, and a claim of a reserved range starts there
 * (:fromReserved) rather than at the frontier, which others have moved past
 * it since.
 *
 * Items below the frontier that are pending (a retry, a released item, a
 * lease sweep, a claim that rolled back, a range reserved and not claimed)
 * wait for the worker's next claim from the start, which it makes at
 * least every few claims (WorkerService). The two forms are separate CTEs
 * whose condition on the target is checked once, so that each keeps its own
 * plan: with the bound in the same scan the planner walked the primary key,
 * every processed row of the job, for a claim from the start.
 */
const claimFrom = ({ tokens, rate }: RateBucket) => `
  picked_from AS (
    SELECT seq FROM bulk_job_items
    WHERE job_id = (SELECT id FROM target) AND status = 'pending' AND available_at <= now()
      AND seq >= CASE WHEN :fromReserved THEN :fromSeq ELSE GREATEST(:fromSeq, (SELECT claim_frontier FROM target)) END
      AND (SELECT id FROM target) = :fromJob::uuid
    ORDER BY seq
    LIMIT :count
    FOR UPDATE SKIP LOCKED
  ), picked_all AS (
    SELECT seq FROM bulk_job_items
    WHERE job_id = (SELECT id FROM target) AND status = 'pending' AND available_at <= now()
      AND (SELECT id FROM target) IS DISTINCT FROM :fromJob::uuid
    ORDER BY seq
    LIMIT :count
    FOR UPDATE SKIP LOCKED
  ), picked AS (
    SELECT seq FROM picked_from UNION ALL SELECT seq FROM picked_all
  ), claimed AS (
    UPDATE bulk_job_items i
    SET status = 'running', attempts = i.attempts + 1, lease_owner = :worker,
        lease_expires_at = now() + :leaseMs * interval '1 millisecond',
        started_at = COALESCE(i.started_at, now())
    FROM picked p
    WHERE i.job_id = (SELECT id FROM target) AND i.seq = p.seq
    RETURNING i.seq, i.target_id, i.data, i.attempts
  ), n AS (
    SELECT count(*)::int AS k, max(seq) AS last_seq FROM claimed
  ), job_update AS (
    UPDATE bulk_jobs j SET
      running_items = j.running_items + n.k,
      status = CASE WHEN j.status = 'pending' AND n.k > 0 THEN 'running' ELSE j.status END,
      started_at = CASE WHEN n.k > 0 THEN COALESCE(j.started_at, now()) ELSE j.started_at END,
      last_claimed_at = clock_timestamp(),
      last_claimed_by = :worker,
      claim_frontier = GREATEST(j.claim_frontier, COALESCE(n.last_seq + 1, 0))
                       + CASE WHEN :reserve AND n.k = :count THEN :count ELSE 0 END,
      rate_tokens = ${tokens} - n.k,
      rate_updated_at = CASE WHEN ${tokens} IS NULL THEN NULL ELSE now() END,
      claimable_at = CASE
        WHEN n.k < :count AND j.xmin = t.version THEN COALESCE((
          SELECT min(available_at) FROM bulk_job_items
          WHERE job_id = t.id AND status = 'pending' AND seq NOT IN (SELECT seq FROM picked)
        ), now() + ${RECHECK})
        WHEN ${tokens} - n.k < 1
          THEN now() + (1 - (${tokens} - n.k)) / ${rate} * interval '1 second'
        ELSE j.claimable_at END,
      updated_at = now()
    FROM n, target t
    WHERE j.id = t.id AND (n.k > 0 OR j.status IN ('pending', 'running'))
    RETURNING CASE WHEN :reserve AND n.k = :count THEN (j.claim_frontier - :count)::int END AS reserved_from
  )`;

/**
 * Where a claim of job :fromJob starts (see claimFrom); a null job: from the
 * start. :fromReserved: :fromSeq begins a range an earlier claim reserved
 * for this worker, and the claim starts there exactly. :reserve: a full
 * claim also reserves the next :count seqs past the frontier for this
 * worker's next claim (`reserved_from`).
 */
export interface ClaimFrom {
  fromJob: string | null;
  fromSeq: number;
  fromReserved: boolean;
  reserve: boolean;
}

/**
 * The claimed items as arrays in one row, so that a claim is one row to
 * parse; as JSON arrays, which the driver reads with JSON.parse, several
 * times cheaper than its parser of PostgreSQL's array literals.
 */
const CLAIMED_ARRAYS = `
  SELECT json_agg(seq) AS seqs, json_agg(target_id) AS target_ids,
         json_agg(data) AS datas, json_agg(attempts) AS attempts
  FROM claimed`;

interface PickParams {
  /** The actions this worker has. */
  actions: string[];
  /** Jobs to leave alone for now. */
  avoid: string[];
}

/**
 * One round trip for the usual claim. Picks, from the highest priority that
 * has a job to claim from, and round robin within it, the job served
 * least recently (never served first) whose backoff or rate limit allows a
 * claim now, except the jobs in :avoid - without locking it: several workers
 * may pick the same job and claim disjoint items. If the job has no
 * concurrency or rate limit, claims up to :count of its pending items in seq
 * order (SKIP LOCKED), leases them to worker :worker for :leaseMs ms, and then updates
 * the job in the same statement: running_items, pending → running, the
 * round-robin stamp and the claiming worker, and claimable_at - when fewer items were found than
 * asked for, the earliest pending item it did not take: in the future for a
 * retry's backoff, in the past for items another claim holds right now
 * (which may yet roll back); nothing pending: see RECHECK. That is computed
 * from this statement's snapshot, so it is stored only if no one changed the
 * job row since (same xmin); otherwise the next claim looks again.
 * A limited job is returned without items: see CLAIM_LIMITED. `shared`: the
 * job's last claim before this one was another worker's.
 */
export const CLAIM_NEXT = sql<PickParams & ClaimFrom & { worker: string; leaseMs: number; count: number }>(`
  WITH job AS (${PICK}
  ), target AS (
    SELECT id, version, claim_frontier FROM job WHERE NOT limited
  ),${claimFrom({ tokens: 'NULL::float8', rate: 'NULL::float8' })}
  SELECT job.id, job.action, job.params, job.options, job.status, job.limited,
         job.last_claimed_by IS DISTINCT FROM :worker AND job.last_claimed_by IS NOT NULL AS shared,
         (SELECT reserved_from FROM job_update) AS reserved_from, c.*
  FROM job, (${CLAIMED_ARRAYS}) c`);

/** The job CLAIM_NEXT would pick now. */
export const PICK_NEXT = sql<PickParams>(`SELECT id FROM (${PICK}) next`);

/** A limited job: lock its row and read its room, if it is still claimable. */
export const LOCK_LIMITED_JOB = sql<{ actions: string[]; jobId: string }>(`
  SELECT running_items, rate_tokens,
         EXTRACT(EPOCH FROM (now() - rate_updated_at))::float8 AS rate_elapsed
  FROM bulk_jobs
  WHERE id = :jobId AND ${CLAIMABLE} AND claimable_at <= now()
  FOR NO KEY UPDATE`);

/** Nothing to pick: when is the next job due (null: none is waiting for time)? */
export const NEXT_DUE = sql<PickParams>(`
  SELECT (EXTRACT(EPOCH FROM (min(claimable_at) - now())) * 1000)::float8 AS next_in_ms
  FROM bulk_jobs
  WHERE ${CLAIMABLE} AND NOT (id = ANY(:avoid::uuid[]))`);

/**
 * Claims up to :count items of job :jobId, whose row the transaction has
 * locked (LOCK_LIMITED_JOB), for worker :worker and :leaseMs ms, as
 * CLAIM_NEXT does, and takes them from its rate bucket (:tokens before the
 * claim, :rate per second); when the bucket runs dry, claimable_at moves to
 * the time of the next token.
 */
export const CLAIM_LIMITED = sql<
  ClaimFrom & {
    jobId: string;
    worker: string;
    leaseMs: number;
    count: number;
    tokens: number | null;
    rate: number | null;
  }
>(`
  WITH target AS (
    SELECT id, xmin AS version, claim_frontier FROM bulk_jobs WHERE id = :jobId
  ),${claimFrom({ tokens: ':tokens::float8', rate: ':rate::float8' })}
  ${CLAIMED_ARRAYS}`);

/** A rate-limited job without a token: store the bucket and come back in :waitMs, when the next token is due. */
export const DEFER_RATE_LIMITED = sql<{ jobId: string; tokens: number | null; waitMs: number }>(`
  UPDATE bulk_jobs
  SET rate_tokens = :tokens, rate_updated_at = now(), claimable_at = now() + :waitMs * interval '1 millisecond'
  WHERE id = :jobId`);

/** Locks the rows of the jobs a batch of results belongs to, in id order. */
export const LOCK_JOBS = sql<{ jobIds: string[] }>(`
  SELECT id, status FROM bulk_jobs WHERE id = ANY(:jobIds::uuid[]) ORDER BY id FOR NO KEY UPDATE`);

/**
 * Statuses in which a job finishes by itself once every item is done. A
 * paused job is among them: its items in flight finish and are recorded, and
 * when they were its last it completes (or fails) like any other, rather than
 * waiting for a resume that could give it nothing to do.
 */
const FINISHING = `('pending', 'running', 'paused')`;

/** The job reaches its end with this batch (j: the job row, x: the batch's totals). */
const DONE = `(j.status IN ${FINISHING}
  AND j.succeeded_items + x.s + j.failed_items + x.f + j.skipped_items + x.k >= j.total_items)`;
/** A cancelling job with nothing left pending (the cancel sweep skips those) or running after this batch. */
const CANCELLED = `(j.status = 'cancelling' AND j.running_items - x.n = 0
  AND j.succeeded_items + x.s + j.failed_items + x.f + j.skipped_items + x.k >= j.total_items)`;

/**
 * Folds per-job totals (the CTE `totals`: job_id, n items that left running,
 * s succeeded, f failed, k skipped, next_at the earliest retry) into the
 * jobs' counters, once per job and batch, and finishes a job when this was
 * its last item: completed if every item succeeded, else failed. A
 * cancelling job whose last running item left, with no pending item left
 * either (CANCEL_SWEEP skips them), becomes cancelled.
 * Every decision reads the job row inside SET, never from a CTE: when the
 * row was locked by another writer, SET sees the version that writer
 * committed, whereas a CTE would still see this statement's snapshot (and
 * two workers recording a job's last items at once would each miss the
 * other's and never finish it).
 */
const applyToJobs = (totals: string, before = '') => `
  WITH ${before}totals AS (${totals}
  )
  UPDATE bulk_jobs j SET
    running_items = j.running_items - x.n,
    succeeded_items = j.succeeded_items + x.s,
    failed_items = j.failed_items + x.f,
    skipped_items = j.skipped_items + x.k,
    status = CASE
      WHEN ${DONE} THEN CASE WHEN j.failed_items + x.f + j.skipped_items + x.k = 0 THEN 'completed' ELSE 'failed' END
      WHEN ${CANCELLED} THEN 'cancelled'
      ELSE j.status END,
    finished_at = CASE WHEN ${DONE} OR ${CANCELLED} THEN now() ELSE j.finished_at END,
    claimable_at = CASE WHEN ${DONE} OR ${CANCELLED} THEN NULL ELSE LEAST(j.claimable_at, x.next_at) END,
    updated_at = now()
  FROM totals x
  WHERE j.id = x.job_id
  RETURNING j.id, j.status`;

/**
 * A batch of results of worker :worker, as parallel arrays over its items
 * (array literals, `{…}`, for the integer and outcome arrays: much cheaper
 * to build than the driver's per-element escaping).
 */
export interface RecordParams {
  worker: string;
  /** The batch's jobs. */
  jobIds: string[];
  /** Per item: its job's index in jobIds, from 1. */
  jobIndexes: string;
  seqs: string;
  /** Per item: its OutcomeKind. */
  outcomes: string;
  /** Per item: the result (JSON text) of a succeeded one; null when the batch has none. */
  results: (string | null)[] | null;
  /** Per item: the error (JSON text) of a failed or retried one; null when the batch has none. */
  errors: (string | null)[] | null;
  /** Per item: a retry's delay in ms; null when the batch has none. */
  delays: (number | null)[] | null;
}

/** The item status each outcome leaves: a retried or released item is pending again. */
const STATUS_AFTER: Record<OutcomeKind, string> = {
  succeeded: 'succeeded',
  failed: 'failed',
  retry: 'pending',
  release: 'pending',
};

/**
 * Records a batch of results (RecordParams). A released item (`release`:
 * given back unfinished) gets its attempt back. Only items still leased to
 * :worker are touched, so a worker that lost a lease cannot overwrite an item
 * another worker has claimed since. Returns the changes per job, for
 * APPLY_RESULTS.
 */
const RECORD_ITEMS = `
  input AS (
    SELECT (:jobIds::uuid[])[u.j] AS job_id, u.seq,
           CASE u.outcome ${Object.entries(STATUS_AFTER)
             .map(([outcome, status]) => `WHEN '${outcome}' THEN '${status}'`)
             .join(' ')} END AS status,
           (u.outcome = 'release')::int AS undo,
           u.result, u.error, COALESCE(u.delay_ms, 0) AS delay_ms
    FROM unnest(:jobIndexes::int[], :seqs::int[], :outcomes::text[], :results::jsonb[], :errors::jsonb[],
                :delays::int[])
      AS u(j, seq, outcome, result, error, delay_ms)
  ), upd AS (
    UPDATE bulk_job_items i SET
      status = u.status,
      result = u.result,
      last_error = COALESCE(u.error, i.last_error),
      attempts = i.attempts - u.undo,
      available_at = CASE WHEN u.status = 'pending'
                          THEN now() + u.delay_ms * interval '1 millisecond' ELSE i.available_at END,
      lease_owner = NULL,
      lease_expires_at = NULL,
      finished_at = CASE WHEN u.status = 'pending' THEN NULL ELSE now() END
    FROM input u
    WHERE i.job_id = u.job_id AND i.seq = u.seq AND i.lease_owner = :worker
      -- "status is running", written so that it does not match the running-items index's
      -- predicate: given that index, the planner scanned all of it for a hash join, dead
      -- entries of every item recorded since the last vacuum included, instead of looking
      -- the batch's items up by primary key (bench/README.md).
      AND i.status <> ALL ('{pending,succeeded,failed,skipped}'::text[])
    RETURNING i.job_id, i.seq, i.status, i.available_at
  )`;

export const RECORD_RESULTS = sql<RecordParams>(`
  WITH ${RECORD_ITEMS}
  SELECT job_id,
         count(*)::int AS n,
         count(*) FILTER (WHERE status = 'succeeded')::int AS s,
         count(*) FILTER (WHERE status = 'failed')::int AS f,
         min(available_at) FILTER (WHERE status = 'pending') AS next_at,
         array_agg(seq) FILTER (WHERE status = 'pending') AS pending_seqs
  FROM upd GROUP BY job_id`);

/**
 * RECORD_RESULTS and APPLY_RESULTS in one statement (one round trip, no
 * explicit transaction), for the usual batch: one job, and every item
 * succeeded or failed. The items are updated first and the one job row
 * last, the same order as the two-statement form.
 */
export const RECORD_FINAL_RESULTS = sql<RecordParams>(
  applyToJobs(
    `
    SELECT job_id, count(*)::int AS n,
           count(*) FILTER (WHERE status = 'succeeded')::int AS s,
           count(*) FILTER (WHERE status = 'failed')::int AS f,
           0 AS k, NULL::timestamptz AS next_at
    FROM upd GROUP BY job_id`,
    `${RECORD_ITEMS}, `,
  ),
);

/**
 * RECORD_FINAL_RESULTS for a batch of one job, :jobId, whose seqs lie
 * between :lo and :hi: the items are read as one range of the running-items
 * index by seq (job_id, seq), the way in of the SQL-only loop's completion,
 * and joined to their outcomes by seq, instead of one primary-key lookup per
 * item (bench/README.md, "Engine"). The range holds the batch's items and the
 * dead entries of its neighbours only; the caller uses it when the batch's
 * seqs are dense (RANGE_SPREAD in EngineStore), so that a batch with a stray
 * low seq does not walk the dead entries of everything recorded in between.
 * :outcomes is null when every item succeeded (the noop path's batch): unnest
 * pads it with nulls, which read as succeeded.
 */
export const RECORD_FINAL_RANGE = sql<
  Pick<RecordParams, 'worker' | 'seqs' | 'results' | 'errors'> & {
    jobId: string;
    lo: number;
    hi: number;
    outcomes: string | null;
  }
>(
  applyToJobs(
    `
    SELECT :jobId::uuid AS job_id, count(*)::int AS n,
           count(*) FILTER (WHERE status = 'succeeded')::int AS s,
           count(*) FILTER (WHERE status = 'failed')::int AS f,
           0 AS k, NULL::timestamptz AS next_at
    FROM upd HAVING count(*) > 0`,
    `input AS (
    SELECT u.seq, CASE u.outcome WHEN 'failed' THEN 'failed' ELSE 'succeeded' END AS status,
           u.result, u.error
    FROM unnest(:seqs::int[], :outcomes::text[], :results::jsonb[], :errors::jsonb[])
      AS u(seq, outcome, result, error)
  ), upd AS (
    UPDATE bulk_job_items i SET
      status = u.status,
      result = u.result,
      last_error = COALESCE(u.error, i.last_error),
      lease_owner = NULL,
      lease_expires_at = NULL,
      finished_at = now()
    FROM input u
    WHERE i.job_id = :jobId AND i.status = 'running' AND i.seq BETWEEN :lo AND :hi
      AND i.seq = u.seq AND i.lease_owner = :worker
    RETURNING i.status
  ), `,
  ),
);

/** Items of job :jobId (:seqs) that this batch made pending, skipped instead because the job is being cancelled. */
export const SKIP_RETURNED = sql<{ jobId: string; seqs: number[] }>(`
  UPDATE bulk_job_items SET status = 'skipped', finished_at = now()
  WHERE job_id = :jobId AND seq = ANY(:seqs::int[]) AND status = 'pending'`);

/**
 * Applies per-job totals given as parallel arrays: per job, the items that
 * left running (:left), succeeded, failed and skipped, and the earliest retry
 * (:nextAt).
 */
export const APPLY_RESULTS = sql<{
  jobIds: string[];
  left: number[];
  succeeded: number[];
  failed: number[];
  skipped: number[];
  nextAt: (Date | null)[];
}>(
  applyToJobs(`
    SELECT * FROM unnest(:jobIds::uuid[], :left::int[], :succeeded::int[], :failed::int[], :skipped::int[],
                         :nextAt::timestamptz[])
      AS t(job_id, n, s, f, k, next_at)`),
);

/**
 * Extends the leases of the items worker :worker holds (job :jobIds[j] and
 * seq, as parallel array literals :jobIndexes and :seqs, like RecordParams)
 * by :leaseMs ms, where they are still leased to it; rows locked by a sweep
 * or a recording are left alone. Looked up by primary key, one per item:
 * the running-items indexes hold a dead entry for every item recorded since
 * the last vacuum, and a scan of them took hundreds of ms mid-run while the
 * write in flight waited for the rows it locked (bench/README.md, "Engine").
 */
export const EXTEND_LEASES = sql<{
  worker: string;
  leaseMs: number;
  jobIds: string[];
  jobIndexes: string;
  seqs: string;
}>(`
  WITH mine AS (
    SELECT i.job_id, i.seq
    FROM unnest(:jobIndexes::int[], :seqs::int[]) AS u(j, seq)
    JOIN bulk_job_items i ON i.job_id = (:jobIds::uuid[])[u.j] AND i.seq = u.seq
    WHERE i.lease_owner = :worker
      -- "status is running", written so that it does not match the running-items indexes'
      -- predicate (see RECORD_ITEMS): the keys are the way in.
      AND i.status <> ALL ('{pending,succeeded,failed,skipped}'::text[])
    FOR UPDATE OF i SKIP LOCKED
  )
  UPDATE bulk_job_items i SET lease_expires_at = now() + :leaseMs * interval '1 millisecond'
  FROM mine m
  WHERE i.job_id = m.job_id AND i.seq = m.seq
  RETURNING i.job_id, i.seq`);

/** Which of the items (parallel arrays :jobIds, :seqs) are still leased to worker :worker. */
export const STILL_LEASED = sql<{ worker: string; jobIds: string[]; seqs: number[] }>(`
  SELECT i.job_id, i.seq
  FROM unnest(:jobIds::uuid[], :seqs::int[]) AS u(job_id, seq)
  JOIN bulk_job_items i ON i.job_id = u.job_id AND i.seq = u.seq
  WHERE i.status = 'running' AND i.lease_owner = :worker`);

/**
 * Jobs that have items whose lease expired, read through the running items'
 * index by (job_id, seq): its entries of items recorded since the last vacuum
 * cost a look at the table row once each, and are marked dead in the index by
 * that look, so that later sweeps step over them.
 */
export const JOBS_WITH_EXPIRED_LEASES = sql(`
  SELECT DISTINCT job_id FROM bulk_job_items
  WHERE status = 'running' AND lease_expires_at < now()
  LIMIT 100`);

export const LOCK_JOB = sql<{ jobId: string }>(`
  SELECT status, options FROM bulk_jobs WHERE id = :jobId FOR NO KEY UPDATE`);

/**
 * Returns the expired items of job :jobId (whose row the transaction holds):
 * skipped if the job is being cancelled (:cancelling), failed if they have
 * used their :maxAttempts, else pending again at once; :error says why.
 */
export const RETURN_EXPIRED = sql<{
  jobId: string;
  cancelling: boolean;
  maxAttempts: number;
  error: string;
}>(`
  WITH expired AS (
    SELECT seq FROM bulk_job_items
    WHERE job_id = :jobId AND status = 'running' AND lease_expires_at < now()
    FOR UPDATE SKIP LOCKED
  ), upd AS (
    UPDATE bulk_job_items i SET
      status = CASE WHEN :cancelling::boolean THEN 'skipped' WHEN i.attempts >= :maxAttempts THEN 'failed' ELSE 'pending' END,
      last_error = :error::jsonb,
      available_at = now(),
      lease_owner = NULL,
      lease_expires_at = NULL,
      finished_at = CASE WHEN NOT :cancelling::boolean AND i.attempts < :maxAttempts THEN NULL ELSE now() END
    FROM expired e
    WHERE i.job_id = :jobId AND i.seq = e.seq
    RETURNING i.status, i.available_at
  )
  SELECT count(*)::int AS n,
         count(*) FILTER (WHERE status = 'failed')::int AS f,
         count(*) FILTER (WHERE status = 'skipped')::int AS k,
         min(available_at) FILTER (WHERE status = 'pending') AS next_at
  FROM upd`);

/**
 * Jobs being cancelled with something still to do: pending items to skip, or
 * nothing running any more (the sweep then only marks the job cancelled).
 * Read through bulk_jobs_cancelling_idx.
 */
const CANCEL_SWEEP_TARGET = `
    SELECT id AS job_id FROM bulk_jobs
    WHERE status = 'cancelling'
      AND (succeeded_items + failed_items + skipped_items + running_items < total_items OR running_items = 0)
      AND NOT (id = ANY(:avoid::uuid[]))
    ORDER BY updated_at
    LIMIT 1`;

/**
 * Where the sweep of the target job goes on: after the last seq this worker
 * skipped of it (:cursorJobs/:cursorSeqs, pairs), else from the start. The
 * pending items' index keeps an entry for every item skipped since the table
 * was last vacuumed, and a batch that started from the job's first seq would
 * step over all of them: 0.7 s a batch, 80 times a batch from the cursor,
 * once a few million items of a job are skipped.
 */
const CANCEL_SWEEP_AFTER = `COALESCE((
      SELECT c.seq FROM unnest(:cursorJobs::uuid[], :cursorSeqs::int[]) AS c(job_id, seq)
      WHERE c.job_id = (SELECT job_id FROM target)), -1)`;

/**
 * One batch of the cancel sweep: skips up to :batch pending items of the
 * cancelling job whose turn it is (least recently updated, except :avoid),
 * counts them, and marks the job cancelled once nothing is pending or running
 * (skipPendingBatch). No row: no cancelling job has anything left to do.
 * `last` is the highest seq it skipped (null: none), the job's next cursor.
 */
export const CANCEL_SWEEP = sql<{
  batch: number;
  avoid: string[];
  cursorJobs: string[];
  cursorSeqs: number[];
}>(skipPendingBatch(CANCEL_SWEEP_TARGET, 'j.id, j.status, n.k AS skipped, n.last', CANCEL_SWEEP_AFTER));
