import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { ActionsRegistry } from '../actions/actions.registry';
import type { Principal } from '../auth/scopes';
import { Env } from '../config/env';
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
import { isDeletable } from '../jobs/job-status';
import { toItemResponse, toJobResponse, type JobView } from './bulk-job.mapper';
import {
  BulkJobNotCancellableError,
  BulkJobNotDeletableError,
  BulkJobNotDeletedError,
  BulkJobNotFoundError,
  IdempotencyKeyReusedError,
  TooManyActiveJobsError,
} from './bulk-jobs.errors';
import { BulkJobsRepository, type OwnerScope, type Transaction } from './bulk-jobs.repository';
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

export interface CreateResult {
  job: BulkJobResponseDto;
  /** True when an Idempotency-Key replay returned an earlier job. */
  replayed: boolean;
}

/** How long a DELETE that lost a race waits for a change of the job row in flight. */
const DELETE_LOCK_TIMEOUT = '2s';

/** Whose jobs the caller may see and act on: their own, or every owner's for an admin. */
function scopeOf(principal: Principal): OwnerScope {
  return principal.isAdmin ? null : principal.sub;
}

/**
 * The rules of the bulk job lifecycle. Every state change is one conditional
 * statement in PostgreSQL (BulkJobsRepository), so that concurrent requests
 * and workers can never push a job through a transition its current status
 * does not allow.
 */
