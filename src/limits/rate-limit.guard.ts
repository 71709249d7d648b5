import { type CanActivate, type ExecutionContext, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PRINCIPAL_KEY } from '../auth/auth.decorators';
import type { Principal } from '../auth/scopes';
import { RateLimitedError } from '../common/problem-details/domain-error';
import { Env } from '../config/env';
import { SlidingWindowRateLimiter } from './rate-limiter';

const MINUTE_MS = 60_000;
const SKIP_RATE_LIMIT_METADATA = 'bulk-jobs:skip-rate-limit';

/** Routes (health, metrics) that are not counted against anyone. */
export const SkipRateLimit = () => SetMetadata(SKIP_RATE_LIMIT_METADATA, true);

/**
 * Whose requests a request counts against: the verified principal's `sub`
 * (set by the AuthGuard, which runs first), else the client's address, for
 * routes that need no token.
 */
export function rateLimitKey(request: Record<string, unknown>): string {
  const principal = request[PRINCIPAL_KEY] as Principal | undefined;
  return principal ? `sub:${principal.sub}` : `ip:${String(request.ip)}`;
}

/**
 * RATE_LIMIT_PER_MINUTE requests per principal per minute over every route
 * together, counted in this process. Every counted response carries
 * X-RateLimit-Limit, -Remaining and -Reset; one over the limit is a 429
 * problem with Retry-After. Registered after the AuthGuard, so that a request
 * with a refused token is a 401 before it counts.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  private readonly limiter: SlidingWindowRateLimiter | undefined;
  /** Whether a handler is exempt, looked up once per handler rather than on every request. */
  private readonly skipped = new WeakMap<object, boolean>();

  constructor(
    env: Env,
    private readonly reflector: Reflector,
  ) {
    this.limiter =
      env.RATE_LIMIT_PER_MINUTE > 0 ? new SlidingWindowRateLimiter(env.RATE_LIMIT_PER_MINUTE, MINUTE_MS) : undefined;
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.limiter || this.isSkipped(context)) return true;
    const http = context.switchToHttp();
    const decision = this.limiter.hit(rateLimitKey(http.getRequest<FastifyRequest & Record<string, unknown>>()));
    void http
      .getResponse<FastifyReply>()
      .header('x-ratelimit-limit', decision.limit)
      .header('x-ratelimit-remaining', decision.remaining)
      .header('x-ratelimit-reset', decision.resetSeconds);
    if (!decision.allowed) throw new RateLimitedError(decision.limit, decision.retryAfterSeconds);
    return true;
  }

  private isSkipped(context: ExecutionContext): boolean {
    const handler = context.getHandler();
    let skipped = this.skipped.get(handler);
    if (skipped === undefined) {
      skipped =
        this.reflector.getAllAndOverride<boolean>(SKIP_RATE_LIMIT_METADATA, [handler, context.getClass()]) === true;
      this.skipped.set(handler, skipped);
    }
    return skipped;
  }
}
