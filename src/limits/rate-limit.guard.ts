import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PRINCIPAL_KEY } from '../auth/auth.decorators';
import type { Principal } from '../auth/scopes';
import { Clock } from '../common/clock';
import { RateLimitedError } from '../common/problem-details/domain-error';
import { Env, rateLimitChunk } from '../config/env';
import type { RateLimitDecision } from './rate-limiter';
import { RateLimitRepository } from './rate-limit.repository';
import { SharedRateLimiter } from './shared-rate-limiter';

export const MINUTE_MS = 60_000;
/** The shared windows' keys of this limit: `principal:<sub>`. */
const KEY_PREFIX = 'principal:';

/**
 * RATE_LIMIT_PER_MINUTE requests per principal per minute over every route
 * together, counted for every API process at once in PostgreSQL
 * (SharedRateLimiter: most requests are decided on an allowance this process
 * reserved, without a round trip). Registered after the AuthGuard: every
 * request it let through with a token counts against the token's `sub`; a
 * request with a refused token is a 401 before it counts, and the public
 * routes (health, metrics) have no principal and are not limited here. Every
 * counted response carries X-RateLimit-Limit, -Remaining and -Reset; one over
 * the limit is a 429 problem with Retry-After.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  private readonly limiter: SharedRateLimiter | undefined;

  constructor(env: Env, clock: Clock, counts: RateLimitRepository) {
    this.limiter =
      env.RATE_LIMIT_PER_MINUTE > 0
        ? new SharedRateLimiter(env.RATE_LIMIT_PER_MINUTE, rateLimitChunk(env), MINUTE_MS, counts, () =>
            clock.now(),
          )
        : undefined;
  }

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    if (!this.limiter) return true;
    // The request and the reply by their index (ArgumentsHost): switchToHttp() adds three new closures to
    // the context on every call.
    const principal = context.getArgByIndex<FastifyRequest & Record<string, unknown>>(0)[PRINCIPAL_KEY] as
      Principal | undefined;
    if (!principal) return true;
    const reply = context.getArgByIndex<FastifyReply>(1);
    const decision = this.limiter.hit(KEY_PREFIX + principal.sub);
    // Synchronous while the allowance lasts: no promise on most requests.
    return decision instanceof Promise ? decision.then((d) => admit(reply, d)) : admit(reply, decision);
  }
}

function admit(reply: FastifyReply, decision: RateLimitDecision): boolean {
  void reply
    .header('x-ratelimit-limit', decision.limit)
    .header('x-ratelimit-remaining', decision.remaining)
    .header('x-ratelimit-reset', decision.resetSeconds);
  if (!decision.allowed) throw new RateLimitedError(decision.limit, decision.retryAfterSeconds);
  return true;
}
