import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { Env } from '../config/env';
import { BulkJobsService } from './bulk-jobs.service';
import { loggableMessage } from '../database/database-errors';

/**
 * Periodically expires finished jobs past BULK_JOBS_FINISHED_RETENTION_DAYS
 * and hard-deletes the jobs whose retention after a delete has run out.
 */
@Injectable()
export class BulkJobsPurger implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(BulkJobsPurger.name);
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    private readonly jobs: BulkJobsService,
    private readonly env: Env,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => this.tick(), this.env.BULK_JOBS_PURGE_INTERVAL_MS);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  tick(): Promise<void> {
    this.running ??= this.jobs
      .expireFinished()
      .then((n) => {
        if (n > 0) this.logger.log(`expired ${n} finished job(s) past BULK_JOBS_FINISHED_RETENTION_DAYS`);
        return this.jobs.purgeExpired();
      })
      .then((n) => {
        if (n > 0) this.logger.log(`purged ${n} deleted job(s) past their retention`);
      })
      .catch((err: unknown) => this.logger.warn(`purge failed: ${loggableMessage(err)}`))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }
}
