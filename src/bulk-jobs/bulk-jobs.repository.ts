import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Transform, pipeline as connectStreams, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client, PoolClient } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { ObjectLiteral, Repository, SelectQueryBuilder, UpdateQueryBuilder } from 'typeorm';
import { Database } from '../database/database';
import { CoalescedStatement } from '../database/coalesced-statement';
import { prepared, selectList, sql, sqlLiterals, type Queryable, type Statement } from '../database/sql';
import { BulkJobIdempotencyKey, BulkJobItem } from '../jobs/bulk-job-item.entity';
import { BulkJob } from '../jobs/bulk-job.entity';
import {
  ACTIVE,
  CANCELLABLE,
  CLAIMABLE,
  DELETABLE,
  FINISHED,
  PAUSABLE,
  RESTORABLE,
  RESUMABLE,
  VISIBLE,
} from '../jobs/job-conditions';
import { TERMINAL_JOB_STATUSES, type ItemStatus, type JobStatus } from '../jobs/job-status';
import { skipPendingBatch } from '../jobs/cancel-batch.sql';
import { isUuid } from '../common/uuid';
import type { JobOptions } from '../jobs/job-types';
import { ITEM_VIEW, JOB_VIEW, type ItemView, type JobView, type NotificationView } from './bulk-job.mapper';
import type { ExportFormat } from './results-export';

/** A transaction's connection (BulkJobsRepository.transaction). */
export type Transaction = PoolClient;

/** Whose jobs a statement may see or touch: one owner's, or every owner's (null, for an admin). */
export type OwnerScope = string | null;

/** A job row with no item pending or running (its counters say so). */
const NOTHING_LEFT = `running_items = 0 AND succeeded_items + failed_items + skipped_items >= total_items`;

/** How long an Idempotency-Key record holds its key. */
const IDEMPOTENCY_WINDOW = `interval '24 hours'`;
/** First key of the advisory lock that serialises one owner's creates (the second is hashtext(owner)). */
const OWNER_CREATES_LOCK = 746_201_916;

export interface NewJob {
  id: string;
  owner: string;
  action: string;
  params: Record<string, unknown>;
  options: JobOptions;
  /** The job whose failed (and skipped) items this one retries. */
  retryOf: string | null;
  labels: Record<string, string>;
}

/** A job's targets for insertItems, as parallel arrays; `datas` holds JSON text or null. */
export interface ItemBatch {
  firstSeq: number;
  targetIds: string[];
  datas: (string | null)[];
}

export interface JobPageQuery {
  owner: OwnerScope;
  status?: JobStatus;
  /** Only jobs whose labels contain all of these (as JSON text). */
  labels?: string;
  showDeleted: boolean;
  /** Keyset position: the page starts after this job (newest first). */
  before?: { createdAt: string; id: string };
  limit: number;
  /** Rows after the first whose earlier rows stored this many bytes come without their large columns (PageRow). */
  pageBytes: number;
}

export interface ItemPageQuery {
  status?: ItemStatus;
  /** Keyset position: the page starts after this seq. */
  afterSeq?: number;
  limit: number;
  /** As JobPageQuery.pageBytes. */
  pageBytes: number;
}

/**
 * A row of a page. Once the rows before it have stored `pageBytes` bytes in
 * their client-sized columns (params; an item's data, result and last_error),
 * a row is `withheld`: those columns are not read (they are NULL here), and
 * the page ends before it. The first row is never withheld.
 */
export type PageRow<T> = T & { withheld: boolean };

/**
 * The stored size of the earlier rows of the page, in the page's order.
 * pg_column_size reads a TOASTed value's size from its pointer, so a page
 * detoasts (reads and decompresses) only the large values of the rows it
 * returns in full, not those of the rows it withholds.
 */
const storedBefore = (sizes: string, order: string) =>
  `COALESCE(sum(${sizes}) OVER (ORDER BY ${order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)`;
const JOB_PAGE_ORDER = 'job.created_at DESC, job.id DESC';
const JOB_STORED_BEFORE = storedBefore('pg_column_size(job.params)', JOB_PAGE_ORDER);
const ITEM_STORED_BEFORE = storedBefore(
  'COALESCE(pg_column_size(item.data), 0) + COALESCE(pg_column_size(item.result), 0) + ' +
    'COALESCE(pg_column_size(item.last_error), 0)',
  'item.seq',
);

export interface JobCountsByStatus {
  status: JobStatus;
  jobs: number;
  /** Items of pending and running jobs not claimed yet (bigint, as text). */
  pendingItems: string;
  /** Items claimed and not recorded yet (bigint, as text). */
  runningItems: string;
}

/** One lookup of a job by id, within an owner's jobs (or every owner's: null). */
interface JobLookup {
  owner: OwnerScope;
  id: string;
}

/** The keys of a coalesced run: parallel arrays, and how many. */
interface Keys {
  ids: string[];
  owners: OwnerScope[];
  count: number;
}

/**
 * The keys of a coalesced run as rows (with `more` arrays of the same
 * length beside them), numbered from 1 in their order. The
 * LIMIT is their count, so it drops nothing: it is there for the plan. A
 * prepared statement is planned once for all runs (a generic plan) only when
 * that plan looks no costlier than one made for each run's values; with its
 * arrays unknown, PostgreSQL puts ten keys in the generic plan, so a
 * statement run on fewer keys would be planned again at every run (one key:
 * 0.191 against 0.099 ms a run, pgbench). Under a LIMIT it does not know,
 * the planner expects one row. The plan, an index probe of bulk_jobs per
 * key, is the right one for any number of keys.
 */
const keyRows = (...more: string[]) =>
  `(SELECT * FROM unnest(${[':ids::uuid[]', ':owners::text[]', ...more].join(', ')}) WITH ORDINALITY LIMIT :count)`;

