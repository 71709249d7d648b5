// The raw baseline of the api benchmark: node:http and a pg Pool, the same HS256
// check (jsonwebtoken, exp required, scopes) and the same SQL as the service's
// GET /jobs/{id} and DELETE /jobs/{id}, prepared (named) as the service's are on a
// direct connection, the same responses: the same bodies (the same columns read, the
// same fields in the same order, credential headers in params redacted by the service's
// own function), and
// the headers the HTTP contract puts on every response (the request id, the
// security headers, the rate-limit headers of the same per-principal limiter).
// No framework.
//   DATABASE_URL=… AUTH_JWT_SECRET=… PORT=… node bench/baseline-api.mjs
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

function send(res, status, body, rate) {
  const text = JSON.stringify(body);
  const incoming = res.req.headers['x-request-id'];
  res.writeHead(status, {
    ...API_SECURITY_HEADERS,
    'x-request-id': typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID(),
    ...(rate && {
      'x-ratelimit-limit': rate.limit,
      'x-ratelimit-remaining': rate.remaining,
      'x-ratelimit-reset': rate.resetSeconds,
    }),
    'content-type': status < 400 ? 'application/json; charset=utf-8' : 'application/problem+json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** The principal of a valid token with the scope, or an HTTP status. */
function principal(req, scope) {
  const m = BEARER.exec(req.headers.authorization ?? '');
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

async function handle(req, res) {
  const id = req.url.startsWith(PREFIX) ? req.url.slice(PREFIX.length) : null;
  if (id === null || (req.method !== 'GET' && req.method !== 'DELETE'))
    return send(res, 404, { status: 404 });
  const p = principal(req, req.method === 'GET' ? 'bulk-jobs:read' : 'bulk-jobs:write');
  if (typeof p === 'number') return send(res, p, { status: p });
  const rate = limiter.hit(p.sub);
  if (!rate.allowed) return send(res, 429, { status: 429 }, rate);
  if (!UUID.test(id)) return send(res, 400, { status: 400 }, rate);
  if (req.method === 'GET') {
    const row = await findVisible(p, id);
    return row ? send(res, 200, toJob(row), rate) : send(res, 404, { status: 404 }, rate);
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
    return send(res, 200, { job_id: rows[0].id, status: rows[0].status, success: true }, rate);
  const row = await findVisible(p, id);
  const status = row && !row.deleted_at ? 409 : 404;
  return send(res, status, { status }, rate);
}

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () =>
    handle(req, res).catch((err) => {
      console.error(err);
      send(res, 500, { status: 500 });
    }),
  );
});
server.keepAliveTimeout = 72_000;
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => {
  server.close(() => void pool.end().then(() => process.exit(0)));
  server.closeAllConnections();
});
