import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { Clock } from '../common/clock';
import { Env } from '../config/env';
import { loggableMessage } from '../database/database-errors';
import { MINUTE_MS } from './rate-limit.guard';
import { RateLimitRepository } from './rate-limit.repository';

/** Windows one delete statement removes; a sweep repeats it while it finds that many. */
export const SWEEP_BATCH = 5_000;
/** The most statements one sweep runs: the next sweep goes on from there. */
const SWEEP_MAX_BATCHES = 20;

/**
 * Once a minute, deletes the shared rate limit's windows that no process
 * reads any more (those before the previous minute), in bounded batches. Every
 * API process sweeps; SKIP LOCKED lets them share the rows.
 */
@Injectable()
export class RateLimitSweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('RateLimit');
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    private readonly env: Env,
    private readonly clock: Clock,
    private readonly windows: RateLimitRepository,
  ) {}

  onApplicationBootstrap(): void {
    if (this.env.RATE_LIMIT_PER_MINUTE === 0) return;
    this.timer = setInterval(() => void this.sweep(), MINUTE_MS);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One sweep, or the one under way. */
  sweep(): Promise<void> {
    this.running ??= this.deletePast()
      .catch((err: unknown) => this.logger.warn(`rate limit sweep failed: ${loggableMessage(err)}`))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async deletePast(): Promise<void> {
    const now = this.clock.now();
    const before = now - (now % MINUTE_MS) - MINUTE_MS;
    for (let i = 0; i < SWEEP_MAX_BATCHES; i++) {
      if ((await this.windows.deletePast(before, 2 * MINUTE_MS, SWEEP_BATCH)) < SWEEP_BATCH) return;
    }
  }
}