@Injectable()
export class BulkJobsService {
  constructor(
    private readonly jobs: BulkJobsRepository,
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

    const created = await this.jobs
      .transaction(async (tx) => {
        await this.jobs.insertJob(tx, { id, owner: principal.sub, action: dto.action, params, options });
        await this.jobs.setTotalItems(tx, id, dto.targets.length);
        if (idempotencyKey)
          await this.claimIdempotencyKey(tx, principal.sub, idempotencyKey, requestHash!, id);
        await this.assertActiveJobRoom(tx, principal.sub, id);
        await insertItems(this.jobs, tx, id, dto.targets);
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
   * A taken key throws KeyTakenSignal, which rolls the whole transaction (the
   * job row with it) back.
   */
  async claimIdempotencyKey(
    tx: Transaction,
    owner: string,
    key: string,
    requestHash: string,
    jobId: string,
  ): Promise<void> {
    if (!(await this.jobs.claimIdempotencyKey(tx, { owner, key, requestHash, jobId }))) {
      throw new KeyTakenSignal();
    }
  }

  /**
   * Refuses the job `jobId` being created when its owner already has
   * BULK_JOBS_MAX_ACTIVE_PER_OWNER pending, running or cancelling jobs. Runs
   * in the create's transaction under a lock on the owner's creates, held
   * until it commits: two creates of one owner count one after the other, so
   * that they cannot both see room for one more job.
   */
  async assertActiveJobRoom(tx: Transaction, owner: string, jobId: string): Promise<void> {
    const max = this.env.BULK_JOBS_MAX_ACTIVE_PER_OWNER;
    if (max === 0) return;
    await this.jobs.lockOwnerCreates(tx, owner);
    if ((await this.jobs.countActiveJobs(owner, jobId, tx)) >= max) throw new TooManyActiveJobsError(max);
  }

  /**
   * The same check without the lock, for a create that will take long (a
   * streamed one) to fail before it reads its body; assertActiveJobRoom
   * still decides at its end.
   */
  async precheckActiveJobRoom(owner: string): Promise<void> {
    const max = this.env.BULK_JOBS_MAX_ACTIVE_PER_OWNER;
    if (max !== 0 && (await this.jobs.countActiveJobs(owner, null)) >= max)
      throw new TooManyActiveJobsError(max);
  }

  /** The job an earlier request with this key created, or 422 when the key came with another body. */
  async replay(principal: Principal, key: string, hash: string): Promise<CreateResult> {
    const record = await this.jobs.findIdempotencyKey(principal.sub, key);
    // No record: it expired or its job was purged in between; very unlikely, and safe to report.
    if (!record || record.requestHash !== hash) throw new IdempotencyKeyReusedError();
    return { job: await this.get(principal, record.jobId), replayed: true };
  }

  async list(principal: Principal, query: ListJobsQueryDto): Promise<BulkJobListResponseDto> {
    const limit = clampLimit(query.limit);
    const filters = {
      status: query.status,
      show_deleted: query.show_deleted ?? false,
      owner: principal.isAdmin ? '*' : principal.sub,
    };
    const jobs = await this.jobs.listJobs({
      owner: scopeOf(principal),
      status: query.status,
      showDeleted: filters.show_deleted,
      before: query.cursor ? decodeTimeIdPosition(this.decode(query.cursor, 'jobs', filters)) : undefined,
      limit: limit + 1,
    });
    const page = jobs.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map(toJobResponse),
      next_cursor:
        jobs.length > limit && last
          ? encodeCursor('jobs', filters, [last.createdAt.toISOString(), last.id])
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
    const items = await this.jobs.listItems(jobId, {
      status: query.status,
      afterSeq: query.cursor ? decodeSeqPosition(this.decode(query.cursor, 'items', filters)) : undefined,
      limit: limit + 1,
    });
    const page = items.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map(toItemResponse),
      next_cursor: items.length > limit && last ? encodeCursor('items', filters, [last.seq]) : null,
    };
  }

  /**
   * Cancels a pending or running job: its pending items become skipped at
   * once; the job is `cancelled` when no item is in flight, else `cancelling`
   * until the workers finish them. Cancelling a `cancelling` job is a no-op.
   */
  async cancel(principal: Principal, id: string): Promise<BulkJobResponseDto> {
    const cancelled = await this.jobs.cancelJob(scopeOf(principal), id);
    if (cancelled) return toJobResponse(cancelled);

    const current = await this.findVisible(principal, id);
    if (current.deletedAt) throw new BulkJobNotFoundError(id);
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
    const deleted = await this.jobs.softDeleteJob(scopeOf(principal), id, this.env.BULK_JOBS_RETENTION_DAYS);
    if (deleted) return { job_id: deleted.id, status: deleted.status, success: true };
    const current = await this.findVisible(principal, id);
    if (current.deletedAt) throw new BulkJobNotFoundError(id);
    if (!isDeletable(current.status)) throw new BulkJobNotDeletableError(id, current.status);
    return this.deleteLocked(principal, id);
  }

  /**
   * A DELETE that lost a race: the job's row is locked (waiting at most
   * DELETE_LOCK_TIMEOUT for a change in flight), its status read under the
   * lock, and the same conditional UPDATE run while the lock holds it still.
   */
  private async deleteLocked(principal: Principal, id: string): Promise<DeleteBulkJobResponseDto> {
    const scope = scopeOf(principal);
    try {
      return await this.jobs.transaction(async (tx) => {
        const current = await this.jobs.lockJob(tx, scope, id, DELETE_LOCK_TIMEOUT);
        if (!current || current.deletedAt) throw new BulkJobNotFoundError(id);
        if (!isDeletable(current.status)) throw new BulkJobNotDeletableError(id, current.status);
        const deleted = await this.jobs.softDeleteJob(scope, id, this.env.BULK_JOBS_RETENTION_DAYS, tx);
        return { job_id: deleted!.id, status: deleted!.status, success: true };
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
    const restored = await this.jobs.restoreJob(scopeOf(principal), id);
    if (restored) return toJobResponse(restored);
    await this.findVisible(principal, id);
    throw new BulkJobNotDeletedError(id);
  }

  /** Hard-deletes jobs (and, by cascade, their items) whose retention has run out. */
  async purgeExpired(batchSize = 100): Promise<number> {
    let purged = 0;
    for (;;) {
      const n = await this.jobs.purgeJobs(batchSize);
      purged += n;
      if (n < batchSize) break;
    }
    await this.jobs.purgeExpiredKeys();
    return purged;
  }

  /** The job if it exists, is the caller's (or the caller is an admin), and is not past purge. */
  private async findVisible(principal: Principal, id: string): Promise<JobView> {
    const job = await this.jobs.findJob(scopeOf(principal), id);
    if (!job) throw new BulkJobNotFoundError(id);
    return job;
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

async function insertItems(
  jobs: BulkJobsRepository,
  tx: Transaction,
  jobId: string,
  targets: TargetInput[],
): Promise<void> {
  for (let start = 0; start < targets.length; start += INSERT_CHUNK) {
    const chunk = targets.slice(start, start + INSERT_CHUNK);
    const targetIds: string[] = new Array<string>(chunk.length);
    const datas: (string | null)[] = new Array<string | null>(chunk.length);
    chunk.forEach((t, i) => {
      if (typeof t === 'string') {
        targetIds[i] = t;
        datas[i] = null;
      } else {
        targetIds[i] = t.id;
        datas[i] = t.data === undefined ? null : JSON.stringify(t.data);
      }
    });
    await jobs.insertItems(tx, jobId, { firstSeq: start, targetIds, datas });
  }
}
