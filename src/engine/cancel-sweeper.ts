import { Logger } from '@nestjs/common';
import type { EngineEvents } from './engine-events';
import { FailureLog } from './engine-events';
import type { EngineStore } from './engine-store';
import { Wake } from './wake';

/** A job whose pending items were all held by others (claims, another sweeper) is left alone this long. */
const HELD_JOB_PAUSE_MS = 1000;

/**
 * Skips the pending items of cancelled jobs off the request path: the API's
 * cancel marks the job `cancelling` and skips its first batch; this loop, in
 * every worker, skips the rest, BULK_JOBS_CANCEL_BATCH_SIZE items per
 * statement, back to back while there is work (SKIP LOCKED: several workers
 * share one job's items), and marks the job `cancelled` once nothing of it is
 * pending or running. With nothing to do it looks again every
 * WORKER_POLL_INTERVAL_MS.
 */
export class CancelSweeper {
  private readonly logger = new Logger('CancelSweep');
  private readonly failures = new FailureLog(this.logger, 'cancel sweep');
  private readonly wake = new Wake();
  private readonly avoid = new Map<string, number>();
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
        const swept = await this.store.sweepCancelled(batch, this.avoided());
        this.failures.succeeded();
        if (swept) {
          this.events.finished([swept]);
          if (swept.skipped > 0 || swept.status !== 'cancelling') again = true;
          else this.avoid.set(swept.id, Date.now() + HELD_JOB_PAUSE_MS);
        }
      } catch (err) {
        this.failures.failed(err, pollMs);
      }
      if (!again) await this.wake.wait(pollMs);
    }
  }

  private avoided(): string[] {
    const now = Date.now();
    for (const [id, until] of this.avoid) if (until <= now) this.avoid.delete(id);
    return [...this.avoid.keys()];
  }
}
