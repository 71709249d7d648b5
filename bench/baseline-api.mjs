// The raw baseline of the api benchmark: the same HS256 check (jsonwebtoken, exp required,
// scopes) and the same SQL as the service's GET /jobs/{id} and DELETE /jobs/{id}, prepared
// (named) as the service's are on a direct connection, the same responses: the same bodies (the
// same columns read, the same fields in the same order, credential headers in params redacted by
// the service's own function), and the headers the HTTP contract puts on every response (the
// request id, the security headers, the rate-limit headers of the same per-principal limiter).
// That logic is one function (handleJobRequest), served one of three ways (BASELINE_SERVER):
//   http     node:http and a pg Pool, no framework: the raw server (the default)
//   fastify  a bare Fastify app, one route per method calling the same function
//   nest     a bare NestJS app on @nestjs/platform-fastify, one controller calling it
// The last two are the frameworks' floors: what Fastify, and Nest on Fastify, cost a request
// before any guard, pipe, filter or hook of the service's.
//   DATABASE_URL=… AUTH_JWT_SECRET=… PORT=… [BASELINE_SERVER=…] node bench/baseline-api.mjs
import { createSecretKey, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import process from 'node:process';
import jwt from 'jsonwebtoken';
import pg from 'pg';

// The service's own limiter and header set, from the build the benchmark made (.bench-build).
const build = createRequire(new URL('../.bench-build/', import.meta.url));
const { SlidingWindowRateLimiter } = build('./limits/rate-limiter.js');
const { API_SECURITY_HEADERS } = build('./common/security-headers.js');
const { redactParams } = build('./actions/credential-headers.js');
const limiter = new SlidingWindowRateLimiter(Number(process.env.RATE_LIMIT_PER_MINUTE || 6000), 60_000);
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

const PREFIX = '/api/actions/bulk/jobs/';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const BEARER = /^Bearer\s+([A-Za-z0-9\-_.~+/]+=*)\s*$/i;
const JOB_COLUMNS = `id, owner, action, params, options, status, total_items, succeeded_items,
  failed_items, skipped_items, error, created_at, started_at, finished_at, updated_at, deleted_at, purge_at,
  retry_of, labels`;
const TERMINAL = ['completed', 'failed', 'cancelled'];
const JSON_TYPE = 'application/json; charset=utf-8';
const PROBLEM_TYPE = 'application/problem+json';
const RETENTION_DAYS = 30;

// A KeyObject, as the service uses: with a string, jsonwebtoken tries to parse it as a PEM key on every verify.
const secret = createSecretKey(Buffer.from(process.env.AUTH_JWT_SECRET, 'utf8'));
const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.DATABASE_POOL_SIZE || 10),
});

const iso = (d) => (d ? d.toISOString() : null);

/**
 * The job as the service shows it. `notification` is null: the benchmark's jobs ask for no
 * webhook (options.notify), for which the service reads nothing more either.
 */
function toJob(row) {
  if (row.options?.notify) throw new Error('the raw baseline does not show webhook notifications');
  const done = row.succeeded_items + row.failed_items + row.skipped_items;
  return {
    id: row.id,
    action: row.action,
    params: redactParams(row.params),
    options: row.options,
    status: row.status,
    labels: row.labels,
    total_items: row.total_items,
    succeeded_items: row.succeeded_items,
    failed_items: row.failed_items,
    skipped_items: row.skipped_items,
    progress: row.total_items > 0 ? Math.floor((done * 10_000) / row.total_items) / 10_000 : 0,
    owner: row.owner,
    error: row.error,
    deleted_at: iso(row.deleted_at),
    purge_at: iso(row.purge_at),
    retry_of: row.retry_of,
    created_at: row.created_at.toISOString(),
    started_at: iso(row.started_at),
    finished_at: iso(row.finished_at),
    updated_at: row.updated_at.toISOString(),
    notification: null,
  };
}

