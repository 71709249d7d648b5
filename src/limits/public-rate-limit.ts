import { Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Clock } from '../common/clock';
import { RateLimitedError } from '../common/problem-details/domain-error';
import { mapDomainError } from '../common/problem-details/problem-details';
import { sendProblem } from '../common/problem-details/transport-errors';
import { Env } from '../config/env';
import { SlidingWindowRateLimiter } from './rate-limiter';

const MINUTE_MS = 60_000;
/** The API's own routes: they need a token, and the per-principal limit counts them (RateLimitGuard). */
const API_PREFIX = '/api/';

/**
 * RATE_LIMIT_PUBLIC_PER_MINUTE requests per minute per client address to the
 * routes that need no token (health, metrics, Swagger UI and the OpenAPI
 * document) and to paths that match no route, counted in this process with
 * the sliding window of the per-principal limit, on the same Clock. The
 * address is the connection's peer, or what X-Forwarded-For says when
 * TRUST_PROXY trusts the proxies in between (Fastify's request.ip).
 *
 * In the app's request hook rather than a guard: Swagger UI's routes are not
 * Nest's, and a path that matches nothing never reaches a guard.
 */
@Injectable()
export class PublicRateLimit {
  private readonly limiter: SlidingWindowRateLimiter | undefined;

  constructor(env: Env, clock: Clock) {
    this.limiter =
      env.RATE_LIMIT_PUBLIC_PER_MINUTE > 0
        ? new SlidingWindowRateLimiter(env.RATE_LIMIT_PUBLIC_PER_MINUTE, MINUTE_MS, () => clock.now())
        : undefined;
  }

  /**
   * True when the request may go on: an API route (the per-principal limit counts those), or
   * within its address's limit. Otherwise the 429 problem is sent here and false returned.
   * Called from the app's one request hook (configureApp), not a hook of its own: on Swagger UI's
   * routes, which are not Nest's, an error passed to done() would reach Fastify's default handler,
   * not the filter.
   */
  admit(request: FastifyRequest, reply: FastifyReply): boolean {
    const limiter = this.limiter;
    if (!limiter) return true;
    // request.url and is404 rather than routeOptions, which builds an object on every read.
    if (!request.is404 && request.url.startsWith(API_PREFIX)) return true;
    const decision = limiter.hit(request.ip);
    void reply
      .header('x-ratelimit-limit', decision.limit)
      .header('x-ratelimit-remaining', decision.remaining)
      .header('x-ratelimit-reset', decision.resetSeconds);
    if (decision.allowed) return true;
    sendProblem(
      request,
      reply,
      mapDomainError(new RateLimitedError(decision.limit, decision.retryAfterSeconds)),
    );
    return false;
  }
}
