import type { INestApplication } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { trustedProxies, type Env } from './config/env';
import { API_SECURITY_HEADERS, securityHeaders } from './common/security-headers';
import { ProblemDetailsFilter } from './common/problem-details/problem-details.filter';
import { answerClientError, answerFrameworkError } from './common/problem-details/transport-errors';
import type { AppLogger } from './logging/app-logger';
import { acceptsContentEncoding, observeRequests } from './logging/request-hooks';
import { Metrics } from './metrics/metrics';
import { PublicRateLimit } from './limits/public-rate-limit';
import { createValidationPipe } from './common/validation';
import { limitBufferedBodyIdleTime } from './limits/body-timeout';
import { documentStreamingCreate } from './bulk-jobs/bulk-jobs.openapi';

/** The media type of a JSON merge patch (RFC 7396). */
const MERGE_PATCH_CONTENT_TYPE = 'application/merge-patch+json';
import { documentProblemExamples } from './common/problem-details/api-problem-responses.decorator';

const SANE_REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/** The incoming X-Request-Id when it is sane, else a new UUID. */
export function requestIdFor(req: IncomingMessage): string {
  const incoming = req.headers['x-request-id'];
  return typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

export function createFastifyAdapter(env: Env): FastifyAdapter {
  return new FastifyAdapter({
    bodyLimit: env.BODY_LIMIT_BYTES,
    // Node's own default, which Fastify turns off: a request must have arrived whole within it, so
    // that a body sent a byte at a time (read before the token is checked) cannot hold a socket for
    // ever. Headers: Node's headersTimeout (60 s). Idle keep-alive sockets: Fastify's 72 s.
    requestTimeout: env.REQUEST_TIMEOUT_MS,
    genReqId: requestIdFor,
    requestIdHeader: false,
    logger: false,
    return503OnClosing: true,
    // request.ip: the socket's peer, unless TRUST_PROXY trusts the proxies that forwarded the request.
    trustProxy: trustedProxies(env),
    // What the router and the HTTP parser refuse never reaches the filter: answer it as a problem too.
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
  });
}

export const OPENAPI_PATH = 'docs';

/**
 * Helmet's policy for Swagger UI's pages, made explicit: Swagger UI at /docs loads its scripts and
 * styles from this origin and has one inline <style>; nothing else is needed.
 * No upgrade-insecure-requests: /docs must work over plain HTTP in development.
 */
const CONTENT_SECURITY_POLICY = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'", "'unsafe-inline'"],
  imgSrc: ["'self'", 'data:'],
  fontSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  upgradeInsecureRequests: null,
};

/** CORS_ORIGINS as a list; empty when CORS is off. */
export function corsOrigins(env: Pick<Env, 'CORS_ORIGINS'>): string[] {
  return env.CORS_ORIGINS.split(',')
    .map((o) => o.trim())
    .filter(Boolean);
}

/**
 * Everything that makes the HTTP surface what it is; main.ts and the e2e
 * tests both call it, so tests exercise the app exactly as it is served.
 */