/** A soft delete of one job, within an owner's jobs (or every owner's: null). */
interface JobDeletion extends JobLookup {
  retentionDays: number;
}

/** What a soft delete deleted. */
export interface DeletedJob {
  id: string;
  status: JobStatus;
}

/**
 * Each coalesced statement (findJob's lookups, softDeleteJob's deletions)
 * keeps at most this fraction of the pool busy at once (a quarter: 3 of the
 * default 10 connections each); the rest stay for every other statement.
 * More would not make them faster: under load, each run that comes back
 * sends all that queued meanwhile.
 */
const COALESCED_SHARE_OF_POOL = 4;
/** The most keys one run carries: a few milliseconds of index probes at most. */
const MAX_KEYS_PER_RUN = 100;

/** One statement in two forms: for every owner's jobs (an admin) and for one owner's. */
interface Scoped<P extends object> {
  all: Statement<P>;
  own: Statement<P & { owner: string }>;
}

/**
 * Every statement the API runs on jobs, items and Idempotency-Key records.
 *
 * TypeORM says the statements it can say, from the entities: reads (select
 * lists from their metadata, rows in the entity's shape; `withDeleted()` or
 * not, as @DeleteDateColumn has it), the restore (with `updated_at` from
 * @UpdateDateColumn), the inserts and deletes of whole rows. They are built
 * once, here (a page statement once per combination of filters), and run on
 * the service's pool (Database): building the DELETE's statement for each
 * request cost 33 µs of CPU more per call, about a third of a DELETE's
 * (bench/README.md, "Data access").
 * Written by hand: what TypeORM cannot say (unnest, COPY, ON CONFLICT … DO
 * UPDATE … WHERE, SKIP LOCKED, a CTE that updates two tables, advisory locks,
 * set_config), aggregates, which it would only wrap, and the statements that
 * serve many GETs or DELETEs of /jobs/{id} at once (CoalescedStatement),
 * which join the table to the requests' keys.
 */
@Injectable()
export class BulkJobsRepository {
  private readonly jobView: string;
  /** A page's select lists: the large columns only while the page is within its bytes. */
  private readonly jobPageView: string;
  private readonly itemPageView: string;

  private readonly findVisible: Statement<Keys>;
  private readonly jobLookups: CoalescedStatement<JobLookup, JobView>;
  private readonly findVisibleMany: Statement<{ ids: string[] }>;
  private readonly softDelete: Statement<Keys & { retentionDays: number[] }>;
  private readonly deletes: CoalescedStatement<JobDeletion, DeletedJob>;
  private readonly lockVisible: Scoped<{ id: string }>;
  private readonly restore: Scoped<{ id: string }>;
  private readonly markCancelling: Scoped<{ id: string }>;
  private readonly pause: Scoped<{ id: string }>;
  private readonly patchLabels: Scoped<{ id: string; set: string; remove: string[]; maxLabels: number }>;
  private readonly resume: Scoped<{ id: string }>;
  private readonly insert: Statement<NewJob>;
  private readonly setTotal: Statement<{ id: string; totalItems: number }>;
  private readonly cancelItems: Statement<{ id: string; batch: number }>;
  private readonly findKey: Statement<{ owner: string; key: string }>;
  private readonly deleteExpiredKeys: Statement;
  private readonly pageShapes = new PageStatements();

