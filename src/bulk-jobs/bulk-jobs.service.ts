import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { ActionsRegistry } from '../actions/actions.registry';
import type { Principal } from '../auth/scopes';
import { Env } from '../config/env';
import { queryRows } from '../database/sql';
import { isLockNotAvailable } from '../database/database-errors';
import { ServiceUnavailableError, ValidationFailedError } from '../common/problem-details/domain-error';
import {
  clampLimit,
  decodeCursor,
  decodeSeqPosition,
  decodeTimeIdPosition,
  encodeCursor,
  InvalidCursorError,
} from '../common/pagination/cursor';
import {
  CANCELLABLE_JOB_STATUSES,
  isDeletable,
  TERMINAL_JOB_STATUSES,
  type JobStatus,
} from '../jobs/job-status';
import {
  ITEM_COLUMNS,
  JOB_COLUMNS,
  toItemResponse,
  toJobResponse,
  type ItemRow,
  type JobRow,
} from './bulk-job.mapper';
import {
  BulkJobNotCancellableError,
  BulkJobNotDeletableError,
  BulkJobNotDeletedError,
  BulkJobNotFoundError,
  IdempotencyKeyReusedError,
  TooManyActiveJobsError,
} from './bulk-jobs.errors';
import { isUnstorableJson } from '../common/storable-json';
import type { CreateBulkJobDto, TargetInput } from './dto/create-bulk-job.dto';
import { hashRequest } from './request-hash';
import type {
  BulkJobItemListResponseDto,
  BulkJobListResponseDto,
  BulkJobResponseDto,
  DeleteBulkJobResponseDto,
} from './dto/bulk-job-response.dto';
import type { ListItemsQueryDto, ListJobsQueryDto } from './dto/list-query.dto';

/** Items are written with one multi-row INSERT per this many targets. */
const INSERT_CHUNK = 5_000;
const IDEMPOTENCY_WINDOW = `interval '24 hours'`;
/** First key of the advisory lock that serialises one owner's creates (the second is hashtext(owner)). */
const ACTIVE_JOBS_LOCK = 746_201_916;
const ACTIVE_JOBS_WHERE = `owner = $1 AND status IN ('pending', 'running', 'cancelling') AND deleted_at IS NULL`;

export interface CreateResult {
  job: BulkJobResponseDto;
  /** True when an Idempotency-Key replay returned an earlier job. */
  replayed: boolean;
}

/** How long a DELETE that lost a race waits for a change of the job row in flight. */
const DELETE_LOCK_TIMEOUT = '2s';

/** Restricts a query to the caller's own jobs unless the caller is an admin. */
function ownerFilter(principal: Principal, params: unknown[]): string {
  if (principal.isAdmin) return '';
  params.push(principal.sub);
  return ` AND owner = $${params.length}`;
}

/**
 * The rules of the bulk job lifecycle. Every state change is one conditional
 * statement in PostgreSQL, so that concurrent requests and workers can never
 * push a job through a transition its current status does not allow.
 */
