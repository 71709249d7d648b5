import { Logger } from '@nestjs/common';
import type { EngineEvents } from './engine-events';
import { FailureLog } from './engine-events';
import type { CancelSwept, EngineStore } from './engine-store';
import { Wake } from './wake';

/** A job whose pending items were all held by others (claims, another sweeper) is left alone this long. */
const HELD_JOB_PAUSE_MS = 1000;
/** Jobs whose place this sweeper keeps (the least recently swept go first beyond it). */
const MAX_CURSORS = 1024;

/**
 * Skips the pending items of cancelled jobs off the request path: the API's
 * cancel marks the job `cancelling` and skips its first batch; this loop, in
 * every worker, skips the rest, BULK_JOBS_CANCEL_BATCH_SIZE items per
 * statement, back to back while there is work (SKIP LOCKED: several workers
 * share one job's items), and marks the job `cancelled` once nothing of it is
 * pending or running. With nothing to do it looks again every
 * WORKER_POLL_INTERVAL_MS.
 *
 * Each job's sweep goes on after the last seq this sweeper skipped of it (a
 * keyset cursor), so that a batch costs the same at the end of a 10M-item job
 * as at its start. A batch from the cursor that finds nothing drops the
 * cursor: the next one starts from the job's first seq, and so finds any
 * pending item behind it (one that a claim held and then let go).
 */
export class CancelSweeper {
  private readonly logger = new Logger('CancelSweep');
  private readonly failures = new FailureLog(this.logger, 'cancel sweep');
  private readonly wake = new Wake();
  private readonly avoid = new Map<string, number>();
  private readonly cursors = new Map<string, number>();
  private stopping = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly store: EngineStore,
    private readonly events: EngineEvents,
    private readonly settings: { batch: number; pollMs: number },
  ) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake.notify();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { batch, pollMs } = this.settings;
    while (!this.stopping) {
      let again = false;
      try {
        const swept = await this.store.sweepCancelled(batch, this.avoided(), this.cursors);
        this.failures.succeeded();
        if (swept) {
          this.events.finished([swept]);
          again = this.advance(swept);
        }
      } catch (err) {
        this.failures.failed(err, pollMs);
      }
      if (!again) await this.wake.wait(pollMs);
    }
  }

  /** Moves the job's cursor after a batch; true if the sweep should go on at once. */
  private advance(swept: CancelSwept): boolean {
    const cursor = this.cursors.get(swept.id);
    this.cursors.delete(swept.id);
    if (swept.status !== 'cancelling') return true;
    if (swept.skipped > 0 && swept.last !== null) {
      this.cursors.set(swept.id, swept.last);
      if (this.cursors.size > MAX_CURSORS) this.cursors.delete(this.cursors.keys().next().value as string);
      return true;
    }
    // Nothing after the cursor: look again from the start. Nothing from the start: the rest is held.
    if (cursor !== undefined) return true;
    this.avoid.set(swept.id, Date.now() + HELD_JOB_PAUSE_MS);
    return false;
  }

  private avoided(): string[] {
    const now = Date.now();
    for (const [id, until] of this.avoid) if (until <= now) this.avoid.delete(id);
    return [...this.avoid.keys()];
  }
}