  constructor(
    private readonly db: Database,
    @InjectRepository(BulkJob) private readonly jobs: Repository<BulkJob>,
    @InjectRepository(BulkJobItem) private readonly items: Repository<BulkJobItem>,
    @InjectRepository(BulkJobIdempotencyKey) private readonly keys: Repository<BulkJobIdempotencyKey>,
  ) {
    const job = jobs.metadata;
    this.jobView = selectList(job, JOB_VIEW);
    this.jobPageView = [
      selectList(
        job,
        JOB_VIEW.filter((p) => p !== 'params'),
      ),
      `CASE WHEN ${JOB_STORED_BEFORE} < :pageBytes THEN job.params END AS params`,
      `${JOB_STORED_BEFORE} >= :pageBytes AS withheld`,
    ].join(', ');
    const large = ['data', 'result', 'lastError'] as const;
    this.itemPageView = [
      selectList(
        items.metadata,
        ITEM_VIEW.filter((p) => !(large as readonly string[]).includes(p)),
      ),
      ...large.map((p) => {
        const column = items.metadata.findColumnWithPropertyName(p)!.databaseName;
        return `CASE WHEN ${ITEM_STORED_BEFORE} < :pageBytes THEN item.${column} END AS "${p}"`;
      }),
      `${ITEM_STORED_BEFORE} >= :pageBytes AS withheld`,
    ].join(', ');
    const visibleJob = () => this.selectJobs().withDeleted().where(VISIBLE);
    const updateJob = () => jobs.createQueryBuilder().update();

    // The statements of GET and DELETE /jobs/{id}, the API's hottest requests, are prepared on each
    // connection: parsed and planned at every run, the GET's cost PostgreSQL 3-4 times the CPU of a
    // prepared one's run (bench/README.md, "Toward 90% of the raw server", item 29).
    const preparedAs = (name: string) => (db.prepares ? name : undefined);
    // GET /jobs/{id} (and every other lookup of one job) coalesced: the lookups that arrive while
    // earlier ones are out go as one statement, one row per lookup found, each with its own owner
    // condition (NULL for an admin's). Under load, one round trip and one run serve many requests
    // (bench/README.md, "API", item 50: GET 0.81 of the raw server's req/s before, 1.4-1.6 after).
    this.findVisible = prepared(
      preparedAs('bulk_jobs_find_visible'),
      `SELECT lookup.ord::int AS "lookup", ${this.jobView}
       FROM ${keyRows()} AS lookup(job_id, job_owner, ord)
       JOIN bulk_jobs ON bulk_jobs.id = lookup.job_id
        AND (lookup.job_owner IS NULL OR bulk_jobs.owner = lookup.job_owner)
       WHERE ${VISIBLE}`,
    );
    this.jobLookups = new CoalescedStatement<JobLookup, JobView>(
      (lookups) => this.findVisibleJobs(lookups),
      Math.ceil(db.maxConnections / COALESCED_SHARE_OF_POOL),
      MAX_KEYS_PER_RUN,
    );
    this.findVisibleMany = sql(visibleJob().andWhere('job.id = ANY(:ids::uuid[])').getQuery());
    this.lockVisible = scoped(() =>
      jobs
        .createQueryBuilder('job')
        .select(selectList(job, ['status', 'deletedAt']))
        .withDeleted()
        .where(VISIBLE)
        .andWhere('job.id = :id')
        .setLock('for_no_key_update'),
    );
    // The seeded DELETE, coalesced as the lookups are: the status condition, the soft delete and
    // the purge time in one statement, for every deletion that arrives while earlier ones are out,
    // committed once for them all. Written by hand: TypeORM's UPDATE has no FROM, and its soft
    // delete, one job a statement, held the DELETE at 0.88-0.89 of the raw server's req/s,
    // coalesced 1.66-1.96 (bench/README.md, "API", item 50). A row another transaction holds is
    // skipped, not waited for: it is that deletion's own slow path (BulkJobsService.delete), never
    // the others', and never a slot of the coalesced runs held for as long as the lock; a lone
    // deletion takes this statement too. Two deletions of one job in one run delete it once; the
    // other finds it deleted, as it would after it.
    this.softDelete = prepared(
      preparedAs('bulk_jobs_soft_delete'),
      `WITH target AS (
         SELECT bulk_jobs.id, lookup.ord, lookup.retention_days
         FROM ${keyRows(':retentionDays::int[]')} AS lookup(job_id, job_owner, retention_days, ord)
         JOIN bulk_jobs ON bulk_jobs.id = lookup.job_id
          AND (lookup.job_owner IS NULL OR bulk_jobs.owner = lookup.job_owner)
         WHERE ${DELETABLE}
         FOR NO KEY UPDATE OF bulk_jobs SKIP LOCKED
       )
       UPDATE bulk_jobs
       SET deleted_at = now(), purge_at = now() + make_interval(days => target.retention_days), updated_at = now()
       FROM target
       WHERE bulk_jobs.id = target.id
       RETURNING target.ord::int AS "lookup", bulk_jobs.id, bulk_jobs.status`,
    );
    this.deletes = new CoalescedStatement<JobDeletion, DeletedJob>(
      (deletions) => this.softDeleteJobs(deletions),
      Math.ceil(db.maxConnections / COALESCED_SHARE_OF_POOL),
      MAX_KEYS_PER_RUN,
    );
    this.restore = scoped(() =>
      updateJob()
        .set({ deletedAt: () => 'NULL', purgeAt: () => 'NULL' })
        .where('id = :id')
        .andWhere(RESTORABLE)
        .returning(selectList(job, JOB_VIEW)),
    );
    // One short statement whatever the job's size: its counters say whether anything is left.
    this.markCancelling = scoped(() =>
      updateJob()
        .set({
          status: () => `CASE WHEN ${NOTHING_LEFT} THEN 'cancelled' ELSE 'cancelling' END`,
          finishedAt: () => `CASE WHEN ${NOTHING_LEFT} THEN now() ELSE finished_at END`,
          claimableAt: () => `CASE WHEN ${NOTHING_LEFT} THEN NULL ELSE claimable_at END`,
        })
        .where('id = :id')
        .andWhere(CANCELLABLE)
        .returning(selectList(job, JOB_VIEW)),
    );
    // A merge patch of the labels (RFC 7396), refused in the same statement when the result has too many keys.
    const merged = '((labels || :set::jsonb) - :remove::text[])';
    this.patchLabels = scoped(() =>
      updateJob()
        .set({ labels: () => merged })
        .where('id = :id')
        .andWhere(`deleted_at IS NULL AND ${VISIBLE}`)
        .andWhere(`(SELECT count(*) FROM jsonb_object_keys(${merged})) <= :maxLabels`)
        .returning(selectList(job, JOB_VIEW)),
    );
    // Workers claim only from pending and running jobs, so this is all a pause takes.
    this.pause = scoped(() =>
      updateJob()
        .set({ status: () => `'paused'` })
        .where('id = :id')
        .andWhere(PAUSABLE)
        .returning(selectList(job, JOB_VIEW)),
    );
    // Back to where it was (running once an item has started), claimable at once.
    this.resume = scoped(() =>
      updateJob()
        .set({
          status: () => `CASE WHEN started_at IS NULL THEN 'pending' ELSE 'running' END`,
          claimableAt: () => 'now()',
        })
        .where('id = :id')
        .andWhere(RESUMABLE)
        .returning(selectList(job, JOB_VIEW)),
    );
    // Every other column takes its default; the items are counted once written (setTotalItems).
    const fields: Record<keyof NewJob, () => string> = {
      id: () => ':id',
      owner: () => ':owner',
      action: () => ':action',
      params: () => ':params',
      options: () => ':options',
      retryOf: () => ':retryOf::uuid',
      labels: () => ':labels::jsonb',
    };
    this.insert = sql(
      jobs
        .createQueryBuilder()
        .insert()
        .values({ ...fields, totalItems: () => '0' })
        .updateEntity(false)
        .getQuery(),
    );
    this.setTotal = sql(
      updateJob()
        .set({ totalItems: () => ':totalItems' })
        .where('id = :id')
        .getQuery(),
    );
    this.findKey = sql(
      keys
        .createQueryBuilder('k')
        .select(selectList(keys.metadata, ['jobId', 'requestHash']))
        .where('k.owner = :owner AND k.key = :key')
        .getQuery(),
    );
    this.deleteExpiredKeys = sql(
      keys.createQueryBuilder().delete().where(`created_at < now() - ${IDEMPOTENCY_WINDOW}`).getQuery(),
    );
    this.cancelItems = sql(
      skipPendingBatch(`SELECT id AS job_id FROM bulk_jobs WHERE id = :id`, selectList(job, JOB_VIEW)),
    );
  }

  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.db.transaction(fn);
  }

  // --- jobs as clients see them -------------------------------------------

  /** The job if it is the owner's (or any owner's) and not past its purge time, deleted or not. */
  async findJob(owner: OwnerScope, id: string): Promise<JobView | undefined> {
    // A lookup shares its statement with others: an id the statement would refuse (no UUID) finds
    // nothing here rather than failing the others with it. Owners are verified tokens' subs, which
    // hold no NUL (TokenVerifier), the one thing a text parameter refuses.
    if (!isUuid(id)) return undefined;
    return this.jobLookups.run({ owner, id });
  }

  /** The jobs of a batch of lookups, in the lookups' order (undefined where none is found). */
  private async findVisibleJobs(lookups: JobLookup[]): Promise<(JobView | undefined)[]> {
    const rows = await this.findVisible.rows<JobView & { lookup: number }>(this.db.pool, {
      ids: lookups.map((l) => l.id),
      owners: lookups.map((l) => l.owner),
      count: lookups.length,
    });
    await this.withNotifications(rows);
    const found = new Array<JobView | undefined>(lookups.length);
    // Each row keeps its `lookup` number, which the mapper does not read.
    for (const row of rows) found[row.lookup - 1] = row;
    return found;
  }

  /** The jobs of `ids` that are not past their purge time (the event streams' poll). */
  async findJobs(ids: string[]): Promise<JobView[]> {
    return this.withNotifications(await this.findVisibleMany.rows<JobView>(this.db.pool, { ids }));
  }

  /** One page of jobs, newest first. */
  async listJobs(query: JobPageQuery): Promise<PageRow<JobView>[]> {
    const { owner, status, labels, before, showDeleted, limit, pageBytes } = query;
    const shape = `${owner === null ? 'all' : 'own'} ${status ? 'status' : ''} ${labels ? 'labels' : ''} ${before ? 'after' : ''} ${showDeleted}`;
    const statement = this.pageShapes.get(shape, () => {
      const page = this.jobs.createQueryBuilder('job').select(this.jobPageView).where(VISIBLE);
      if (showDeleted) page.withDeleted();
      if (owner !== null) page.andWhere('job.owner = :owner');
      if (status) page.andWhere('job.status = :status');
      // Containment, which bulk_jobs_labels_idx (GIN, jsonb_path_ops) serves.
      if (labels) page.andWhere('job.labels @> :labels::jsonb');
      if (before) page.andWhere('(job.createdAt, job.id) < (:createdAt::timestamptz, :id::uuid)');
      return page.orderBy('job.createdAt', 'DESC').addOrderBy('job.id', 'DESC');
    });
    return this.withNotifications(
      await statement.rows<PageRow<JobView>>(this.db.pool, {
        owner,
        status,
        labels,
        ...before,
        limit,
        pageBytes,
      }),
    );
  }

  /** One page of a job's items, in target order. */
  listItems(jobId: string, query: ItemPageQuery): Promise<PageRow<ItemView>[]> {
    const { status, afterSeq, limit, pageBytes } = query;
    const shape = `items ${status ? 'status' : ''} ${afterSeq === undefined ? '' : 'after'}`;
    const statement = this.pageShapes.get(shape, () => {
      const page = this.items
        .createQueryBuilder('item')
        .select(this.itemPageView)
        .where('item.jobId = :jobId');
      if (status) page.andWhere('item.status = :status');
      if (afterSeq !== undefined) page.andWhere('item.seq > :afterSeq');
      return page.orderBy('item.seq');
    });
    return statement.rows<PageRow<ItemView>>(this.db.pool, { jobId, status, afterSeq, limit, pageBytes });
  }

  /**
   * A job's items in target order (only those of `statuses`, when given), as
   * the bytes of an export, straight from `COPY (SELECT …) TO STDOUT`: the
   * rows are formatted by PostgreSQL and pass through here without being
   * parsed, and the stream's back-pressure holds the COPY when the reader is
   * slow, so memory stays constant whatever the job's size. One REPEATABLE
   * READ READ ONLY transaction: one snapshot, however long the export takes.
   * Destroying the stream before its end closes the connection, which ends
   * the backend's query at once (it was writing to that socket); the
   * connection check covers a query that is still scanning and not writing.
   * `released` is called once the connection is back in the pool (or
   * discarded), however the export ended, if it got a connection at all; the
   * returned stream ends only after that, so a client that starts its next
   * export on reading the end of this one finds its slot free.
   */
  async exportItems(
    jobId: string,
    statuses: readonly ItemStatus[] | undefined,
    format: ExportFormat,
    timeoutMs: number,
    released: () => void = () => undefined,
  ): Promise<Readable> {
    const client = await this.db.pool.connect();
    let closing: Promise<void> | undefined;
    let deadline: NodeJS.Timeout | undefined;
    const lost = (err: Error) => void finish(err);
    const finish = (broken?: Error): Promise<void> => {
      if (closing) return closing;
      clearTimeout(deadline);
      if (broken) {
        // The listener stays: the closed connection may still report errors, and it is discarded.
        (client as unknown as Client).connection.stream.destroy();
        client.release(broken);
        released();
        closing = Promise.resolve();
      } else {
        closing = client.query('COMMIT').then(
          () => {
            client.removeListener('error', lost);
            client.release();
            released();
          },
          (err: Error) => {
            client.release(err);
            released();
          },
        );
      }
      return closing;
    };
    // A connection that breaks mid-export reports an 'error' event, which must not crash the process.
    client.on('error', lost);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await EXPORT_SETTINGS.query(client, { timeout: `${timeoutMs}ms` });
      const rows = client.query(copyTo(exportStatement(jobId, statuses, format)));
      // statement_timeout does not end a COPY whose backend is blocked writing to a reader that stopped
      // reading: PostgreSQL acts on the cancel only once that write goes through. So the same limit runs
      // here too, and closing the connection ends the backend.
      deadline = setTimeout(() => rows.destroy(new Error('export timed out')), timeoutMs);
      deadline.unref();
      rows.once('end', () => void finish());
      rows.once('close', () => void finish(new Error('export ended before its last row')));
      rows.once('error', (err) => void finish(err));
      // The bytes as they come; the end waits for the connection's release. connectStreams() destroys
      // the COPY's stream when this one is destroyed (a client that goes away), and the other way round.
      const bytes = new Transform({
        transform: (chunk: Buffer, _encoding, done) => done(null, chunk),
        flush: (done) => void finish().then(() => done()),
      });
      return connectStreams(rows, bytes, () => undefined);
    } catch (err) {
      void finish(err as Error);
      throw err;
    }
  }

  // --- lifecycle ------------------------------------------------------------

  /**
   * Soft-deletes the job if it is deletable (finished, not deleted), in one
   * conditional UPDATE: a job whose status changes at the same moment is
   * either deleted as it was, or not at all.
   */
  async softDeleteJob(
    owner: OwnerScope,
    id: string,
    retentionDays: number,
    tx?: Transaction,
  ): Promise<DeletedJob | undefined> {
    if (!isUuid(id)) return undefined;
    // In a transaction (which holds the row's lock already), on its connection; else with the
    // deletions in flight beside it.
    const deletion = { owner, id, retentionDays };
    return tx ? (await this.softDeleteJobs([deletion], tx))[0] : this.deletes.run(deletion);
  }

  /** One run of the soft delete for `deletions`: what each one deleted, in their order. */
  private async softDeleteJobs(
    deletions: JobDeletion[],
    on: Queryable = this.db.pool,
  ): Promise<(DeletedJob | undefined)[]> {
    const rows = await this.softDelete.rows<DeletedJob & { lookup: number }>(on, {
      ids: deletions.map((d) => d.id),
      owners: deletions.map((d) => d.owner),
      retentionDays: deletions.map((d) => d.retentionDays),
      count: deletions.length,
    });
    const deleted = new Array<DeletedJob | undefined>(deletions.length);
    for (const { lookup, id, status } of rows) deleted[lookup - 1] = { id, status };
    return deleted;
  }

  /**
   * Locks the job's row for the rest of the transaction, waiting at most
   * `lockTimeout` (an interval, e.g. '2s') for a change in flight, and reads
   * its status under the lock.
   */
  async lockJob(
    tx: Transaction,
    owner: OwnerScope,
    id: string,
    lockTimeout: string,
  ): Promise<Pick<JobView, 'status' | 'deletedAt'> | undefined> {
    await SET_LOCK_TIMEOUT.query(tx, { lockTimeout });
    return (
      await this.scopedRows<Pick<JobView, 'status' | 'deletedAt'>, { id: string }>(
        this.lockVisible,
        owner,
        { id },
        tx,
      )
    )[0];
  }

  /** Undoes a soft delete while the job is retained; undefined when it is not deleted (or not visible). */
  async restoreJob(owner: OwnerScope, id: string): Promise<JobView | undefined> {
    return (
      await this.withNotifications(
        await this.scopedRows<JobView, { id: string }>(this.restore, owner, { id }),
      )
    )[0];
  }

  /**
   * Cancels a pending, running or paused job: one conditional UPDATE marks it
   * `cancelling` (`cancelled` at once when nothing is pending or running),
   * then one statement skips its first `batch` pending items, and marks it
   * `cancelled` if that was all; the workers' cancel sweep skips the rest.
   * Each statement is short and commits on its own, whatever the job's size.
   * Undefined when the job was not cancellable (or not visible).
   */
  async cancelJob(owner: OwnerScope, id: string, batch: number): Promise<JobView | undefined> {
    const [marked] = await this.scopedRows<JobView, { id: string }>(this.markCancelling, owner, { id });
    if (!marked) return undefined;
    const [swept] =
      marked.status === 'cancelling' ? await this.cancelItems.rows<JobView>(this.db.pool, { id, batch }) : [];
    return (await this.withNotifications([swept ?? marked]))[0];
  }

  /**
   * Merges `set` into the job's labels and removes the keys of `remove`, in
   * one conditional UPDATE that also checks the result's size: undefined when
   * the job is not visible, deleted, or would have more than `maxLabels` keys.
   */
  async mergeLabels(
    owner: OwnerScope,
    id: string,
    set: Record<string, string>,
    remove: string[],
    maxLabels: number,
  ): Promise<JobView | undefined> {
    const params = { id, set: JSON.stringify(set), remove, maxLabels };
    return (await this.scopedRows<JobView, typeof params>(this.patchLabels, owner, params))[0];
  }

  /**
   * Pauses a pending or running job in one conditional UPDATE: workers claim
   * nothing more from it; items in flight finish and are recorded. Undefined
   * when the job was not pausable (or not visible).
   */
  async pauseJob(owner: OwnerScope, id: string): Promise<JobView | undefined> {
    return (await this.scopedRows<JobView, { id: string }>(this.pause, owner, { id }))[0];
  }

  /** Resumes a paused job in one conditional UPDATE; undefined when it was not paused (or not visible). */
  async resumeJob(owner: OwnerScope, id: string): Promise<JobView | undefined> {
    return (await this.scopedRows<JobView, { id: string }>(this.resume, owner, { id }))[0];
  }

  // --- creates --------------------------------------------------------------

  /** The job's row, with no items yet (setTotalItems counts them). */
  async insertJob(tx: Transaction, job: NewJob): Promise<void> {
    await this.insert.query(tx, job);
  }

  async setTotalItems(tx: Transaction, id: string, totalItems: number): Promise<void> {
    await this.setTotal.query(tx, { id, totalItems });
  }

  /** Items from parallel arrays, in one statement (`unnest`). */
  async insertItems(tx: Transaction, jobId: string, batch: ItemBatch): Promise<void> {
    await INSERT_ITEMS.query(tx, { jobId, ...batch });
  }

  /**
   * The items of a retry: the items of job `sourceId` in `statuses` (failed,
   * and skipped if asked), in their order, with their data, renumbered from
   * 0, in one INSERT … SELECT; returns how many. The source must be finished
   * (a job's items no longer change then), which the statement checks itself.
   * Reads the failed items through bulk_job_items_failed_idx.
   */
  async insertRetryItems(
    tx: Transaction,
    jobId: string,
    sourceId: string,
    statuses: readonly ItemStatus[],
  ): Promise<number> {
    return (await INSERT_RETRY_ITEMS.query(tx, { jobId, sourceId, statuses: [...statuses] })).rowCount ?? 0;
  }

  /**
   * Items from rows in COPY's text format (job_id, seq, target_id, data).
   * pipeline() applies back-pressure both ways and owns the errors of the
   * COPY stream: an error of `rows` aborts the COPY (CopyFail), and a failing
   * connection rejects here instead of being an unhandled 'error' event.
   */
  async copyItems(tx: Transaction, rows: () => AsyncIterable<string>): Promise<void> {
    // One COPY lasts as long as its client sends targets (10M: over a minute): the pool's
    // statement_timeout must not cut it. The client's pauses are bounded by BODY_IDLE_TIMEOUT_MS.
    await NO_STATEMENT_TIMEOUT.query(tx, {});
    await pipeline(rows, tx.query(copyFrom(COPY_ITEMS)));
  }

  /**
   * Takes the key for this job, unless a live (under 24 h) record holds it:
   * false then. The primary key on (owner, key) settles concurrent requests:
   * the second waits for the first to commit and then sees its record.
   */
  async claimIdempotencyKey(
    tx: Transaction,
    record: { owner: string; key: string; requestHash: string; jobId: string },
  ): Promise<boolean> {
    return (await CLAIM_KEY.rows(tx, record)).length > 0;
  }

  /** The record of an Idempotency-Key, if any. */
  async findIdempotencyKey(
    owner: string,
    key: string,
  ): Promise<{ jobId: string; requestHash: string } | undefined> {
    return (await this.findKey.rows<{ jobId: string; requestHash: string }>(this.db.pool, { owner, key }))[0];
  }

  /**
   * Serialises the owner's creates until the transaction ends: a count of
   * active jobs taken after it cannot be overtaken by another create.
   */
  async lockOwnerCreates(tx: Transaction, owner: string): Promise<void> {
    await LOCK_OWNER_CREATES.query(tx, { lockKey: OWNER_CREATES_LOCK, owner });
  }

  /** The owner's pending, running and cancelling jobs (but `except`). */
  async countActiveJobs(owner: string, except: string | null, on: Queryable = this.db.pool): Promise<number> {
    const [row] = await COUNT_ACTIVE.rows<{ n: number }>(on, { owner, except });
    return row.n;
  }

  // --- upkeep ---------------------------------------------------------------

  /** Up to `limit` jobs past their purge time, in purge order, after the keyset position `after`. */
  async jobsToPurge(
    limit: number,
    after?: { purgeAt: Date; id: string },
  ): Promise<{ id: string; purgeAt: Date }[]> {
    return JOBS_TO_PURGE.rows(this.db.pool, {
      limit,
      afterAt: after?.purgeAt ?? null,
      afterId: after?.id ?? null,
    });
  }

  /** The lowest seq of job `jobId`'s items from `from` on (null: none left there). */
  async firstItemSeq(jobId: string, from: number): Promise<number | null> {
    const [row] = await FIRST_ITEM_SEQ.rows<{ seq: number | null }>(this.db.pool, { jobId, from });
    return row.seq;
  }

  /**
   * Deletes job `jobId`'s items with seqs in [from, from + batch), in one short
   * statement (a range of the primary key); returns how many it deleted.
   */
  async deleteItemRange(jobId: string, from: number, batch: number): Promise<number> {
    return (await DELETE_ITEM_RANGE.query(this.db.pool, { jobId, from, batch })).rowCount ?? 0;
  }

  /** Deletes the row of a job past its purge time (and, by cascade, its key and any item left); true if it did. */
  async deletePurgedJob(jobId: string): Promise<boolean> {
    return ((await DELETE_PURGED_JOB.query(this.db.pool, { jobId })).rowCount ?? 0) > 0;
  }

  /**
   * Soft-deletes up to `batch` finished jobs that nobody deleted and that
   * finished more than `days` days ago, due for purge at once; returns how many.
   */
  async expireFinishedJobs(days: number, batch: number): Promise<number> {
    return (await EXPIRE_FINISHED.query(this.db.pool, { days, batch })).rowCount ?? 0;
  }

  async purgeExpiredKeys(): Promise<void> {
    await this.deleteExpiredKeys.query(this.db.pool, {});
  }

  /**
   * The owner's (or every owner's) jobs that are not deleted, by status. One owner's are read
   * through bulk_jobs_owner_created_idx: 0.1 ms for an owner with 200 jobs, 85 ms for one with
   * 1,000,000 on this machine (an (owner, status) index would make that 32 ms, at a write on
   * every status change; not worth it for a dashboard's refresh).
   */
  async countJobsByStatus(owner: OwnerScope): Promise<{ status: JobStatus; jobs: number }[]> {
    return this.scopedRows(COUNT_JOBS_BY_STATUS, owner, {});
  }

  /** Jobs (not deleted) by status, with the queue depth; one pass over the jobs, none over the items. */
  countByStatus(): Promise<JobCountsByStatus[]> {
    return COUNT_BY_STATUS.rows<JobCountsByStatus>(this.db.pool, {});
  }

  /**
   * The jobs with their webhook's state (`notification`), read for the jobs
   * that asked for one only: a second statement on the webhook outbox's
   * (job_id, created_at) index, rather than a join in every job statement.
   */
  private async withNotifications<T extends JobView>(jobs: T[], on: Queryable = this.db.pool): Promise<T[]> {
    const ids = jobs.filter((j) => j.options?.notify).map((j) => j.id);
    if (ids.length === 0) return jobs;
    const rows = await LATEST_WEBHOOKS.rows<NotificationView & { jobId: string }>(on, { ids });
    const byJob = new Map(rows.map((r) => [r.jobId, r]));
    for (const job of jobs) job.notification = byJob.get(job.id) ?? null;
    return jobs;
  }

  private selectJobs(): SelectQueryBuilder<BulkJob> {
    return this.jobs.createQueryBuilder('job').select(this.jobView);
  }

  private scopedRows<R extends ObjectLiteral, P extends object>(
    statement: Scoped<P>,
    owner: OwnerScope,
    params: P,
    on: Queryable = this.db.pool,
  ): Promise<R[]> {
    return owner === null
      ? statement.all.rows<R>(on, params)
      : statement.own.rows<R>(on, { ...params, owner });
  }
}

