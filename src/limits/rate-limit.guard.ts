import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PRINCIPAL_KEY } from '../auth/auth.decorators';
import type { Principal } from '../auth/scopes';
import { Clock } from '../common/clock';
import { RateLimitedError } from '../common/problem-details/domain-error';
import { Env } from '../config/env';
import { SlidingWindowRateLimiter } from './rate-limiter';

const MINUTE_MS = 60_000;

/**
 * RATE_LIMIT_PER_MINUTE requests per principal per minute over every route
 * together, counted in this process. Registered after the AuthGuard: every
 * request it let through with a token counts against the token's `sub`; a
 * request with a refused token is a 401 before it counts, and the public
 * routes (health, metrics) have no principal and are not limited. Every
 * counted response carries X-RateLimit-Limit, -Remaining and -Reset; one over
 * the limit is a 429 problem with Retry-After.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  private readonly limiter: SlidingWindowRateLimiter | undefined;

  constructor(env: Env, clock: Clock) {
    this.limiter =
      env.RATE_LIMIT_PER_MINUTE > 0
        ? new SlidingWindowRateLimiter(env.RATE_LIMIT_PER_MINUTE, MINUTE_MS, () => clock.now())
        : undefined;
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.limiter) return true;
    const http = context.switchToHttp();
    const principal = http.getRequest<FastifyRequest & Record<string, unknown>>()[PRINCIPAL_KEY] as
      Principal | undefined;
    if (!principal) return true;
    const decision = this.limiter.hit(principal.sub);
    void http
      .getResponse<FastifyReply>()
      .header('x-ratelimit-limit', decision.limit)
      .header('x-ratelimit-remaining', decision.remaining)
      .header('x-ratelimit-reset', decision.resetSeconds);
    if (!decision.allowed) throw new RateLimitedError(decision.limit, decision.retryAfterSeconds);
    return true;
  }
}
