import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Clock, systemClock } from '../common/clock';
import { PublicRateLimit } from './public-rate-limit';
import { RateLimitGuard } from './rate-limit.guard';
import { RateLimitRepository } from './rate-limit.repository';
import { RateLimitSweeper } from './rate-limit-sweeper';
import { RateLimitWindow } from './rate-limit-window.entity';

/**
 * The rate limits: per principal (RateLimitGuard, counted in PostgreSQL for
 * every API process together; RateLimitSweeper deletes its past windows), and
 * per client address on the routes that need no token (PublicRateLimit,
 * counted in each process; its hook configureApp installs). Imported after
 * AuthModule, so that the guard runs after authentication and keys on the
 * verified principal. Both count their windows on the Clock provider (the
 * system clock).
 */
@Module({
  imports: [TypeOrmModule.forFeature([RateLimitWindow])],
  providers: [
    { provide: Clock, useValue: systemClock },
    { provide: APP_GUARD, useClass: RateLimitGuard },
    RateLimitRepository,
    RateLimitSweeper,
    PublicRateLimit,
  ],
})
export class RateLimitModule {}