/** Page statements TypeORM builds, once for each combination of filters (its shape). */
class PageStatements {
  private readonly byShape = new Map<string, Statement<PageParams>>();

  /** The statement of this shape, with `LIMIT :limit` (TypeORM's limit() would write the number in). */
  get(shape: string, build: () => SelectQueryBuilder<ObjectLiteral>): Statement<PageParams> {
    let statement = this.byShape.get(shape);
    if (!statement) {
      statement = sql<PageParams>(`${build().getQuery()} LIMIT :limit`);
      this.byShape.set(shape, statement);
    }
    return statement;
  }
}

/** The parameters of a page statement; each shape uses those of its filters. */
interface PageParams {
  limit: number;
  [filter: string]: unknown;
}

/** Both forms of a statement TypeORM builds: `build` is called once for each. */
function scoped<P extends object>(
  build: () => SelectQueryBuilder<BulkJob> | UpdateQueryBuilder<BulkJob>,
  preparedAs?: string,
): Scoped<P> {
  return {
    all: prepared(preparedAs && `${preparedAs}_all`, build().getQuery()),
    own: prepared(preparedAs && `${preparedAs}_own`, build().andWhere('owner = :owner').getQuery()),
  };
}

const SET_LOCK_TIMEOUT = sql<{ lockTimeout: string }>(
  `SELECT set_config('lock_timeout', :lockTimeout, true)`,
);

