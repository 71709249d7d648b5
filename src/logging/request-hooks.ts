import { UnsupportedMediaTypeException } from '@nestjs/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { PRINCIPAL_KEY } from '../auth/auth.decorators';
import type { Principal } from '../auth/scopes';
import type { Metrics } from '../metrics/metrics';
import { replyWithProblem } from '../common/problem-details/transport-errors';

/** The route pattern a request matched (`/api/actions/bulk/jobs/:id`), never its URL: bounded label values. */
export function routeOf(request: FastifyRequest): string {
  return request.routeOptions?.url ?? 'unmatched';
}

function principalOf(request: FastifyRequest): Principal | undefined {
  return (request as unknown as Record<string, Principal | undefined>)[PRINCIPAL_KEY];
}

/**
 * One log line and one histogram observation per request, when its response
 * has been sent. The line has the request id, method, route, status, duration
 * and the caller's `sub`; never a header, so never a token.
 */
export function observeRequests(
  fastify: FastifyInstance,
  logger: Logger,
  metrics: Metrics | undefined,
): void {
  const log = logger.child({ context: 'HTTP' });
  // One histogram child per method, route pattern and status, found by one string key.
  const series = new Map<string, { observe(seconds: number): void }>();
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = routeOf(request);
    const status = reply.statusCode;
    const durationMs = reply.elapsedTime;
    if (metrics) {
      const key = `${request.method} ${status} ${route}`;
      let child = series.get(key);
      if (!child) {
        child = metrics.httpRequestDuration.labels(request.method, route, String(status));
        series.set(key, child);
      }
      child.observe(durationMs / 1000);
    }
    if (log.isLevelEnabled('info')) {
      log.info(
        {
          requestId: request.id,
          method: request.method,
          route,
          path: request.url.split('?', 1)[0],
          status,
          durationMs: Math.round(durationMs * 10) / 10,
          sub: principalOf(request)?.sub,
          ip: request.ip,
        },
        `${request.method} ${route} ${status} ${durationMs.toFixed(1)} ms`,
      );
    }
    done();
  });
}

/**
 * Bodies are read as sent: Fastify does not decode a Content-Encoding, so a
 * compressed body would be parsed as garbage. Anything but `identity` is a
 * 415 problem, with Accept-Encoding saying what is accepted (RFC 9110 15.5.16):
 * sent here, and false returned; true when the request may go on. Called from
 * the app's one request hook (configureApp): on Swagger UI's routes, which are
 * not Nest's, an error passed to done() would reach Fastify's default handler
 * and leave as application/json.
 */
export function acceptsContentEncoding(request: FastifyRequest, reply: FastifyReply): boolean {
  const encoding = request.headers['content-encoding'];
  if (encoding === undefined || /^\s*identity\s*$/i.test(encoding)) return true;
  void reply.header('accept-encoding', 'identity');
  replyWithProblem(
    request,
    reply,
    new UnsupportedMediaTypeException(
      'Content-Encoding is not supported: send the request body uncompressed (identity).',
    ),
  );
  return false;
}
