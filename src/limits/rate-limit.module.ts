import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerGuard, ThrottlerModule, type ThrottlerLimitDetail } from '@nestjs/throttler';
import { PRINCIPAL_KEY } from '../auth/auth.decorators';
import type { Principal } from '../auth/scopes';
import { Env } from '../config/env';

const MINUTE_MS = 60_000;

/**
 * Whose requests a request counts against: the verified principal's `sub`
 * (set by the AuthGuard, which runs first), else the client's address, for
 * routes that need no token.
 */
export function rateLimitTracker(req: Record<string, unknown>): string {
  const principal = req[PRINCIPAL_KEY] as Principal | undefined;
  return principal ? `sub:${principal.sub}` : `ip:${String(req.ip)}`;
}

/**
 * RATE_LIMIT_PER_MINUTE requests per principal per minute, over all routes
 * together, counted in this process. A request over the limit is a 429
 * problem with Retry-After (set by the guard; the problem filter answers).
 * Imported after AuthModule, so that its guard runs after authentication.
 */
@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      inject: [Env],
      useFactory: (env: Env) => ({
        throttlers: [{ name: 'default', ttl: MINUTE_MS, limit: Math.max(1, env.RATE_LIMIT_PER_MINUTE) }],
        skipIf: () => env.RATE_LIMIT_PER_MINUTE === 0,
        getTracker: rateLimitTracker,
        // One budget per caller across every route (the default key is per route).
        generateKey: (_context, tracker, name) => `${name}:${tracker}`,
        errorMessage: (_context, detail: ThrottlerLimitDetail) =>
          `More than ${detail.limit} requests in a minute. Retry after ${detail.timeToBlockExpire} seconds.`,
      }),
    }),
  ],
  providers: [{ provide: APP_GUARD, useClass: ThrottlerGuard }],
})
export class RateLimitModule {}