const INSERT_ITEMS = sql<{ jobId: string } & ItemBatch>(`
  INSERT INTO bulk_job_items (job_id, seq, target_id, data)
  SELECT :jobId, :firstSeq + t.ord - 1, t.id, t.data
  FROM unnest(:targetIds::text[], :datas::jsonb[]) WITH ORDINALITY AS t(id, data, ord)`);

/** For the rest of the transaction only (SET LOCAL). */
const NO_STATEMENT_TIMEOUT = sql(`SELECT set_config('statement_timeout', '0', true)`);

const LATEST_WEBHOOKS = sql<{ ids: string[] }>(`
  SELECT DISTINCT ON (job_id) job_id AS "jobId", status, attempts, last_error AS "lastError",
         delivered_at AS "deliveredAt"
  FROM bulk_job_webhooks WHERE job_id = ANY(:ids::uuid[])
  ORDER BY job_id, created_at DESC`);

const INSERT_RETRY_ITEMS = sql<{ jobId: string; sourceId: string; statuses: string[] }>(`
  INSERT INTO bulk_job_items (job_id, seq, target_id, data)
  SELECT :jobId, row_number() OVER (ORDER BY i.seq) - 1, i.target_id, i.data
  FROM bulk_job_items i
  WHERE i.job_id = :sourceId AND i.status = ANY(:statuses::text[])
    AND EXISTS (SELECT 1 FROM bulk_jobs j WHERE j.id = :sourceId AND j.status IN (${sqlLiterals(TERMINAL_JOB_STATUSES)}))
  ORDER BY i.seq`);

