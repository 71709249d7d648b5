import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { ActionsRegistry } from '../actions/actions.registry';
import { Env } from '../config/env';
import { Metrics } from '../metrics/metrics';
import { retryDelayMs, type BackoffPolicy } from './backoff';
import { maxAttemptsOf } from './claim-plan';
import { CancelSweeper } from './cancel-sweeper';
import { EngineEvents, FailureLog } from './engine-events';
import {
  EngineStore,
  type ClaimedArrays,
  type ClaimResult,
  type ClaimStart,
  type PickedJob,
} from './engine-store';
import { ItemRunner } from './item-runner';
import { LeaseKeeper } from './lease-keeper';
import { ResultRecorder } from './result-recorder';
import { newRunningItem, type ClaimedJob, type RunningItem } from './types';
import { Wake } from './wake';

/**
 * After a failed claim (usually a lost database), the next try waits about
 * 250 ms, then twice as long after each further failure, up to 2 s, half of
 * each pause random (retryDelayMs): the loop backs off, claims again within
 * 2 s of the database coming back, and the workers do not all come back at once.
 */
const CLAIM_ERROR_BACKOFF: BackoffPolicy = { baseMs: 250, maxMs: 2000 };
/** A job whose row a claim could not lock in time is left alone this long. */
const BUSY_JOB_PAUSE_MS = 1000;
const NONE: string[] = [];
/** After the shutdown grace, aborted actions get this long to settle before they are released regardless. */
const ABORT_SETTLE_MS = 1000;
/**
 * Parts of a worker's room (WORKER_BATCH_SIZE) besides one per claim in
 * flight: one whose items run and one being written. Claims and writes are of
 * one part each, so that no claim waits for the items of the last one to run
 * or to be written.
 */
const PARTS_BESIDES_CLAIMS = 2;
/**
 * Every this many claims of the same job in a row, a claim looks for pending
 * items from the job's start rather than from where the last one began (see
 * ClaimFrom in engine.sql.ts), so that items that became pending again below
 * that point (retries, released items, swept leases) are claimed soon.
 */
const FULL_CLAIM_EVERY = 8;
/**
 * A claim that finds another worker's claim before its own on the job keeps
 * this worker to one claim at a time for this long. Not just for that claim:
 * two workers' claims in flight at once commit in either order, so a claim
 * may find its own worker's last claim although another worker's is between.
 */
const SHARED_JOB_HOLD_MS = 1000;

/**
 * One worker: claims batches of items, runs them, records their outcomes,
 * keeps their leases alive and sweeps expired leases of other workers.
 *
 *   claim loop ──► ItemRunner (WORKER_CONCURRENCY at a time, round robin by job)
 *        ▲                │ outcomes
 *        │ room           ▼
 *        └──────── ResultRecorder (batched writes) ──► PostgreSQL
 *
 * The worker holds at most WORKER_BATCH_SIZE claimed, unrecorded items, and
 * claims and writes them a part at a time: its room is cut into one part per
 * claim in flight (WORKER_CLAIMS_IN_FLIGHT, each claim loop on a connection of
 * its own) and two more (PARTS_BESIDES_CLAIMS). A loop claims again as soon as
 * a part of the room is free, counting the parts the other loops' claims may
 * bring, so that while the items of one part run and another part is written,
 * the next claims are already at the database: one claim at a time kept the
 * database waiting for the worker between claims (bench/README.md, "Engine").
 */