@Injectable()
export class BulkJobsService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly actions: ActionsRegistry,
    private readonly env: Env,
  ) {}

  async create(principal: Principal, dto: CreateBulkJobDto, idempotencyKey?: string): Promise<CreateResult> {
    const params = this.validSpec(dto);
    if (dto.targets.length > this.env.BULK_JOBS_MAX_INLINE_TARGETS) {
      throw new ValidationFailedError({
        targets: `at most ${this.env.BULK_JOBS_MAX_INLINE_TARGETS} targets can be sent inline; stream larger jobs as application/x-ndjson`,
      });
    }
    const options = { ...(dto.options ?? {}) };
    const id = randomUUID();
    // Hashed with the validated params (defaults filled in): omitted and default params are one request.
    const requestHash = idempotencyKey ? hashRequest({ ...dto, params }, dto.targets) : undefined;

    const created = await this.db
      .transaction(async (tx) => {
        await tx.query(
          `INSERT INTO bulk_jobs (id, owner, action, params, options, total_items)
           VALUES ($1, $2, $3, $4, $5, $6)`,
          [id, principal.sub, dto.action, params, options, dto.targets.length],
        );
        if (idempotencyKey)
          await this.claimIdempotencyKey(tx, principal.sub, idempotencyKey, requestHash!, id);
        await this.assertActiveJobRoom(tx, principal.sub, id);
        await insertItems(tx, id, dto.targets);
        return true;
      })
      .catch((err: unknown) => {
        if (err instanceof KeyTakenSignal) return false;
        throw err;
      });

    if (!created) return this.replay(principal, idempotencyKey!, requestHash!);
    return { job: await this.get(principal, id), replayed: false };
  }

  /** The job's params, validated against its action's schema (defaults filled in). */
  validSpec(spec: { action: string; params?: Record<string, unknown> }): Record<string, unknown> {
    const params = spec.params ?? {};
    const problems = this.actions.validateParams(spec.action, params);
    if (problems) throw new ValidationFailedError(problems);
    if (isUnstorableJson(params)) {
      throw new ValidationFailedError({ params: 'must not contain \\u0000 or unpaired surrogates' });
    }
    return params;
  }

  /**
   * Takes the key for this job, unless a live (under 24 h) record holds it.
   * The primary key on (owner, key) settles concurrent requests: the second
   * waits for the first to commit and then sees its record. A taken key
   * throws KeyTakenSignal, which rolls the whole transaction (the job row
   * with it) back.
   */
  async claimIdempotencyKey(
    tx: EntityManager,
    owner: string,
    key: string,
    hash: string,
    jobId: string,
  ): Promise<void> {
    const rows = await queryRows<unknown>(
      tx,
      `INSERT INTO bulk_job_idempotency_keys AS k (owner, key, request_hash, job_id)
       VALUES ($1, $2, $3, $4)
       ON CONFLICT (owner, key) DO UPDATE
         SET request_hash = EXCLUDED.request_hash, job_id = EXCLUDED.job_id, created_at = now()
         WHERE k.created_at < now() - ${IDEMPOTENCY_WINDOW}
       RETURNING job_id`,
      [owner, key, hash, jobId],
    );
    if (rows.length === 0) throw new KeyTakenSignal();
  }

  /**
   * Refuses the job `jobId` being created when its owner already has
   * BULK_JOBS_MAX_ACTIVE_PER_OWNER pending, running or cancelling jobs. Runs
   * in the create's transaction under an advisory lock on the owner, held
   * until it commits: two creates of one owner count one after the other, so
   * that they cannot both see room for one more job.
   */
  async assertActiveJobRoom(tx: EntityManager, owner: string, jobId: string): Promise<void> {
    const max = this.env.BULK_JOBS_MAX_ACTIVE_PER_OWNER;
    if (max === 0) return;
    await tx.query(`SELECT pg_advisory_xact_lock($1, hashtext($2))`, [ACTIVE_JOBS_LOCK, owner]);
    if ((await this.countActiveJobs(tx, owner, jobId)) >= max) throw new TooManyActiveJobsError(max);
  }

  /**
   * The same check without the lock, for a create that will take long (a
   * streamed one) to fail before it reads its body; assertActiveJobRoom
   * still decides at its end.
   */
  async precheckActiveJobRoom(owner: string): Promise<void> {
    const max = this.env.BULK_JOBS_MAX_ACTIVE_PER_OWNER;
    if (max !== 0 && (await this.countActiveJobs(this.db, owner)) >= max)
      throw new TooManyActiveJobsError(max);
  }

  private async countActiveJobs(
    db: DataSource | EntityManager,
    owner: string,
    except?: string,
  ): Promise<number> {
    const rows = await queryRows<{ n: number }>(
      db,
      except
        ? `SELECT count(*)::int AS n FROM bulk_jobs WHERE ${ACTIVE_JOBS_WHERE} AND id <> $2`
        : `SELECT count(*)::int AS n FROM bulk_jobs WHERE ${ACTIVE_JOBS_WHERE}`,
      except ? [owner, except] : [owner],
    );
    return rows[0].n;
  }

  /** The job an earlier request with this key created, or 422 when the key came with another body. */
  async replay(principal: Principal, key: string, hash: string): Promise<CreateResult> {
    const rows = await queryRows<{ job_id: string; request_hash: string }>(
      this.db,
      `SELECT job_id, request_hash FROM bulk_job_idempotency_keys WHERE owner = $1 AND key = $2`,
      [principal.sub, key],
    );
    if (rows.length === 0) {
      // The record expired or its job was purged in between: very unlikely, and safe to report.
      throw new IdempotencyKeyReusedError();
    }
    if (rows[0].request_hash !== hash) throw new IdempotencyKeyReusedError();
    return { job: await this.get(principal, rows[0].job_id), replayed: true };
  }

  async list(principal: Principal, query: ListJobsQueryDto): Promise<BulkJobListResponseDto> {
    const limit = clampLimit(query.limit);
    const filters = {
      status: query.status,
      show_deleted: query.show_deleted ?? false,
      owner: principal.isAdmin ? '*' : principal.sub,
    };
    const params: unknown[] = [];
    let where = `TRUE${ownerFilter(principal, params)}`;
    if (!filters.show_deleted) where += ' AND deleted_at IS NULL';
    // Purged-but-not-yet-removed rows are gone as far as clients are concerned.
    where += ' AND (purge_at IS NULL OR purge_at > now())';
    if (query.status) {
      params.push(query.status);
      where += ` AND status = $${params.length}`;
    }
    if (query.cursor) {
      const pos = decodeTimeIdPosition(this.decode(query.cursor, 'jobs', filters));
      params.push(pos.createdAt, pos.id);
      where += ` AND (created_at, id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`;
    }
    params.push(limit + 1);
    const rows = await queryRows<JobRow>(
      this.db,
      `SELECT ${JOB_COLUMNS} FROM bulk_jobs WHERE ${where}
       ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map(toJobResponse),
      next_cursor:
        rows.length > limit && last
          ? encodeCursor('jobs', filters, [last.created_at.toISOString(), last.id])
          : null,
    };
  }

  /** One job, deleted ones included (AIP-164), until it is purged. */
  async get(principal: Principal, id: string): Promise<BulkJobResponseDto> {
    return toJobResponse(await this.findVisible(principal, id));
  }

  async listItems(
    principal: Principal,
    jobId: string,
    query: ListItemsQueryDto,
  ): Promise<BulkJobItemListResponseDto> {
    await this.findVisible(principal, jobId);
    const limit = clampLimit(query.limit);
    const filters = { job: jobId, status: query.status };
    const params: unknown[] = [jobId];
    let where = 'job_id = $1';
    if (query.status) {
      params.push(query.status);
      where += ` AND status = $${params.length}`;
    }
    if (query.cursor) {
      params.push(decodeSeqPosition(this.decode(query.cursor, 'items', filters)));
      where += ` AND seq > $${params.length}`;
    }
    params.push(limit + 1);
    const rows = await queryRows<ItemRow>(
      this.db,
      `SELECT ${ITEM_COLUMNS} FROM bulk_job_items WHERE ${where} ORDER BY seq LIMIT $${params.length}`,
      params,
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map(toItemResponse),
      next_cursor: rows.length > limit && last ? encodeCursor('items', filters, [last.seq]) : null,
    };
  }

  /**
   * Cancels a pending or running job: its pending items become skipped at
   * once; the job is `cancelled` when no item is in flight, else `cancelling`
   * until the workers finish them. Cancelling a `cancelling` job is a no-op.
   */
  async cancel(principal: Principal, id: string): Promise<BulkJobResponseDto> {
    const row = await this.db.transaction(async (tx) => {
      const params: unknown[] = [id, [...CANCELLABLE_JOB_STATUSES]];
      // Locks the job row: concurrent cancels and the workers' status updates queue behind it.
      const locked = await queryRows<unknown>(
        tx,
        `UPDATE bulk_jobs SET status = 'cancelling', updated_at = now()
         WHERE id = $1 AND status = ANY($2) AND deleted_at IS NULL${ownerFilter(principal, params)}
         RETURNING id`,
        params,
      );
      if (locked.length === 0) return undefined;
      const rows = await queryRows<JobRow>(
        tx,
        `WITH skipped AS (
           UPDATE bulk_job_items SET status = 'skipped', finished_at = now()
           WHERE job_id = $1 AND status = 'pending'
           RETURNING 1
         )
         UPDATE bulk_jobs j SET
           skipped_items = j.skipped_items + (SELECT count(*) FROM skipped),
           status = CASE WHEN EXISTS (SELECT 1 FROM bulk_job_items WHERE job_id = $1 AND status = 'running')
                         THEN 'cancelling' ELSE 'cancelled' END,
           finished_at = CASE WHEN EXISTS (SELECT 1 FROM bulk_job_items WHERE job_id = $1 AND status = 'running')
                         THEN NULL ELSE now() END,
           updated_at = now()
         WHERE j.id = $1
         RETURNING ${JOB_COLUMNS}`,
        [id],
      );
      return rows[0];
    });
    if (row) return toJobResponse(row);

    const current = await this.findVisible(principal, id);
    if (current.deleted_at) throw new BulkJobNotFoundError(id);
    if (current.status === 'cancelling') return toJobResponse(current);
    throw new BulkJobNotCancellableError(id, current.status);
  }

  /**
   * The seeded DELETE: soft-deletes a job only when it is completed, failed or
   * cancelled. The status check and the delete are one conditional UPDATE, so
   * a job that starts running at the same moment is never deleted. When it
   * matches nothing, a read picks the error (404 or 409). A job the read finds
   * deletable changed between the two: it is decided again under its row's
   * lock, so that a 409 never names a deletable status.
   */
  async delete(principal: Principal, id: string): Promise<DeleteBulkJobResponseDto> {
    const params: unknown[] = [id, [...TERMINAL_JOB_STATUSES], this.env.BULK_JOBS_RETENTION_DAYS];
    const sql = `UPDATE bulk_jobs
       SET deleted_at = now(), purge_at = now() + make_interval(days => $3), updated_at = now()
       WHERE id = $1 AND status = ANY($2) AND deleted_at IS NULL${ownerFilter(principal, params)}
       RETURNING id, status`;
    const rows = await queryRows<{ id: string; status: JobStatus }>(this.db, sql, params);
    if (rows.length === 1) return { job_id: rows[0].id, status: rows[0].status, success: true };
    const current = await this.findVisible(principal, id);
    if (current.deleted_at) throw new BulkJobNotFoundError(id);
    if (!isDeletable(current.status)) throw new BulkJobNotDeletableError(id, current.status);
    return this.deleteLocked(principal, id, sql, params);
  }

  /**
   * A DELETE that lost a race: the job's row is locked (waiting at most
   * DELETE_LOCK_TIMEOUT for a change in flight), its status read under the
   * lock, and the same conditional UPDATE run while the lock holds it still.
   */
  private async deleteLocked(
    principal: Principal,
    id: string,
    sql: string,
    params: unknown[],
  ): Promise<DeleteBulkJobResponseDto> {
    try {
      return await this.db.transaction(async (tx) => {
        await tx.query(`SET LOCAL lock_timeout = '${DELETE_LOCK_TIMEOUT}'`);
        const lockParams: unknown[] = [id];
        const [current] = await queryRows<{ status: JobStatus; deleted_at: Date | null }>(
          tx,
          `SELECT status, deleted_at FROM bulk_jobs
           WHERE id = $1 AND (purge_at IS NULL OR purge_at > now())${ownerFilter(principal, lockParams)}
           FOR NO KEY UPDATE`,
          lockParams,
        );
        if (!current || current.deleted_at) throw new BulkJobNotFoundError(id);
        if (!isDeletable(current.status)) throw new BulkJobNotDeletableError(id, current.status);
        const [row] = await queryRows<{ id: string; status: JobStatus }>(tx, sql, params);
        return { job_id: row.id, status: row.status, success: true };
      });
    } catch (err) {
      if (isLockNotAvailable(err)) {
        throw new ServiceUnavailableError(1, 'The job is being changed right now. Retry the request.');
      }
      throw err;
    }
  }

  /** Undoes a soft delete while the job is still retained. */
  async restore(principal: Principal, id: string): Promise<BulkJobResponseDto> {
    const params: unknown[] = [id];
    const rows = await queryRows<JobRow>(
      this.db,
      `UPDATE bulk_jobs SET deleted_at = NULL, purge_at = NULL, updated_at = now()
       WHERE id = $1 AND deleted_at IS NOT NULL AND purge_at > now()${ownerFilter(principal, params)}
       RETURNING ${JOB_COLUMNS}`,
      params,
    );
    if (rows.length === 1) return toJobResponse(rows[0]);
    await this.findVisible(principal, id);
    throw new BulkJobNotDeletedError(id);
  }

  /** Hard-deletes jobs (and, by cascade, their items) whose retention has run out. */
  async purgeExpired(batchSize = 100): Promise<number> {
    let purged = 0;
    for (;;) {
      const rows = await queryRows<unknown>(
        this.db,
        `DELETE FROM bulk_jobs WHERE id IN (
           SELECT id FROM bulk_jobs WHERE purge_at <= now()
           ORDER BY purge_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id`,
        [batchSize],
      );
      purged += rows.length;
      if (rows.length < batchSize) break;
    }
    await this.db.query(
      `DELETE FROM bulk_job_idempotency_keys WHERE created_at < now() - ${IDEMPOTENCY_WINDOW}`,
    );
    return purged;
  }

  /** The job if it exists, is the caller's (or the caller is an admin), and is not past purge. */
  private async findVisible(principal: Principal, id: string): Promise<JobRow> {
    const params: unknown[] = [id];
    const rows = await queryRows<JobRow>(
      this.db,
      `SELECT ${JOB_COLUMNS} FROM bulk_jobs
       WHERE id = $1 AND (purge_at IS NULL OR purge_at > now())${ownerFilter(principal, params)}`,
      params,
    );
    if (rows.length === 0) throw new BulkJobNotFoundError(id);
    return rows[0];
  }

  private decode(cursor: string, kind: string, filters: Record<string, unknown>): unknown[] {
    try {
      return decodeCursor(cursor, kind, filters);
    } catch (err) {
      if (err instanceof InvalidCursorError) {
        throw new ValidationFailedError({
          cursor: 'is not a cursor issued for this listing and these filters',
        });
      }
      throw err;
    }
  }
}

/** Thrown inside a create transaction to roll it back when the key is taken. */
export class KeyTakenSignal extends Error {}

async function insertItems(tx: EntityManager, jobId: string, targets: TargetInput[]): Promise<void> {
  for (let start = 0; start < targets.length; start += INSERT_CHUNK) {
    const chunk = targets.slice(start, start + INSERT_CHUNK);
    const ids: string[] = new Array<string>(chunk.length);
    const data: (string | null)[] = new Array<string | null>(chunk.length);
    chunk.forEach((t, i) => {
      if (typeof t === 'string') {
        ids[i] = t;
        data[i] = null;
      } else {
        ids[i] = t.id;
        data[i] = t.data === undefined ? null : JSON.stringify(t.data);
      }
    });
    await tx.query(
      `INSERT INTO bulk_job_items (job_id, seq, target_id, data)
       SELECT $1, $2 + t.ord - 1, t.id, t.data
       FROM unnest($3::text[], $4::jsonb[]) WITH ORDINALITY AS t(id, data, ord)`,
      [jobId, start, ids, data],
    );
  }
}