/**
 * The headers of every answer: the security headers, the request id (the incoming one when it
 * is sane), the rate-limit headers once the limiter has counted the request, the media type.
 */
function headersFor(incoming, status, rate) {
  return {
    ...API_SECURITY_HEADERS,
    'x-request-id': typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID(),
    ...(rate && {
      'x-ratelimit-limit': rate.limit,
      'x-ratelimit-remaining': rate.remaining,
      'x-ratelimit-reset': rate.resetSeconds,
    }),
    'content-type': status < 400 ? JSON_TYPE : PROBLEM_TYPE,
  };
}

const answer = (headers, status, body, rate) => ({
  status,
  body,
  headers: headersFor(headers['x-request-id'], status, rate),
});

/** The principal of a valid token with the scope, or an HTTP status. */
function principal(authorization, scope) {
  const m = BEARER.exec(authorization ?? '');
  if (!m) return 401;
  let payload;
  try {
    payload = jwt.verify(m[1], secret, { algorithms: ['HS256'], clockTolerance: 5 });
  } catch {
    return 401;
  }
  if (typeof payload !== 'object' || typeof payload.exp !== 'number' || typeof payload.sub !== 'string')
    return 401;
  const scopes = new Set(String(payload.scope ?? '').split(' '));
  if (!scopes.has(scope) && !scopes.has('bulk-jobs:admin')) return 403;
  return { sub: payload.sub, admin: scopes.has('bulk-jobs:admin') };
}

async function findVisible(p, id) {
  const params = [id];
  let owner = '';
  if (!p.admin) {
    params.push(p.sub);
    owner = ' AND owner = $2';
  }
  const { rows } = await pool.query({
    name: p.admin ? 'find-any' : 'find-own',
    text: `SELECT ${JOB_COLUMNS} FROM bulk_jobs
       WHERE id = $1 AND (purge_at IS NULL OR purge_at > now())${owner}`,
    values: params,
  });
  return rows[0];
}

/**
 * The request logic that every server here shares: `GET` or `DELETE` of the job `id`, with the
 * request's headers (lower-case names, as Node gives them). Resolves to the status, the body (an
 * object, for the server to serialise) and the headers of the answer, `content-type` included.
 */
export async function handleJobRequest(method, id, headers) {
  const p = principal(headers.authorization, method === 'GET' ? 'bulk-jobs:read' : 'bulk-jobs:write');
  if (typeof p === 'number') return answer(headers, p, { status: p });
  const rate = limiter.hit(p.sub);
  if (!rate.allowed) return answer(headers, 429, { status: 429 }, rate);
  if (!UUID.test(id)) return answer(headers, 400, { status: 400 }, rate);
  if (method === 'GET') {
    const row = await findVisible(p, id);
    return row ? answer(headers, 200, toJob(row), rate) : answer(headers, 404, { status: 404 }, rate);
  }
  const params = [id, TERMINAL, RETENTION_DAYS];
  let owner = '';
  if (!p.admin) {
    params.push(p.sub);
    owner = ` AND owner = $${params.length}`;
  }
  const { rows } = await pool.query({
    name: p.admin ? 'delete-any' : 'delete-own',
    text: `UPDATE bulk_jobs
       SET deleted_at = now(), purge_at = now() + make_interval(days => $3), updated_at = now()
       WHERE id = $1 AND status = ANY($2) AND deleted_at IS NULL${owner}
       RETURNING id, status`,
    values: params,
  });
  if (rows.length === 1)
    return answer(headers, 200, { job_id: rows[0].id, status: rows[0].status, success: true }, rate);
  const row = await findVisible(p, id);
  const status = row && !row.deleted_at ? 409 : 404;
  return answer(headers, status, { status }, rate);
}

/** The answer to a request the logic never saw (no route, or the logic failed). */
const bare = (headers, status) => answer(headers, status, { status });