const COPY_ITEMS = 'COPY bulk_job_items (job_id, seq, target_id, data) FROM STDIN';

const CLAIM_KEY = sql<{ owner: string; key: string; requestHash: string; jobId: string }>(`
  INSERT INTO bulk_job_idempotency_keys AS k (owner, key, request_hash, job_id)
  VALUES (:owner, :key, :requestHash, :jobId)
  ON CONFLICT (owner, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, job_id = EXCLUDED.job_id, created_at = now()
    WHERE k.created_at < now() - ${IDEMPOTENCY_WINDOW}
  RETURNING job_id`);

const LOCK_OWNER_CREATES = sql<{ lockKey: number; owner: string }>(
  `SELECT pg_advisory_xact_lock(:lockKey, hashtext(:owner))`,
);

// ACTIVE is the predicate of the partial index bulk_jobs_owner_active_idx.
const COUNT_ACTIVE = sql<{ owner: string; except: string | null }>(`
  SELECT count(*)::int AS n FROM bulk_jobs
  WHERE owner = :owner AND ${ACTIVE} AND id IS DISTINCT FROM :except::uuid`);

// Through bulk_jobs_purge_idx, in keyset pages: jobs whose purge fails are passed over, not retried for ever.
const JOBS_TO_PURGE = sql<{ limit: number; afterAt: Date | null; afterId: string | null }>(`
  SELECT id, purge_at AS "purgeAt" FROM bulk_jobs
  WHERE purge_at <= now()
    AND (:afterAt::timestamptz IS NULL OR (purge_at, id) > (:afterAt::timestamptz, :afterId::uuid))
  ORDER BY purge_at, id
  LIMIT :limit`);

