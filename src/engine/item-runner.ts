import type { ActionContext } from '../actions/bulk-action';
import type { BackoffPolicy } from './backoff';
import { settleFailure, settleSuccess } from './outcome';
import type { RunningItem } from './types';

/** Taken items a lane keeps at most before it lets go of them (and at most as many as it has waiting). */
const COMPACT_AFTER = 1024;

/** One job's claimed items waiting for a slot, first in first out. */
interface Lane {
  jobId: string;
  items: RunningItem[];
  head: number;
}

/**
 * What an action is given for one item. A class rather than an object literal
 * per item: the getters live once on the prototype instead of a closure per
 * item, and the idempotency key and the abort signal are made only for the
 * actions that read them (most never look at the signal, and an
 * AbortController per item is a measurable share of the noop path).
 */
class ItemContext implements ActionContext {
  readonly jobId: string;
  readonly seq: number;
  readonly targetId: string;
  readonly data: Record<string, unknown> | null;
  readonly params: Record<string, unknown>;
  readonly attempt: number;

  readonly #item: RunningItem;

  constructor(item: RunningItem) {
    this.#item = item;
    this.jobId = item.job.id;
    this.seq = item.seq;
    this.targetId = item.targetId;
    this.data = item.data;
    this.params = item.job.params;
    this.attempt = item.attempt;
  }

  // The same on every attempt: the duplicates that at-least-once delivery
  // makes are the retries (a timeout whose request got through, a crash and
  // re-claim, a lost lease), and only a key they share lets the other side
  // drop them. Job ids are never reused, so another job's items (a retry of
  // this job included) are new operations with keys of their own.
  get idempotencyKey(): string {
    return `${this.jobId}:${this.seq}`;
  }

  get signal(): AbortSignal {
    const item = this.#item;
    if (!item.controller) {
      item.controller = new AbortController();
      if (item.releasing || item.lost) item.controller.abort(new Error('the item was given up'));
    }
    return item.controller.signal;
  }
}

/**
 * Runs claimed items, at most `concurrency` at a time, outside any database
 * transaction. Waiting items are taken round robin across jobs, so that the
 * few items of a small job do not wait behind a large job's whole batch.
 */
export class ItemRunner {
  private readonly lanes: Lane[] = [];
  private readonly laneByJob = new Map<string, Lane>();
  private nextLane = 0;
  private queuedCount = 0;
  private readonly active = new Set<RunningItem>();
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly concurrency: number,
    private readonly policy: BackoffPolicy,
    /** An item has an outcome to record. */
    private readonly onSettled: (item: RunningItem) => void,
    /** An item is given up without a result (its lease was lost). */
    private readonly onDropped: (item: RunningItem) => void,
  ) {}

  get activeCount(): number {
    return this.active.size;
  }

  get queued(): number {
    return this.queuedCount;
  }

  enqueue(jobId: string, items: RunningItem[]): void {
    let lane = this.laneByJob.get(jobId);
    if (!lane) {
      lane = { jobId, items: [], head: 0 };
      this.laneByJob.set(jobId, lane);
      this.lanes.push(lane);
    }
    for (const item of items) lane.items.push(item);
    this.queuedCount += items.length;
    this.pump();
  }

  /** Takes every waiting item out of the queue, for release on shutdown. */
  takeQueued(): RunningItem[] {
    const taken: RunningItem[] = [];
    for (const lane of this.lanes) {
      for (let i = lane.head; i < lane.items.length; i++) taken.push(lane.items[i]);
    }
    this.lanes.length = 0;
    this.laneByJob.clear();
    this.queuedCount = 0;
    this.notifyIfIdle();
    return taken;
  }

  /** Aborts the items in flight and settles them as released, whatever their action does next. */
  releaseActive(): RunningItem[] {
    const released = [...this.active];
    this.active.clear();
    for (const item of released) {
      item.releasing = true;
      item.outcome = 'release';
      item.controller?.abort(new Error('the worker is shutting down'));
    }
    this.notifyIfIdle();
    return released;
  }

  /** Marks items whose lease was lost; running ones are aborted, waiting ones are dropped when reached. */
  markLost(item: RunningItem): void {
    item.lost = true;
    item.controller?.abort(new Error('the lease of this item was lost'));
  }

  /** Resolves when nothing is queued or running, or after timeoutMs. */
  async waitIdle(timeoutMs: number): Promise<void> {
    if (this.active.size === 0 && this.queuedCount === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.idleWaiters.push(done);
    });
  }

  /** Asks every running action to stop (shutdown grace is over); they settle as released. */
  abortActive(): void {
    for (const item of this.active) {
      item.releasing = true;
      item.controller?.abort(new Error('the worker is shutting down'));
    }
  }

  private pump(): void {
    while (this.active.size < this.concurrency && this.queuedCount > 0) {
      const item = this.take();
      if (item.lost) {
        this.onDropped(item);
        continue;
      }
      this.start(item);
    }
    this.notifyIfIdle();
  }

  private take(): RunningItem {
    if (this.nextLane >= this.lanes.length) this.nextLane = 0;
    const lane = this.lanes[this.nextLane];
    const item = lane.items[lane.head++];
    this.queuedCount--;
    if (lane.head === lane.items.length) {
      this.lanes.splice(this.nextLane, 1);
      this.laneByJob.delete(lane.jobId);
    } else {
      // A large job's lane is refilled by each claim before it runs dry: drop the
      // items already taken once they are the larger part, so they can be freed.
      if (lane.head >= COMPACT_AFTER && lane.head * 2 >= lane.items.length) {
        lane.items = lane.items.slice(lane.head);
        lane.head = 0;
      }
      this.nextLane++;
    }
    return item;
  }

  private start(item: RunningItem): void {
    this.active.add(item);
    const job = item.job;
    const ctx = new ItemContext(item);
    let running: Promise<unknown>;
    try {
      running = job.handler.execute(ctx);
    } catch (err) {
      running = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    running.then(
      (value) => this.settle(item, true, value),
      (err: unknown) => this.settle(item, false, err),
    );
  }

  isRunning(item: RunningItem): boolean {
    return this.active.has(item);
  }

  private settle(item: RunningItem, ok: boolean, value: unknown): void {
    // Already settled as released by releaseActive(): a late answer is ignored.
    if (!this.active.delete(item)) return;
    if (item.lost) {
      this.onDropped(item);
    } else {
      if (ok) settleSuccess(item, value);
      else settleFailure(item, value, this.policy);
      this.onSettled(item);
    }
    this.pump();
  }

  private notifyIfIdle(): void {
    if (this.active.size > 0 || this.queuedCount > 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
