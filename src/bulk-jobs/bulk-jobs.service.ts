import { Injectable } from '@nestjs/common';
import { pipeline, type Readable } from 'node:stream';
import { SCOPES, type Principal } from '../auth/scopes';
import { Env, maxExports } from '../config/env';
import { isLockNotAvailable } from '../database/database-errors';
import {
  ForbiddenError,
  ServiceUnavailableError,
  ValidationFailedError,
} from '../common/problem-details/domain-error';
import {
  clampLimit,
  CursorCodec,
  decodeSeqPosition,
  decodeTimeIdPosition,
  InvalidCursorError,
} from '../common/pagination/cursor';
import {
  isDeletable,
  isPausable,
  isTerminal,
  JOB_STATUSES,
  type ItemStatus,
  type JobStatus,
} from '../jobs/job-status';
import { ConcurrencyLimiter } from '../limits/concurrency-limiter';
import { toItemResponse, toJobResponse, type JobView } from './bulk-job.mapper';
import {
  BulkJobNotCancellableError,
  BulkJobNotDeletableError,
  BulkJobNotDeletedError,
  BulkJobNotFoundError,
  BulkJobNotPausableError,
  BulkJobNotResumableError,
  BulkJobNotRetryableError,
  NothingToRetryError,
  TooManyExportsError,
} from './bulk-jobs.errors';
import { BulkJobCreator, type CreateResult, type ItemWriter, type JobSpec } from './bulk-job-creator';
import { BulkJobsRepository, type OwnerScope, type Transaction } from './bulk-jobs.repository';
import { dataTooLarge, type CreateBulkJobDto, type TargetInput } from './dto/create-bulk-job.dto';
import { itemBytes, jobBytes, takePage } from './page-budget';
import { hashRequest } from './request-hash';
import type {
  BulkJobItemListResponseDto,
  BulkJobListResponseDto,
  BulkJobResponseDto,
  DeleteBulkJobResponseDto,
  JobCountsResponseDto,
} from './dto/bulk-job-response.dto';
import { MAX_LABELS, parseLabelFilter } from '../jobs/job-labels';
import type { PatchBulkJobDto, RetryBulkJobDto } from './dto/job-control.dto';
import type {
  ExportResultsQueryDto,
  JobCountsQueryDto,
  ListItemsQueryDto,
  ListJobsQueryDto,
} from './dto/list-query.dto';
import {
  CrlfRecords,
  CSV_CONTENT_TYPE,
  exportFileName,
  exportFormatOf,
  NDJSON_CONTENT_TYPE,
} from './results-export';

/** A results export, ready to be sent: its body is a stream. */
export interface ResultsExport {
  contentType: string;
  fileName: string;
  body: Readable;
}

/** Items are written with one multi-row INSERT per this many targets. */
const INSERT_CHUNK = 5_000;

/** How long a DELETE that lost a race waits for a change of the job row in flight. */
const DELETE_LOCK_TIMEOUT = '2s';

/** Label filters that no job can match: one key with two values. */
const CONTRADICTORY = Symbol('contradictory');

/**
 * The `label` filters (`key:value`, all must match) as the JSON object a
 * containment test takes, keys sorted (the cursor's fingerprint binds it);
 * a 400 for a malformed one.
 */