/** node:http alone: the raw server. */
function serveHttp(port, ready) {
  const send = (res, { status, body, headers }) => {
    const text = JSON.stringify(body);
    headers['content-length'] = Buffer.byteLength(text);
    res.writeHead(status, headers);
    res.end(text);
  };
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const id = req.url.startsWith(PREFIX) ? req.url.slice(PREFIX.length) : null;
      if (id === null || (req.method !== 'GET' && req.method !== 'DELETE'))
        return send(res, bare(req.headers, 404));
      handleJobRequest(req.method, id, req.headers).then(
        (answered) => send(res, answered),
        (err) => {
          console.error(err);
          send(res, bare(req.headers, 500));
        },
      );
    });
  });
  server.keepAliveTimeout = 72_000;
  server.listen(port, '127.0.0.1', ready);
  return () => {
    server.close(() => void pool.end().then(() => process.exit(0)));
    server.closeAllConnections();
  };
}

/** A bare Fastify app (its defaults), one route per method. */
async function serveFastify(port, ready) {
  const { default: Fastify } = await import('fastify');
  const app = Fastify();
  const route = async (request, reply) => {
    const { status, body, headers } = await handleJobRequest(
      request.method,
      request.params.id,
      request.headers,
    );
    void reply.code(status).headers(headers);
    return body;
  };
  app.get(`${PREFIX}:id`, route);
  app.delete(`${PREFIX}:id`, route);
  await app.listen({ port, host: '127.0.0.1' });
  ready();
  return () => void app.close().then(() => pool.end().then(() => process.exit(0)));
}

/**
 * A bare NestJS app on its Fastify adapter (its defaults): one controller, no guard, pipe,
 * filter, interceptor or hook of the app's. A 2xx body is returned for Nest to send; anything
 * else is thrown as an HttpException, which Nest's default filter answers.
 */
async function serveNest(port, ready) {
  await import('reflect-metadata');
  const { Controller, Delete, Get, HttpException, Module, Param, Req, Res } = await import('@nestjs/common');
  const { NestFactory } = await import('@nestjs/core');
  const { FastifyAdapter } = await import('@nestjs/platform-fastify');
  const respond = (reply, { status, body, headers }) => {
    void reply.headers(headers);
    if (status >= 300) throw new HttpException(body, status);
    return body;
  };
  class JobsController {
    async get(req, id, reply) {
      return respond(reply, await handleJobRequest('GET', id, req.headers));
    }
    async remove(req, id, reply) {
      return respond(reply, await handleJobRequest('DELETE', id, req.headers));
    }
  }
  // The decorators, applied as TypeScript's compiled output applies them.
  const proto = JobsController.prototype;
  for (const [name, method] of [
    ['get', Get],
    ['remove', Delete],
  ]) {
    Req()(proto, name, 0);
    Param('id')(proto, name, 1);
    Res({ passthrough: true })(proto, name, 2);
    Reflect.defineMetadata('design:paramtypes', [Object, String, Object], proto, name);
    Reflect.decorate([method(':id')], proto, name, Object.getOwnPropertyDescriptor(proto, name));
  }
  Reflect.decorate([Controller(PREFIX.slice(1, -1))], JobsController);
  class FloorModule {}
  Reflect.decorate([Module({ controllers: [JobsController] })], FloorModule);
  const app = await NestFactory.create(FloorModule, new FastifyAdapter(), { logger: ['error', 'warn'] });
  await app.listen({ port, host: '127.0.0.1' });
  ready();
  return () => void app.close().then(() => pool.end().then(() => process.exit(0)));
}

const SERVERS = { http: serveHttp, fastify: serveFastify, nest: serveNest };
const serve = SERVERS[process.env.BASELINE_SERVER || 'http'];
if (!serve) throw new Error(`BASELINE_SERVER must be one of ${Object.keys(SERVERS).join(', ')}`);
const stop = await serve(Number(process.env.PORT), () => process.send?.('ready'));
process.on('SIGTERM', stop);
