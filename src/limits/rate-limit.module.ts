import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { Clock, systemClock } from '../common/clock';
import { RateLimitGuard } from './rate-limit.guard';

/**
 * The per-principal rate limit (RateLimitGuard). Imported after AuthModule, so
 * that its guard runs after authentication and keys on the verified principal.
 * Its windows are counted on the Clock provider (the system clock).
 */
@Module({
  providers: [
    { provide: Clock, useValue: systemClock },
    { provide: APP_GUARD, useClass: RateLimitGuard },
  ],
})
export class RateLimitModule {}