function labelFilter(filters: string[] | undefined): string | undefined | typeof CONTRADICTORY {
  if (!filters || filters.length === 0) return undefined;
  const wanted = new Map<string, string>();
  for (const filter of filters) {
    const pair = parseLabelFilter(filter);
    if (!pair) {
      throw new ValidationFailedError({
        label: `"${filter.slice(0, 80)}" is not key:value (a key of 1 to 63 of a-z 0-9 _ . - and a value of at most 255 characters)`,
      });
    }
    const [key, value] = pair;
    if (wanted.has(key) && wanted.get(key) !== value) return CONTRADICTORY;
    wanted.set(key, value);
  }
  return JSON.stringify(Object.fromEntries([...wanted].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
}

/** Whose jobs the caller may see and act on: their own, or every owner's for an admin. */
function scopeOf(principal: Principal): OwnerScope {
  return principal.isAdmin ? null : principal.sub;
}

/**
 * Whose jobs a listing covers: the caller's scope, narrowed to one owner by an admin's `owner`
 * filter. The filter is the admin's alone: for anyone else it would name jobs they may not see.
 */
function filteredScope(principal: Principal, owner: string | undefined): OwnerScope {
  if (owner === undefined) return scopeOf(principal);
  if (!principal.isAdmin) throw new ForbiddenError(SCOPES.admin);
  return owner;
}

/**
 * The rules of the bulk job lifecycle. Every state change is one conditional
 * statement in PostgreSQL (BulkJobsRepository), so that concurrent requests
 * and workers can never push a job through a transition its current status
 * does not allow.
 */
@Injectable()
export class BulkJobsService {
  private readonly exports: ConcurrencyLimiter;

  constructor(
    private readonly jobs: BulkJobsRepository,
    private readonly creator: BulkJobCreator,
    private readonly cursors: CursorCodec,
    private readonly env: Env,
  ) {
    this.exports = new ConcurrencyLimiter(env.BULK_JOBS_MAX_EXPORTS_PER_OWNER, maxExports(env));
  }

  /** Results exports in progress in this process (of one owner, or of all): each holds a connection. */
  exportsInProgress(owner?: string): number {
    return this.exports.inUse(owner);
  }

  /** A create with its targets in a JSON body. */
  async create(principal: Principal, dto: CreateBulkJobDto, idempotencyKey?: string): Promise<CreateResult> {
    const params = this.creator.validParams(dto);
    if (dto.targets.length > this.env.BULK_JOBS_MAX_INLINE_TARGETS) {
      throw new ValidationFailedError({
        targets: `at most ${this.env.BULK_JOBS_MAX_INLINE_TARGETS} targets can be sent inline; stream larger jobs as application/x-ndjson`,
      });
    }
    const spec = { action: dto.action, params, options: dto.options, labels: dto.labels };
    return this.creator.create(
      principal,
      spec,
      new InlineItems(this.jobs, spec, dto.targets, this.dataOf(dto.targets)),
      idempotencyKey,
    );
  }

  /**
   * Each target's data as JSON text (null for none), refusing data larger
   * than BULK_JOBS_MAX_TARGET_DATA_BYTES. The text is what the items are
   * written with, so it is made once.
   */
  private dataOf(targets: TargetInput[]): (string | null)[] {
    const max = this.env.BULK_JOBS_MAX_TARGET_DATA_BYTES;
    return targets.map((t, i) => {
      if (typeof t === 'string' || t.data === undefined) return null;
      const json = JSON.stringify(t.data);
      if (json.length > max / 3 && Buffer.byteLength(json) > max) {
        throw new ValidationFailedError({
          targets: `targets[${i}] ${dataTooLarge(Buffer.byteLength(json), max)}`,
        });
      }
      return json;
    });
  }

  /**
   * A page of jobs, newest first: `limit` of them, or fewer when their
   * params pass BULK_JOBS_MAX_PAGE_BYTES (the next page goes on from there).
   */
  async list(principal: Principal, query: ListJobsQueryDto): Promise<BulkJobListResponseDto> {
    const limit = clampLimit(query.limit);
    const maxBytes = this.env.BULK_JOBS_MAX_PAGE_BYTES;
    const labels = labelFilter(query.label);
    if (labels === CONTRADICTORY) return { items: [], next_cursor: null };
    const filters = {
      status: query.status,
      show_deleted: query.show_deleted ?? false,
      owner: principal.isAdmin ? '*' : principal.sub,
      // Only when given, so that the cursors of listings without it stay as they were.
      ...(query.owner === undefined ? {} : { owner_filter: query.owner }),
      ...(labels === undefined ? {} : { labels }),
    };
    const rows = await this.jobs.listJobs({
      owner: filteredScope(principal, query.owner),
      status: query.status,
      labels,
      showDeleted: filters.show_deleted,
      before: query.cursor ? this.decode(query.cursor, 'jobs', filters, decodeTimeIdPosition) : undefined,
      limit: limit + 1,
      pageBytes: maxBytes,
    });
    const { items, last, more } = takePage(rows, limit, maxBytes, toJobResponse, jobBytes);
    return {
      items,
      next_cursor:
        more && last ? this.cursors.encode('jobs', filters, [last.createdAt.toISOString(), last.id]) : null,
    };
  }

  /** The caller's jobs (not deleted) by status: every owner's for an admin, or one owner's. */
  async counts(principal: Principal, query: JobCountsQueryDto): Promise<JobCountsResponseDto> {
    const rows = await this.jobs.countJobsByStatus(filteredScope(principal, query.owner));
    const byStatus = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
    for (const row of rows) byStatus[row.status] = row.jobs;
    return { by_status: byStatus, total: rows.reduce((n, row) => n + row.jobs, 0) };
  }

  /** One job, deleted ones included (AIP-164), until it is purged. */
  async get(principal: Principal, id: string): Promise<BulkJobResponseDto> {
    return toJobResponse(await this.findVisible(principal, id));
  }

  /** A page of a job's items in target order, cut short as list() cuts its pages. */
  async listItems(
    principal: Principal,
    jobId: string,
    query: ListItemsQueryDto,
  ): Promise<BulkJobItemListResponseDto> {
    await this.findVisible(principal, jobId);
    const limit = clampLimit(query.limit);
    const filters = { job: jobId, status: query.status };
    const maxBytes = this.env.BULK_JOBS_MAX_PAGE_BYTES;
    const rows = await this.jobs.listItems(jobId, {
      status: query.status,
      afterSeq: query.cursor ? this.decode(query.cursor, 'items', filters, decodeSeqPosition) : undefined,
      limit: limit + 1,
      pageBytes: maxBytes,
    });
    const { items, last, more } = takePage(rows, limit, maxBytes, toItemResponse, itemBytes);
    return {
      items,
      next_cursor: more && last ? this.cursors.encode('items', filters, [last.seq]) : null,
    };
  }

  /**
   * Every item of a job (of the given statuses), in target order, as NDJSON or
   * CSV as `accept` asks, streamed from one snapshot of the database. The job
   * is looked up as GET does: a deleted job that is still retained exports
   * too. Destroying the body (a client that goes away) ends the query.
   *
   * An export holds a pooled connection for as long as its client reads, so
   * exports are capped: per owner (BULK_JOBS_MAX_EXPORTS_PER_OWNER) and per
   * process (BULK_JOBS_MAX_EXPORTS, a quarter of the pool by default). Past
   * either cap the request is a 429 before any database work.
   */
  async exportResults(
    principal: Principal,
    id: string,
    query: ExportResultsQueryDto,
    accept: string | undefined,
  ): Promise<ResultsExport> {
    // Taken before anything is awaited, so that concurrent exports cannot all see room for one more.
    const slot = this.exports.acquire(principal.sub);
    if (!slot.acquired) throw new TooManyExportsError(slot.limit, slot.refusedBy);
    const format = exportFormatOf(accept);
    let rows: Readable;
    try {
      await this.findVisible(principal, id);
      // The slot is the connection's: it is given back with it, however the export ends.
      rows = await this.jobs.exportItems(
        id,
        query.status,
        format,
        this.env.BULK_JOBS_EXPORT_TIMEOUT_MS,
        slot.release,
      );
    } catch (err) {
      slot.release();
      throw err;
    }
    const fileName = exportFileName(id, query.status, format);
    if (format === 'ndjson') return { contentType: NDJSON_CONTENT_TYPE, fileName, body: rows };
    // pipeline() destroys the COPY's stream when the body is destroyed, and the other way round.
    const body = pipeline(rows, new CrlfRecords(), () => undefined);
    return { contentType: CSV_CONTENT_TYPE, fileName, body };
  }

  /**
   * Cancels a pending, running or paused job, in a few milliseconds whatever its
   * size: the job turns `cancelling` and its first BULK_JOBS_CANCEL_BATCH_SIZE
   * pending items `skipped`; the workers skip the rest in batches of the same
   * size, and the job is `cancelled` once nothing of it is pending or running
   * (at once when that batch was all). Cancelling a `cancelling` job is a no-op.
   */
  async cancel(principal: Principal, id: string): Promise<BulkJobResponseDto> {
    const cancelled = await this.jobs.cancelJob(scopeOf(principal), id, this.env.BULK_JOBS_CANCEL_BATCH_SIZE);
    if (cancelled) return toJobResponse(cancelled);

    const current = await this.findVisible(principal, id);
    if (current.deletedAt) throw new BulkJobNotFoundError(id);
    if (current.status === 'cancelling') return toJobResponse(current);
    throw new BulkJobNotCancellableError(id, current.status);
  }

  /**
   * Changes the job's labels with a JSON merge patch (RFC 7396): a string
   * sets a key, null removes it. The merge and the limit on the number of
   * keys are one conditional UPDATE, so concurrent patches cannot together
   * pass it. A deleted job is not found.
   */
  async patch(principal: Principal, id: string, dto: PatchBulkJobDto): Promise<BulkJobResponseDto> {
    const set: Record<string, string> = {};
    const remove: string[] = [];
    for (const [key, value] of Object.entries(dto.labels)) {
      if (value === null) remove.push(key);
      else set[key] = value;
    }
    const patched = await this.jobs.mergeLabels(scopeOf(principal), id, set, remove, MAX_LABELS);
    if (patched) return toJobResponse(patched);
    const current = await this.findVisible(principal, id);
    if (current.deletedAt) throw new BulkJobNotFoundError(id);
    throw new ValidationFailedError(
      { labels: `would have more than ${MAX_LABELS} keys after the merge` },
      `A job has at most ${MAX_LABELS} labels.`,
    );
  }

  /**
   * Pauses a pending or running job: workers claim nothing more from it, and
   * items in flight finish and are recorded (a paused job whose last item
   * finishes that way completes or fails as usual). Pausing a paused job
   * answers it unchanged. The change is one conditional UPDATE; when it
   * matches nothing, a read picks the answer. A job the read finds pausable
   * was resumed in between: the UPDATE is tried again.
   */
  async pause(principal: Principal, id: string): Promise<BulkJobResponseDto> {
    for (let attempt = 0; ; attempt++) {
      const paused = await this.jobs.pauseJob(scopeOf(principal), id);
      if (paused) return toJobResponse(paused);
      const current = await this.findVisible(principal, id);
      if (current.deletedAt) throw new BulkJobNotFoundError(id);
      if (current.status === 'paused') return toJobResponse(current);
      if (!isPausable(current.status) || attempt >= 2) throw new BulkJobNotPausableError(id, current.status);
    }
  }

  /**
   * Resumes a paused job: `running` again (`pending` if no item has started
   * yet), and claimable at once. Any other status is a 409.
   */
  async resume(principal: Principal, id: string): Promise<BulkJobResponseDto> {
    for (let attempt = 0; ; attempt++) {
      const resumed = await this.jobs.resumeJob(scopeOf(principal), id);
      if (resumed) return toJobResponse(resumed);
      const current = await this.findVisible(principal, id);
      if (current.deletedAt) throw new BulkJobNotFoundError(id);
      // Paused again by the time of the read (resumed and paused in between): try again.
      if (current.status !== 'paused' || attempt >= 2) throw new BulkJobNotResumableError(id, current.status);
    }
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

  /**
   * A new job with the finished job's action, params and options, whose
   * targets are the job's failed items (and skipped ones with
   * include_skipped), in their order, with their data: copied by one
   * INSERT … SELECT inside the create's transaction, so that the Idempotency-Key,
   * the active-jobs limit and the owner rules are those of a create. The new
   * job belongs to the caller and says `retry_of`; the original is left as it
   * was. A deleted job is not found, as for cancel: restore it first.
   */
  async retry(
    principal: Principal,
    id: string,
    dto: RetryBulkJobDto | undefined,
    idempotencyKey?: string,
  ): Promise<CreateResult> {
    const source = await this.findVisible(principal, id);
    if (source.deletedAt) throw new BulkJobNotFoundError(id);
    if (!isTerminal(source.status)) throw new BulkJobNotRetryableError(id, source.status);
    const includeSkipped = dto?.include_skipped ?? false;
    const spec: JobSpec = {
      action: source.action,
      params: source.params,
      options: source.options,
      labels: source.labels,
      retryOf: source.id,
    };
    return this.creator.create(
      principal,
      spec,
      new RetryItems(this.jobs, source, includeSkipped, this.env.BULK_JOBS_MAX_TARGETS),
      idempotencyKey,
    );
  }

  /** Undoes a soft delete while the job is still retained. */
  async restore(principal: Principal, id: string): Promise<BulkJobResponseDto> {
    const restored = await this.jobs.restoreJob(scopeOf(principal), id);
    if (restored) return toJobResponse(restored);
    await this.findVisible(principal, id);
    throw new BulkJobNotDeletedError(id);
  }

  /**
   * Expires finished jobs past BULK_JOBS_FINISHED_RETENTION_DAYS (when set):
   * they are soft-deleted, due for purge at once. Returns how many.
   */
  async expireFinished(batchSize = 1000): Promise<number> {
    const days = this.env.BULK_JOBS_FINISHED_RETENTION_DAYS;
    if (days === undefined) return 0;
    let expired = 0;
    for (;;) {
      const n = await this.jobs.expireFinishedJobs(days, batchSize);
      expired += n;
      if (n < batchSize) return expired;
    }
  }

  /**
   * Hard-deletes the jobs whose retention has run out: each job's items in
   * batches of BULK_JOBS_PURGE_BATCH_SIZE, one short statement each, then the
   * job's row. The job is past its purge time, so clients no longer see it;
   * a purge cut short (a crash, a lost database) leaves it so, and the next
   * one carries on where this one stopped.
   */
  async purgeExpired(jobsPerPage = 100): Promise<number> {
    const batch = this.env.BULK_JOBS_PURGE_BATCH_SIZE;
    let purged = 0;
    let after: { purgeAt: Date; id: string } | undefined;
    for (;;) {
      const jobs = await this.jobs.jobsToPurge(jobsPerPage, after);
      for (const job of jobs) {
        // Seq ranges of `batch` from the first item left; an empty range looks up where the items go on.
        let from = await this.jobs.firstItemSeq(job.id, 0);
        while (from !== null) {
          const deleted = await this.jobs.deleteItemRange(job.id, from, batch);
          from = deleted > 0 ? from + batch : await this.jobs.firstItemSeq(job.id, from + batch);
        }
        if (await this.jobs.deletePurgedJob(job.id)) purged++;
      }
      if (jobs.length < jobsPerPage) break;
      after = jobs[jobs.length - 1];
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

  /** The position of a cursor this server issued for this listing and these filters; else a 400. */
  private decode<P>(
    cursor: string,
    kind: string,
    filters: Record<string, unknown>,
    position: (p: unknown[]) => P,
  ): P {
    try {
      return position(this.cursors.decode(cursor, kind, filters));
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

/** The item writer of a JSON create: its targets in one `unnest` INSERT per INSERT_CHUNK. */
class InlineItems implements ItemWriter {
  readonly hashedBeforeWrite = true;

  constructor(
    private readonly jobs: BulkJobsRepository,
    private readonly spec: JobSpec,
    private readonly targets: TargetInput[],
    /** Each target's data as JSON text, or null. */
    private readonly datas: (string | null)[],
  ) {}

  private hash: string | undefined;

  // Hashed with the validated params (defaults filled in): omitted and default params are one request.
  requestHash(): string {
    this.hash ??= hashRequest(this.spec, this.targets);
    return this.hash;
  }

  async write(tx: Transaction, jobId: string): Promise<number> {
    const targets = this.targets;
    for (let start = 0; start < targets.length; start += INSERT_CHUNK) {
      const chunk = targets.slice(start, start + INSERT_CHUNK);
      const targetIds = chunk.map((t) => (typeof t === 'string' ? t : t.id));
      const datas = this.datas.slice(start, start + INSERT_CHUNK);
      await this.jobs.insertItems(tx, jobId, { firstSeq: start, targetIds, datas });
    }
    return targets.length;
  }
}

/** The item writer of a retry: the source job's failed (and skipped) items, copied in the database. */
class RetryItems implements ItemWriter {
  readonly hashedBeforeWrite = true;

  constructor(
    private readonly jobs: BulkJobsRepository,
    private readonly source: JobView,
    private readonly includeSkipped: boolean,
    private readonly maxTargets: number,
  ) {}

  // Never the hash of a create: a key used for a create and then for a retry is a reuse (422).
  requestHash(): string {
    return hashRequest(
      { action: 'retry', params: { retry_of: this.source.id, include_skipped: this.includeSkipped } },
      [],
    );
  }

  async write(tx: Transaction, jobId: string): Promise<number> {
    const statuses: ItemStatus[] = this.includeSkipped ? ['failed', 'skipped'] : ['failed'];
    const n = await this.jobs.insertRetryItems(tx, jobId, this.source.id, statuses);
    if (n === 0) throw new NothingToRetryError(this.source.id, this.source.status, this.includeSkipped);
    if (n > this.maxTargets) {
      throw new ValidationFailedError({
        include_skipped: `the retry would have ${n} targets, more than BULK_JOBS_MAX_TARGETS (${this.maxTargets})`,
      });
    }
    return n;
  }
}