export async function configureApp(
  app: NestFastifyApplication,
  env: Env,
  logger: AppLogger,
): Promise<NestFastifyApplication> {
  const fastify = app.getHttpAdapter().getInstance();
  // Only JSON bodies are accepted: a text/plain body is a 415, not a string to validate.
  fastify.removeContentTypeParser(['text/plain']);
  // NDJSON creates are streamed: the handler gets the raw request stream, unbuffered
  // and so not bound by BODY_LIMIT_BYTES (BULK_JOBS_MAX_TARGETS bounds them instead).
  fastify.addContentTypeParser('application/x-ndjson', (_request, payload, done) => done(null, payload));
  // PATCH /jobs/{id} takes a JSON merge patch (RFC 7396), which is JSON: Fastify's own parser.
  fastify.addContentTypeParser(
    MERGE_PATCH_CONTENT_TYPE,
    { parseAs: 'string' },
    fastify.getDefaultJsonParser('error', 'error'),
  );
  // Bodies read whole (JSON, Fastify's parser) must keep arriving; a streamed one's reader watches it itself.
  limitBufferedBodyIdleTime(fastify, env.BODY_IDLE_TIMEOUT_MS, (request) => {
    const type = request.headers['content-type'] ?? '';
    const media = type.split(';', 1)[0].trim().toLowerCase();
    return media === 'application/json' || media === MERGE_PATCH_CONTENT_TYPE;
  });
  // One request hook for the app's own per-request work, in this order: the request id and the
  // security headers on every response, problems included (helmet's, computed once, on Swagger UI's
  // pages and the OpenAPI document, the API's own set elsewhere); the per-address limit of the
  // routes that need no token; the refusal of compressed bodies. A check that refuses a request
  // answers it itself. One hook rather than three: each hook is a step of Fastify's hook runner on
  // every request.
  const docsPrefix = `/${OPENAPI_PATH}`;
  const docsHeaders = securityHeaders({ contentSecurityPolicy: { directives: CONTENT_SECURITY_POLICY } });
  const publicRateLimit = app.get(PublicRateLimit, { strict: false });
  fastify.addHook('onRequest', (request, reply, done) => {
    void reply
      .headers(request.url.startsWith(docsPrefix) ? docsHeaders : API_SECURITY_HEADERS)
      .header('x-request-id', request.id);
    if (publicRateLimit && !publicRateLimit.admit(request, reply)) return;
    if (!acceptsContentEncoding(request, reply)) return;
    done();
  });
  observeRequests(fastify, logger.pino, app.get(Metrics, { strict: false }));
  const origins = corsOrigins(env);
  if (origins.length > 0) {
    app.enableCors({
      origin: origins.includes('*') ? '*' : origins,
      methods: ['GET', 'HEAD', 'POST', 'DELETE'],
      exposedHeaders: [
        'Location',
        'X-Request-Id',
        'Retry-After',
        'Idempotent-Replayed',
        'WWW-Authenticate',
        'X-RateLimit-Limit',
        'X-RateLimit-Remaining',
        'X-RateLimit-Reset',
      ],
      maxAge: 600,
    });
  }

  app.useGlobalPipes(createValidationPipe());
  app.useGlobalFilters(new ProblemDetailsFilter());
  setupOpenApi(app, env);
  await app.init();
  return app;
}

function setupOpenApi(app: INestApplication, env: Env): void {
  const config = new DocumentBuilder()
    .setTitle('Bulk action jobs')
    .setDescription(
      'Submit one action over many targets, follow its progress, cancel, delete and restore jobs. ' +
        'Every error is application/problem+json (RFC 9457) with legacy `error`/`details` members.',
    )
    .setVersion('1.0')
    // Relative: the API is wherever the document was fetched from.
    .addServer('/', 'This server')
    .addBearerAuth({
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
      description:
        'A JWT (HS256, or RS256/ES256 from the JWKS) with an `exp` claim; the `scope` claim grants ' +
        "bulk-jobs:read (GET), bulk-jobs:write (POST, DELETE) and bulk-jobs:admin (every owner's jobs).",
    })
    // The auth guard is global, so the document requires the token by default too: an
    // operation added without @ApiBearerAuth() is still documented as needing it.
    .addSecurityRequirements('bearer')
    .build();
  // As package.json has it; DocumentBuilder.setLicense would add an empty `url`, which is not a URL.
  config.info.license = { name: 'UNLICENSED' };
  const document = SwaggerModule.createDocument(app, config);
  documentStreamingCreate(document);
  documentProblemExamples(document);
  SwaggerModule.setup(OPENAPI_PATH, app, document, {
    jsonDocumentUrl: `${OPENAPI_PATH}-json`,
    swaggerOptions: { persistAuthorization: true },
  });
  void env;
}