// A range of the primary key: each batch starts where the last ended, so that it does not wade
// through the index entries of the rows deleted before it. Nothing else writes a purged job's items.
const FIRST_ITEM_SEQ = sql<{ jobId: string; from: number }>(`
  SELECT min(seq) AS seq FROM bulk_job_items WHERE job_id = :jobId AND seq >= :from`);

// A range of the primary key rather than a LIMIT: PostgreSQL 15, 10,000,000 items, 10,000 a statement: a
// SELECT … ORDER BY seq LIMIT joined to the DELETE ran at 0.37 of a raw ranged DELETE (bench/README.md, "Big job").
const DELETE_ITEM_RANGE = sql<{ jobId: string; from: number; batch: number }>(`
  DELETE FROM bulk_job_items WHERE job_id = :jobId AND seq >= :from AND seq < :from + :batch`);

const DELETE_PURGED_JOB = sql<{ jobId: string }>(`
  DELETE FROM bulk_jobs WHERE id = :jobId AND purge_at <= now()`);

// FINISHED is the predicate of bulk_jobs_finished_idx.
const EXPIRE_FINISHED = sql<{ days: number; batch: number }>(`
  UPDATE bulk_jobs SET deleted_at = now(), purge_at = now(), updated_at = now()
  WHERE id IN (
    SELECT id FROM bulk_jobs
    WHERE ${FINISHED} AND finished_at < now() - make_interval(days => :days)
    ORDER BY finished_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED)`);

