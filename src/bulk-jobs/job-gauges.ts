import { Injectable, Logger } from '@nestjs/common';
import { Gauge } from 'prom-client';
import { JOB_STATUSES } from '../jobs/job-status';
import { Metrics } from '../metrics/metrics';
import { BulkJobsRepository } from './bulk-jobs.repository';
import { loggableMessage } from '../database/database-errors';

interface Snapshot {
  jobs: Map<string, number>;
  pendingItems: number;
  runningItems: number;
}

/**
 * Jobs by status and the queue depth, read from the jobs' own counters when
 * Prometheus scrapes: one GROUP BY over the jobs table, never a count over
 * the items. They describe the whole database, not this process, so only
 * API processes (which have this module) export them, in the registry of
 * src/metrics.
 */
@Injectable()
export class JobGauges {
  private readonly logger = new Logger('Metrics');
  private inFlight: Promise<Snapshot | undefined> | undefined;

  constructor(
    metrics: Metrics,
    private readonly jobs: BulkJobsRepository,
  ) {
    const snapshot = () => this.snapshot();
    new Gauge({
      name: 'bulk_jobs_jobs',
      help: 'Jobs (not deleted) by status, read from the database at scrape time.',
      labelNames: ['status'] as const,
      registers: [metrics.registry],
      async collect() {
        const read = await snapshot();
        this.reset();
        if (!read) return;
        for (const status of JOB_STATUSES) this.set({ status }, read.jobs.get(status) ?? 0);
      },
    });
    new Gauge({
      name: 'bulk_jobs_pending_items',
      help: 'Items of pending and running jobs still waiting to be claimed (the queue depth), from the jobs’ counters.',
      registers: [metrics.registry],
      async collect() {
        const read = await snapshot();
        this.reset();
        if (read) this.set(read.pendingItems);
      },
    });
    new Gauge({
      name: 'bulk_jobs_running_items',
      help: 'Items claimed by a worker and not yet recorded, across every worker, from the jobs’ counters.',
      registers: [metrics.registry],
      async collect() {
        const read = await snapshot();
        this.reset();
        if (read) this.set(read.runningItems);
      },
    });
  }

  /** One query per scrape, shared by the gauges that the scrape collects together. */
  private snapshot(): Promise<Snapshot | undefined> {
    this.inFlight ??= this.read().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async read(): Promise<Snapshot | undefined> {
    try {
      const snapshot: Snapshot = { jobs: new Map(), pendingItems: 0, runningItems: 0 };
      for (const row of await this.jobs.countByStatus()) {
        snapshot.jobs.set(row.status, row.jobs);
        snapshot.pendingItems += Math.max(0, Number(row.pendingItems));
        snapshot.runningItems += Number(row.runningItems);
      }
      return snapshot;
    } catch (err) {
      // The scrape still answers (with the process's own metrics); the gauges are left out.
      this.logger.warn(`could not read job counts for /metrics: ${loggableMessage(err)}`);
      return undefined;
    }
  }
}
