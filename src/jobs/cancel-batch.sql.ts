/** A cancelling job (j) with nothing left pending or running once this batch (n.k items) is skipped. */
const SETTLED_AFTER_SKIP = `(j.status = 'cancelling' AND j.running_items = 0
  AND j.succeeded_items + j.failed_items + j.skipped_items + n.k >= j.total_items)`;

/**
 * The one statement that skips a cancelled job's pending items, shared by the
 * API's cancel (its first batch, in the request) and the workers' cancel
 * sweep (every further batch, off the request path).
 *
 * The CTE `target` names the job (one row, its id as `job_id`). Skips up to
 * :batch of its pending items after seq `after` (an SQL expression that may
 * read `target`), in seq order, that nobody holds (SKIP LOCKED:
 * an item a claim in flight has locked becomes running instead, and is
 * counted as such), and adds them to the job's skipped_items in the same
 * statement: items first, the job row last, in the order a claim takes its
 * locks. The job becomes `cancelled` once nothing of it is pending or
 * running. Every decision reads the job row inside SET, i.e. the version a
 * concurrent writer committed (see applyToJobs in src/engine/engine.sql.ts),
 * and the row is updated whatever its status, so that every skipped item is
 * counted once.
 */
export const skipPendingBatch = (target: string, returning: string, after = '-1') => `
  WITH target AS (${target}
  ), picked AS (
    SELECT seq FROM bulk_job_items
    WHERE job_id = (SELECT job_id FROM target) AND status = 'pending' AND seq > ${after}
    ORDER BY seq
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
  ), skipped AS (
    UPDATE bulk_job_items i SET status = 'skipped', finished_at = now()
    FROM picked p
    WHERE i.job_id = (SELECT job_id FROM target) AND i.seq = p.seq
    RETURNING i.seq
  ), n AS (
    SELECT count(*)::int AS k, max(seq) AS last FROM skipped
  )
  UPDATE bulk_jobs j SET
    skipped_items = j.skipped_items + n.k,
    status = CASE WHEN ${SETTLED_AFTER_SKIP} THEN 'cancelled' ELSE j.status END,
    finished_at = CASE WHEN ${SETTLED_AFTER_SKIP} THEN now() ELSE j.finished_at END,
    claimable_at = CASE WHEN ${SETTLED_AFTER_SKIP} THEN NULL ELSE j.claimable_at END,
    updated_at = now()
  FROM n, target t
  WHERE j.id = t.job_id
  RETURNING ${returning}`;
