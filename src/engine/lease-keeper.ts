import { Logger } from '@nestjs/common';
import type { Env } from '../config/env';
import { type EngineEvents, FailureLog } from './engine-events';
import type { EngineStore } from './engine-store';
import type { RunningItem } from './types';
import { loggableMessage } from '../database/database-errors';

export interface HeldItems {
  heldItems(): RunningItem[];
  isBeingRecorded(item: RunningItem): boolean;
  isHeld(item: RunningItem): boolean;
  lost(item: RunningItem): void;
}

/** The sweep interval: WORKER_SWEEP_INTERVAL_MS, else half the lease, at most 5 s. */
export function sweepIntervalMs(env: Pick<Env, 'WORKER_SWEEP_INTERVAL_MS' | 'WORKER_LEASE_MS'>): number {
  return env.WORKER_SWEEP_INTERVAL_MS ?? Math.min(5000, Math.max(100, Math.floor(env.WORKER_LEASE_MS / 2)));
}

/**
 * Keeps this worker's leases alive (every third of WORKER_LEASE_MS, so that
 * two missed renewals still leave time) and sweeps everyone's expired leases
 * back to pending. A dead worker's items are therefore claimable again at
 * most WORKER_LEASE_MS plus one sweep interval after its last renewal.
 */
export class LeaseKeeper {
  private readonly logger = new Logger('Leases');
  private renewTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private sweeping: Promise<void> | undefined;
  private readonly renewFailures = new FailureLog(this.logger, 'lease renewal');
  private readonly sweepFailures = new FailureLog(this.logger, 'lease sweep');

  constructor(
    private readonly store: EngineStore,
    private readonly workerId: string,
    private readonly env: Env,
    private readonly items: HeldItems,
    private readonly events: EngineEvents,
  ) {}

  start(): void {
    this.renewTimer = setInterval(
      () => void this.renew(),
      Math.max(100, Math.floor(this.env.WORKER_LEASE_MS / 3)),
    );
    this.sweepTimer = setInterval(() => void this.sweep(), sweepIntervalMs(this.env));
  }

  async stop(): Promise<void> {
    clearInterval(this.renewTimer);
    clearInterval(this.sweepTimer);
    await Promise.all([this.renewing, this.sweeping]);
  }

  renew(): Promise<void> {
    this.renewing ??= this.renewOnce().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  sweep(): Promise<void> {
    this.sweeping ??= this.sweepOnce().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private async renewOnce(): Promise<void> {
    // The items held now, whose claims have committed; one claimed meanwhile has a fresh lease.
    const before = this.items.heldItems();
    if (before.length === 0) return;
    let extended: Map<string, Set<number>>;
    try {
      extended = await this.store.extendLeases(this.workerId, this.env.WORKER_LEASE_MS, before);
      this.renewFailures.succeeded();
    } catch (err) {
      // The leases may run out meanwhile: a sweep then returns the items, and this
      // worker drops them when it next renews (no result is written over another's).
      this.renewFailures.failed(err, Math.floor(this.env.WORKER_LEASE_MS / 3));
      return;
    }
    const missing = before.filter(
      // Not extended, and neither recorded meanwhile nor locked by the write in flight.
      (item) =>
        !extended.get(item.job.id)?.has(item.seq) &&
        this.items.isHeld(item) &&
        !this.items.isBeingRecorded(item),
    );
    if (missing.length === 0) return;
    // A write that failed and rolled back could also have hidden an item from
    // the renewal: confirm with a plain read before giving anything up.
    let still: Map<string, Set<number>>;
    try {
      still = await this.store.stillLeased(this.workerId, missing);
    } catch (err) {
      this.logger.warn(`could not check leases: ${loggableMessage(err)}`);
      return;
    }
    for (const item of missing) {
      if (!still.get(item.job.id)?.has(item.seq) && this.items.isHeld(item)) this.items.lost(item);
    }
  }

  private async sweepOnce(): Promise<void> {
    try {
      const swept = await this.store.sweepExpiredLeases();
      this.sweepFailures.succeeded();
      if (swept.length > 0) this.events.reclaimed(swept);
    } catch (err) {
      this.sweepFailures.failed(err, sweepIntervalMs(this.env));
    }
  }
}