@Injectable()
export class WorkerService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Worker');
  readonly workerId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly runner: ItemRunner;
  private readonly recorder: ResultRecorder;
  private readonly leases: LeaseKeeper;
  private readonly cancels: CancelSweeper;
  /** Claimed, unrecorded items by job id and seq. */
  private readonly held = new Map<string, Map<number, RunningItem>>();
  private heldCount = 0;
  /** Room the claims in flight hold for the items they may bring. */
  private claimingCount = 0;
  /**
   * The last claim came back full, and no claim of another worker was seen
   * for SHARED_JOB_HOLD_MS: there is more to claim than one claim at a time
   * takes, and no other worker takes it. Only then do the claim loops beyond
   * the first claim too, so that an idle worker polls, a short job is
   * claimed, and a job that several workers claim from is claimed by each,
   * one claim at a time (several workers of several claims each skip each
   * other's locked items, and were slower together than one alone:
   * bench/README.md, "Engine").
   */
  private backlog = false;
  /** Until when this worker counts as sharing its jobs with other workers (see backlog). */
  private sharedUntil = 0;
  private readonly wake = new Wake();
  private stopping = false;
  private loop: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private actions: string[] = [];
  private readonly avoid = new Map<string, number>();
  /**
   * The job the last claim took from, where that claim began (the next
   * one's hint), how many claims of it in a row began past its start, and
   * the ranges of it reserved for this worker's next claims, oldest first.
   */
  private claimFrom: { jobId: string; seq: number; streak: number; reserved: number[] } | null = null;
  private readonly events: EngineEvents;
  private readonly claimFailures = new FailureLog(this.logger, 'claim');

  constructor(
    private readonly store: EngineStore,
    private readonly registry: ActionsRegistry,
    private readonly env: Env,
    private readonly metrics: Metrics,
  ) {
    this.events = new EngineEvents(this.workerId, metrics);
    const policy: BackoffPolicy = { baseMs: env.WORKER_RETRY_BASE_MS, maxMs: env.WORKER_RETRY_MAX_MS };
    this.runner = new ItemRunner(
      env.WORKER_CONCURRENCY,
      policy,
      (item) => this.recorder.add(item),
      (item) => this.forget([item]),
    );
    this.recorder = new ResultRecorder({
      write: (items) => this.write(items),
      flushSize: this.part,
      intervalMs: env.WORKER_FLUSH_INTERVAL_MS,
      quiet: () => this.runner.activeCount === 0 && this.runner.queued === 0,
      onRecorded: (items) => this.forget(items),
    });
    this.leases = new LeaseKeeper(
      store,
      this.workerId,
      env,
      {
        heldItems: () => this.heldItems(),
        isBeingRecorded: (item) => this.recorder.isInFlight(item),
        isHeld: (item) => this.held.get(item.job.id)?.get(item.seq) === item,
        lost: (item) => this.lose(item),
      },
      this.events,
    );
    this.cancels = new CancelSweeper(store, this.events, {
      batch: env.BULK_JOBS_CANCEL_BATCH_SIZE,
      pollMs: env.WORKER_POLL_INTERVAL_MS,
    });
  }

  /**
   * One batch of outcomes; a failure leaves them to the recorder, which keeps
   * them and tries again. Items whose lease was lost meanwhile are neither
   * written (another worker has them now) nor counted.
   */
  private async write(items: RunningItem[]): Promise<void> {
    const live = items.some((item) => item.lost) ? items.filter((item) => !item.lost) : items;
    if (live.length === 0) return;
    const jobs = await this.store.record(this.workerId, live);
    this.events.recorded(live);
    this.events.finished(jobs);
  }

  /** Items per claim and per write. */
  private get part(): number {
    return Math.max(
      1,
      Math.ceil(this.env.WORKER_BATCH_SIZE / (this.env.WORKER_CLAIMS_IN_FLIGHT + PARTS_BESIDES_CLAIMS)),
    );
  }

  onApplicationBootstrap(): void {
    this.actions = this.registry.list().map((a) => a.name);
    this.logger.log(
      `worker ${this.workerId} started: actions ${this.actions.join(', ')}; concurrency ${this.env.WORKER_CONCURRENCY}, ` +
        `batch ${this.env.WORKER_BATCH_SIZE} (claims of ${this.part}, ${this.env.WORKER_CLAIMS_IN_FLIGHT} in flight), ` +
        `lease ${this.env.WORKER_LEASE_MS} ms`,
    );
    this.leases.start();
    this.cancels.start();
    const loops = Array.from({ length: this.env.WORKER_CLAIMS_IN_FLIGHT }, (_, k) => this.claimLoop(k === 0));
    this.loop = Promise.all(loops).then(() => undefined);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  /**
   * Stops claiming, releases the items that have not started, lets the
   * running ones finish within WORKER_SHUTDOWN_GRACE_MS, aborts and
   * releases the rest, and writes every outcome.
   */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    if (!this.loop) return;
    const started = Date.now();
    this.stopping = true;
    this.wake.notify();
    await Promise.all([this.loop, this.cancels.stop()]);
    const queued = this.runner.takeQueued();
    for (const item of queued) {
      item.outcome = 'release';
      this.recorder.add(item);
    }
    const running = this.runner.activeCount;
    this.logger.log(
      `stopping: released ${queued.length} waiting item(s), letting ${running} running item(s) finish`,
    );
    this.recorder.flushNow();
    await this.runner.waitIdle(this.env.WORKER_SHUTDOWN_GRACE_MS);
    if (this.runner.activeCount > 0) {
      this.logger.warn(`shutdown grace over: aborting and releasing ${this.runner.activeCount} item(s)`);
      this.runner.abortActive();
      await this.runner.waitIdle(ABORT_SETTLE_MS);
      this.recorder.addAll(this.runner.releaseActive());
    }
    await this.recorder.drain(Date.now() + Math.max(5000, this.env.WORKER_LEASE_MS));
    await this.leases.stop();
    const left = this.heldCount;
    this.logger.log(
      `stopped in ${Date.now() - started} ms` + (left > 0 ? `; ${left} item(s) left to lease expiry` : ''),
    );
  }

  /** One claim loop; only the first claims when there is no backlog. */
  private async claimLoop(first: boolean): Promise<void> {
    const batch = this.env.WORKER_BATCH_SIZE;
    const part = this.part;
    const poll = this.env.WORKER_POLL_INTERVAL_MS;
    while (!this.stopping) {
      const room = Math.min(part, batch - this.heldCount - this.claimingCount);
      if (room < part || (!first && !this.backlog)) {
        await this.wake.wait(poll);
        continue;
      }
      const started = performance.now();
      this.claimingCount += room;
      try {
        let res: ClaimResult;
        const from = this.claimStart();
        try {
          res = await this.store.claim(
            this.workerId,
            room,
            this.actions,
            this.env.WORKER_LEASE_MS,
            this.avoided(),
            from,
            // Every full claim reserves the range of a next one (ClaimFrom in engine.sql.ts).
            true,
          );
        } finally {
          // Here, not later: accept() below counts the claimed items as held in the same turn.
          this.claimingCount -= room;
        }
        this.metrics.claimDuration.observe({ result: res.kind }, (performance.now() - started) / 1000);
        this.claimFailures.succeeded();
        if (res.kind === 'claimed' && res.job.shared) this.sharedUntil = Date.now() + SHARED_JOB_HOLD_MS;
        const more =
          res.kind === 'claimed' && Date.now() >= this.sharedUntil && (res.items?.seqs?.length ?? 0) >= room;
        if (more && !this.backlog) this.wake.notify();
        this.backlog = more;
        if (res.kind === 'claimed') {
          this.nextClaimFrom(res.job, res.items, room, res.reservedFrom);
          this.accept(res.job, res.items);
        } else if (res.kind === 'busy') {
          this.avoid.set(res.jobId, Date.now() + BUSY_JOB_PAUSE_MS);
        } else {
          await this.wake.wait(res.waitMs === null ? poll : Math.min(poll, Math.max(1, res.waitMs)));
        }
      } catch (err) {
        this.metrics.claimDuration.observe({ result: 'error' }, (performance.now() - started) / 1000);
        this.backlog = false;
        // Jittered, so that the workers of a database that comes back do not all claim at once.
        const pause = retryDelayMs(this.claimFailures.consecutive + 1, CLAIM_ERROR_BACKOFF);
        this.claimFailures.failed(err, CLAIM_ERROR_BACKOFF.maxMs);
        await this.wake.wait(pause);
      }
    }
  }

  /**
   * Where the next claim starts: at the oldest range reserved for this
   * worker in the job it claims from, else at its hint (each range is
   * claimed once, so that two claims of the worker in flight do not meet).
   */
  private claimStart(): ClaimStart | null {
    const from = this.claimFrom;
    if (!from) return null;
    const reserved = from.reserved.shift();
    return reserved === undefined
      ? { jobId: from.jobId, seq: from.seq }
      : { jobId: from.jobId, seq: reserved, reserved: true };
  }

  /**
   * After a full claim of an unlimited job, the next claims of it start at
   * the ranges it reserved, or else where this one began (its lowest seq);
   * after a short one, or every FULL_CLAIM_EVERY claims, from the job's
   * start (and ranges reserved and not claimed wait for such a claim).
   */
  private nextClaimFrom(
    job: PickedJob,
    claimed: ClaimedArrays | null,
    wanted: number,
    reservedFrom: number | null,
  ): void {
    const seqs = claimed?.seqs;
    if (job.limited || !seqs || seqs.length < wanted) {
      this.claimFrom = null;
      return;
    }
    const same = this.claimFrom?.jobId === job.id ? this.claimFrom : null;
    const streak = (same?.streak ?? 0) + 1;
    if (streak >= FULL_CLAIM_EVERY) {
      this.claimFrom = null;
      return;
    }
    let first = seqs[0];
    for (let i = 1; i < seqs.length; i++) if (seqs[i] < first) first = seqs[i];
    const reserved = same?.reserved ?? [];
    if (reservedFrom !== null) reserved.push(reservedFrom);
    this.claimFrom = { jobId: job.id, seq: first, streak, reserved };
  }

  /** Jobs to leave alone for now (their row was held by a cancel). */
  private avoided(): string[] {
    if (this.avoid.size === 0) return NONE;
    const now = Date.now();
    for (const [id, until] of this.avoid) if (until <= now) this.avoid.delete(id);
    return [...this.avoid.keys()];
  }

  private accept(row: PickedJob, claimed: ClaimedArrays | null): void {
    const seqList = claimed?.seqs;
    if (!claimed || !seqList || seqList.length === 0) return;
    const handler = this.registry.get(row.action)!;
    const job: ClaimedJob = {
      id: row.id,
      action: row.action,
      params: row.params,
      handler,
      maxAttempts: maxAttemptsOf(row.options),
    };
    let seqs = this.held.get(job.id);
    if (!seqs) this.held.set(job.id, (seqs = new Map<number, RunningItem>()));
    const n = seqList.length;
    const items = new Array<RunningItem>(n);
    const { target_ids: targets, datas, attempts } = claimed;
    for (let i = 0; i < n; i++) {
      const item = newRunningItem(job, seqList[i], targets![i], datas![i], attempts![i]);
      items[i] = item;
      seqs.set(item.seq, item);
    }
    this.heldCount += n;
    this.metrics.itemsClaimed.inc({ action: job.action }, n);
    if (row.status === 'pending') this.events.started(job.id, job.action, n);
    this.runner.enqueue(job.id, items);
  }

  /** Items that left this worker (recorded, or dropped after a lost lease). */
  private forget(items: RunningItem[]): void {
    // A batch is usually one job's items: its map is looked up when the job changes.
    let jobId: string | undefined;
    let seqs: Map<number, RunningItem> | undefined;
    for (const item of items) {
      if (item.job.id !== jobId) {
        jobId = item.job.id;
        seqs = this.held.get(jobId);
      }
      if (seqs?.get(item.seq) !== item) continue;
      seqs.delete(item.seq);
      if (seqs.size === 0) this.held.delete(jobId);
      this.heldCount--;
    }
    this.wake.notify();
  }

  private lose(item: RunningItem): void {
    this.logger.warn(`lost the lease of item ${item.seq} of job ${item.job.id}`);
    this.runner.markLost(item);
    // Not running (waiting, or settled and waiting to be written): nobody else will drop it.
    if (!this.runner.isRunning(item)) this.forget([item]);
  }

  private heldItems(): RunningItem[] {
    const items: RunningItem[] = [];
    for (const seqs of this.held.values()) for (const item of seqs.values()) items.push(item);
    return items;
  }
}
