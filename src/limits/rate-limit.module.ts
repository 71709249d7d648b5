import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { Clock, systemClock } from '../common/clock';
import { PublicRateLimit } from './public-rate-limit';
import { RateLimitGuard } from './rate-limit.guard';

/**
 * The rate limits: per principal (RateLimitGuard), and per client address on
 * the routes that need no token (PublicRateLimit, whose hook configureApp
 * installs). Imported after AuthModule, so that the guard runs after
 * authentication and keys on the verified principal. Both count their windows
 * on the Clock provider (the system clock).
 */
@Module({
  providers: [
    { provide: Clock, useValue: systemClock },
    { provide: APP_GUARD, useClass: RateLimitGuard },
    PublicRateLimit,
  ],
})
export class RateLimitModule {}
