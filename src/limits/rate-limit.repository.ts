import { Injectable } from '@nestjs/common';
import { Database } from '../database/database';
import { prepared, sql, type Statement } from '../database/sql';

/** A reservation asked of the shared count: up to `chunk` more requests of `key`'s window. */
export interface RefillRequest {
  key: string;
  /** The window's start and the previous window's (ms since the epoch). */
  windowStart: number;
  previousStart: number;
  limit: number;
  chunk: number;
  /** How much of the previous window the sliding window still covers, 1 to 0. */
  weight: number;
}

/** What the shared count said. */
export interface RefillResult {
  /** Requests reserved in the previous window, by every process. */
  previous: number;
  /** Requests reserved in this window by every process, this reservation included. */
  used: number;
  /** What this reservation took (0: the window is full, nothing was taken). */
  granted: number;
}

interface RefillRow {
  previous: number;
  used: number | null;
  granted: number | null;
  seen: number | null;
}

/**
 * Takes up to :chunk of what is left of the limit in one statement, settled by
 * the row: ON CONFLICT … DO UPDATE locks the window's latest version and
 * re-checks the WHERE on it, so that concurrent reservations from any number
 * of processes queue on the row and never take more than `room` together.
 * `room` is the sliding window's: the limit less the previous window's
 * requests, weighted as floor(previous × weight) exactly as the in-process
 * window (rate-limiter.ts) counts them. `seen` (the window's count at the
 * statement's start) serves a refusal, whose count is at least `room`.
 * Hand-written: TypeORM cannot say ON CONFLICT … DO UPDATE … WHERE, nor a
 * data-modifying CTE. One statement and no session state, so it runs the same
 * through a pooler in transaction mode.
 */
interface RefillParams {
  key: string;
  windowStart: Date;
  previousStart: Date;
  limit: number;
  chunk: number;
  weight: number;
}

const REFILL = `
  WITH room AS (
    SELECT COALESCE(p.used, 0) AS previous,
           :limit::int - floor(COALESCE(p.used, 0) * :weight::float8)::int AS room
    FROM (SELECT 1) one
    LEFT JOIN rate_limit_windows p ON p.key = :key AND p.window_start = :previousStart
  ), reserved AS (
    INSERT INTO rate_limit_windows AS w (key, window_start, used, granted)
    SELECT :key, :windowStart, LEAST(:chunk::int, room), LEAST(:chunk::int, room) FROM room WHERE room > 0
    ON CONFLICT (key, window_start) DO UPDATE
      SET used = w.used + LEAST(:chunk::int, (SELECT room FROM room) - w.used),
          granted = LEAST(:chunk::int, (SELECT room FROM room) - w.used)
      WHERE w.used < (SELECT room FROM room)
    RETURNING w.used, w.granted
  )
  SELECT room.previous, reserved.used, reserved.granted,
         (SELECT used FROM rate_limit_windows WHERE key = :key AND window_start = :windowStart) AS seen
  FROM room LEFT JOIN reserved ON true`;

/**
 * Deletes up to :batch windows that started before :before, or more than
 * :keepMs before the database's own clock if that is earlier: a process whose
 * clock runs ahead must not delete the windows that the others still count
 * in. SKIP LOCKED: processes that sweep at the same time share the work.
 */
const DELETE_PAST = sql<{ before: Date; keepMs: number; batch: number }>(`
  DELETE FROM rate_limit_windows
  WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM rate_limit_windows
    WHERE window_start < LEAST(:before::timestamptz, now() - :keepMs * interval '1 millisecond')
    LIMIT :batch
    FOR UPDATE SKIP LOCKED))`);

/** The statements of the shared rate limit, on the API's pool. */
@Injectable()
export class RateLimitRepository {
  /**
   * Prepared on each connection (not behind a pooler in transaction mode, Database.prepares):
   * parsed and planned at every run, a reservation cost PostgreSQL about 300 µs of CPU, prepared
   * about 100 (bench/README.md, API item 35). Its generic plan is the primary-key lookups.
   */
  private readonly refillStatement: Statement<RefillParams>;

  constructor(private readonly db: Database) {
    this.refillStatement = prepared<RefillParams>(db.prepares ? 'rate_limit_refill' : undefined, REFILL);
  }

  async refill(req: RefillRequest): Promise<RefillResult> {
    const [row] = await this.refillStatement.rows<RefillRow>(this.db.pool, {
      key: req.key,
      windowStart: new Date(req.windowStart),
      previousStart: new Date(req.previousStart),
      limit: req.limit,
      chunk: req.chunk,
      weight: req.weight,
    });
    if (row.granted !== null && row.used !== null)
      return { previous: row.previous, used: row.used, granted: row.granted };
    // Refused: the row the reservation saw held at least the room left.
    const room = req.limit - Math.floor(row.previous * req.weight);
    return { previous: row.previous, used: Math.max(row.seen ?? 0, room), granted: 0 };
  }

  /** Deletes one batch of past windows; returns how many went. */
  async deletePast(before: number, keepMs: number, batch: number): Promise<number> {
    const result = await DELETE_PAST.query(this.db.pool, { before: new Date(before), keepMs, batch });
    return result.rowCount ?? 0;
  }
}
