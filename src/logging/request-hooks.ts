import { UnsupportedMediaTypeException } from '@nestjs/common';
import type { FastifyInstance, FastifyReply, FastifyRequest, onResponseHookHandler } from 'fastify';
import type { Logger } from 'pino';
import { PRINCIPAL_KEY } from '../auth/auth.decorators';
import type { Principal } from '../auth/scopes';
import type { Metrics } from '../metrics/metrics';
import { replyWithProblem } from '../common/problem-details/transport-errors';

function principalOf(request: FastifyRequest): Principal | undefined {
  return (request as unknown as Record<string, Principal | undefined>)[PRINCIPAL_KEY];
}

/** A histogram child: one method, route pattern and status. */
type Child = { observe(seconds: number): void };

/** How one route's requests are observed once answered. */
type Observer = (request: FastifyRequest, reply: FastifyReply) => void;

/**
 * One log line and one histogram observation per request, when its response
 * has been sent. The line has the request id, method, route, status, duration
 * and the caller's `sub`; never a header, so never a token.
 *
 * Each route gets a response hook of its own as it is added (`onRoute`), which
 * knows the route's pattern and keeps the route's histogram children by
 * method and status: no `request.routeOptions` (an object built on each read)
 * and no string key per request. What no route matched (404s, URLs the router
 * refuses) is observed by the one global hook, as route `unmatched`; it lets
 * every matched request pass at the price of `request.is404`.
 */
export function observeRequests(
  fastify: FastifyInstance,
  logger: Logger,
  metrics: Metrics | undefined,
): void {
  const log = logger.child({ context: 'HTTP' });
  fastify.addHook('onRoute', (route) => {
    const observe = observer(log, metrics, route.url);
    const hook: onResponseHookHandler = (request, reply, done) => {
      observe(request, reply);
      done();
    };
    // Fastify's HEAD route for a GET is made from the GET's options as given, so it gets a hook of its own.
    route.onResponse = route.onResponse === undefined ? hook : [route.onResponse, hook].flat();
  });
  const unmatched = observer(log, metrics, 'unmatched');
  fastify.addHook('onResponse', (request, reply, done) => {
    if (request.is404) unmatched(request, reply);
    done();
  });
}

/** The observer of one route pattern (or of 'unmatched'), with its histogram children by method, then status. */
function observer(log: Logger, metrics: Metrics | undefined, route: string): Observer {
  const byMethod = new Map<string, Map<number, Child>>();
  return (request, reply) => {
    const status = reply.statusCode;
    const durationMs = reply.elapsedTime;
    const method = request.method;
    if (metrics) {
      let byStatus = byMethod.get(method);
      if (!byStatus) byMethod.set(method, (byStatus = new Map<number, Child>()));
      let child = byStatus.get(status);
      if (!child) {
        child = metrics.httpRequestDuration.labels(method, route, String(status));
        byStatus.set(status, child);
      }
      child.observe(durationMs / 1000);
    }
    if (log.isLevelEnabled('info')) {
      log.info(
        {
          requestId: request.id,
          method,
          route,
          path: request.url.split('?', 1)[0],
          status,
          durationMs: Math.round(durationMs * 10) / 10,
          sub: principalOf(request)?.sub,
          ip: request.ip,
        },
        `${method} ${route} ${status} ${durationMs.toFixed(1)} ms`,
      );
    }
  };
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