const COUNT_JOBS_BY_STATUS: Scoped<Record<string, never>> = {
  all: sql(`SELECT status, count(*)::int AS jobs FROM bulk_jobs WHERE deleted_at IS NULL GROUP BY status`),
  own: sql(`
    SELECT status, count(*)::int AS jobs FROM bulk_jobs
    WHERE owner = :owner AND deleted_at IS NULL GROUP BY status`),
};

const COUNT_BY_STATUS = sql(`
  SELECT status, count(*)::int AS jobs,
         COALESCE(sum(total_items - succeeded_items - failed_items - skipped_items - running_items)
           FILTER (WHERE ${CLAIMABLE}), 0) AS "pendingItems",
         COALESCE(sum(running_items), 0) AS "runningItems"
  FROM bulk_jobs WHERE deleted_at IS NULL GROUP BY status`);

// A cancelled export's backend notices a closed connection within a second even while it scans
// without writing (a status filter that matches few rows); statement_timeout is the export's own.
const EXPORT_SETTINGS = sql<{ timeout: string }>(`
  SELECT set_config('statement_timeout', :timeout, true),
         set_config('client_connection_check_interval', '1000', true)`);

const EXPORT_FINISHED_AT = `to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * One JSON object a line, written by PostgreSQL. The line is COPY'd as a
 * one-column CSV whose quote and delimiter characters (0x01, 0x02) never
 * occur in JSON text (JSON escapes every control character), so each line
 * goes out exactly as built: the text format would double its backslashes.
 */
const NDJSON_LINE = `'{"target_id":' || to_json(target_id)::text
  || ',"data":' || COALESCE(data::text, 'null')
  || ',"status":"' || status || '"'
  || ',"attempts":' || attempts
  || ',"result":' || COALESCE(result::text, 'null')
  || ',"error_code":' || COALESCE((last_error->'code')::text, 'null')
  || ',"error_message":' || COALESCE((last_error->'message')::text, 'null')
  || ',"finished_at":' || COALESCE('"' || ${EXPORT_FINISHED_AT} || '"', 'null')
  || '}'`;

const CSV_COLUMNS = `target_id, data, status, attempts, result,
  last_error->>'code' AS error_code, last_error->>'message' AS error_message,
  ${EXPORT_FINISHED_AT} AS finished_at`;

/**
 * The export's COPY. COPY takes no bind parameters, so the job id and the
 * statuses are written in as literals: the id has been parsed as a UUID and
 * the statuses checked against ITEM_STATUSES, and both are quoted besides.
 * The rows come in target order from the primary key (job_id, seq).
 * Exported for bench/export.mjs, whose baseline is this COPY without the API.
 */
export function exportStatement(
  jobId: string,
  statuses: readonly ItemStatus[] | undefined,
  format: ExportFormat,
): string {
  const filter = statuses && statuses.length > 0 ? ` AND status IN (${sqlLiterals(statuses)})` : '';
  const select = format === 'csv' ? CSV_COLUMNS : NDJSON_LINE;
  const options =
    format === 'csv' ? `FORMAT csv, HEADER true` : `FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02'`;
  return (
    `COPY (SELECT ${select} FROM bulk_job_items WHERE job_id = ${sqlLiterals([jobId])}::uuid${filter} ` +
    `ORDER BY seq) TO STDOUT WITH (${options})`
  );
}
