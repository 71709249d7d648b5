import { plainToInstance, Transform } from 'class-transformer';
import { isIP } from 'node:net';
import { parseHttpSecrets } from './http-secrets';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  Max,
  Min,
  MinLength,
  validateSync,
} from 'class-validator';

/** Where root places the embedded PostgreSQL's binaries and clusters, unless EMBEDDED_PG_SYSTEM_DIR says otherwise. */
export const DEFAULT_SYSTEM_DIR = '/var/lib/bulk-action-jobs';

const toBoolean = ({ value }: { value: unknown }): unknown => {
  if (typeof value !== 'string') return value;
  const v = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  return value;
};

const toInt = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value;

const emptyToUndefined = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && value.trim() === '' ? undefined : value;

/**
 * Every setting the service reads from the environment. A value that fails
 * validation stops the boot with a message naming the variable.
 */
export class Env {
  @IsIn(['development', 'production', 'test'])
  NODE_ENV: 'development' | 'production' | 'test' = 'development';

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(65535)
  PORT = 3000;

  @IsString()
  @MinLength(1)
  HOST = '0.0.0.0';

  @Transform(emptyToUndefined)
  @IsOptional()
  // Underscores are allowed because container hostnames (e.g. `pg_primary`) often have them.
  @IsUrl({
    protocols: ['postgres', 'postgresql'],
    require_tld: false,
    require_protocol: true,
    allow_underscores: true,
  })
  // `?pooler=transaction`: behind a pooler in transaction mode (src/database/pooler.ts).
  @Matches(/^(?!.*[?&]pooler=(?!(?:none|transaction)(?:[&#]|$)))/, {
    message: 'DATABASE_URL: pooler must be none or transaction',
  })
  DATABASE_URL?: string;

  @Transform(toBoolean)
  @IsBoolean()
  DATABASE_MIGRATIONS_RUN = true;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1000)
  DATABASE_POOL_SIZE = 10;

  @IsString()
  @MinLength(1)
  DATA_DIR = '.data';

  @Transform(toInt)
  @IsInt()
  @Min(1024)
  @Max(65535)
  EMBEDDED_PG_PORT = 54329;

  /**
   * Run as root: where the embedded PostgreSQL's binaries and data go, so that
   * the unprivileged user it runs as can reach them (see embedded-cluster.ts).
   */
  @Matches(/^\//, { message: 'EMBEDDED_PG_SYSTEM_DIR must be an absolute path' })
  EMBEDDED_PG_SYSTEM_DIR = DEFAULT_SYSTEM_DIR;

  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  @MinLength(32, { message: 'AUTH_JWT_SECRET must be at least 32 bytes long' })
  AUTH_JWT_SECRET?: string;

  @Transform(emptyToUndefined)
  @IsOptional()
  @IsUrl({ protocols: ['http', 'https'], require_tld: false, require_protocol: true })
  AUTH_JWKS_URL?: string;

  /** Signs list cursors; unset: a key derived from AUTH_JWT_SECRET. Every API process needs the same one. */
  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  @MinLength(32, { message: 'CURSOR_SECRET must be at least 32 bytes long' })
  CURSOR_SECRET?: string;

  /** The CURSOR_SECRET before a rotation: cursors it signed are still accepted. */
  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  @MinLength(32, { message: 'CURSOR_SECRET_PREVIOUS must be at least 32 bytes long' })
  CURSOR_SECRET_PREVIOUS?: string;

  /** How long one fetch of the JWKS may take before the request is answered with a 503. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(60_000)
  AUTH_JWKS_TIMEOUT_MS = 5000;

  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  AUTH_JWT_ISSUER?: string;

  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  AUTH_JWT_AUDIENCE?: string;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3650)
  BULK_JOBS_RETENTION_DAYS = 30;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000_000)
  BULK_JOBS_MAX_INLINE_TARGETS = 100_000;

  /** Targets per streamed (application/x-ndjson) create. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100_000_000)
  BULK_JOBS_MAX_TARGETS = 10_000_000;

  @Transform(toInt)
  @IsInt()
  @Min(1000)
  @Max(86_400_000)
  BULK_JOBS_PURGE_INTERVAL_MS = 3_600_000;

  /** Items one statement of the purge deletes: a purge is a series of short statements, the job row last. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  BULK_JOBS_PURGE_BATCH_SIZE = 10_000;

  /**
   * Pending items one statement of a cancel skips: the cancel request skips the first batch, the
   * workers' cancel sweep the rest.
   */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  BULK_JOBS_CANCEL_BATCH_SIZE = 1000;

  /** Finished jobs nobody deleted are purged this many days after they finished; unset: kept for ever. */
  @Transform(({ value }: { value: unknown }) => toInt({ value: emptyToUndefined({ value }) }))
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(36_500)
  BULK_JOBS_FINISHED_RETENTION_DAYS?: number;

  /** A job's params, as the UTF-8 bytes of their JSON. */
  @Transform(toInt)
  @IsInt()
  @Min(1024)
  @Max(16 * 1024 * 1024)
  BULK_JOBS_MAX_PARAMS_BYTES = 64 * 1024;

  /** A target's data, as the UTF-8 bytes of its JSON. */
  @Transform(toInt)
  @IsInt()
  @Min(1024)
  @Max(1024 * 1024)
  BULK_JOBS_MAX_TARGET_DATA_BYTES = 16 * 1024;

  /** A list page stops taking rows once they pass this many bytes (it always has one). */
  @Transform(toInt)
  @IsInt()
  @Min(64 * 1024)
  @Max(256 * 1024 * 1024)
  BULK_JOBS_MAX_PAGE_BYTES = 4 * 1024 * 1024;

  /** The longest a results export may run (its COPY's statement_timeout), a slow reader's time included. */
  @Transform(toInt)
  @IsInt()
  @Min(1000)
  @Max(24 * 3600 * 1000)
  BULK_JOBS_EXPORT_TIMEOUT_MS = 3600 * 1000;

  @Transform(toInt)
  @IsInt()
  @Min(1024)
  @Max(1024 * 1024 * 1024)
  BODY_LIMIT_BYTES = 16 * 1024 * 1024;

  /** A request body (JSON or NDJSON) that stops arriving for this long is answered with a 408 and closed. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(3_600_000)
  BODY_IDLE_TIMEOUT_MS = 30_000;

  /** The whole request, headers and body, must arrive within this (Node's requestTimeout); 0: no limit. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(86_400_000)
  REQUEST_TIMEOUT_MS = 300_000;

  /** Streamed (application/x-ndjson) creates one owner may have in progress at once, per process; 0: no limit. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(10_000)
  BULK_JOBS_MAX_UPLOADS_PER_OWNER = 2;

  /**
   * Streamed creates in progress at once in this process, whoever sends them;
   * default half of DATABASE_POOL_SIZE (maxUploads()). Each holds a pooled
   * connection for as long as its body arrives, so it must leave some to the
   * other requests: it is refused at start-up unless below DATABASE_POOL_SIZE.
   */
  @Transform(({ value }: { value: unknown }) => toInt({ value: emptyToUndefined({ value }) }))
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(1000)
  BULK_JOBS_MAX_UPLOADS?: number;

  /** Results exports one owner may have in progress at once, per process; 0: no limit. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(10_000)
  BULK_JOBS_MAX_EXPORTS_PER_OWNER = 2;

  /**
   * Results exports in progress at once in this process, whoever reads them;
   * default a quarter of DATABASE_POOL_SIZE (maxExports()). Each holds a pooled
   * connection for as long as its client reads, so uploads and exports
   * together must leave some to the other requests: a configuration that sets
   * either cap is refused at start-up unless maxUploads() + maxExports() is
   * below DATABASE_POOL_SIZE.
   */
  @Transform(({ value }: { value: unknown }) => toInt({ value: emptyToUndefined({ value }) }))
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(1000)
  BULK_JOBS_MAX_EXPORTS?: number;

  @IsIn(['fatal', 'error', 'warn', 'log', 'debug', 'verbose'])
  LOG_LEVEL: 'fatal' | 'error' | 'warn' | 'log' | 'debug' | 'verbose' = 'log';

  /** `json` (one JSON object a line), `pretty` (readable), or `auto`: pretty on a terminal outside production. */
  @IsIn(['auto', 'json', 'pretty'])
  LOG_FORMAT: 'auto' | 'json' | 'pretty' = 'auto';

  // Operations: database timeouts, metrics, limits, CORS.

  /** Longest wait for a database connection (a new one, or a free one from the pool); past it the request is a 503. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(60_000)
  DATABASE_CONNECT_TIMEOUT_MS = 3000;

  /**
   * Longest statement of the API's pool (statement_timeout), so that a stuck statement cannot hold
   * a connection for ever; a streamed create's COPY, which lasts as long as its upload, is exempt.
   */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(3_600_000)
  DATABASE_STATEMENT_TIMEOUT_MS = 60_000;

  /** When set, GET /metrics wants `Authorization: Bearer <METRICS_TOKEN>`. */
  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  @MinLength(16, { message: 'METRICS_TOKEN must be at least 16 characters long' })
  METRICS_TOKEN?: string;

  /**
   * GET /metrics on a port of its own: an API process serves it there instead of on PORT, a
   * worker-only process serves it only there. 0: the API serves it on PORT, a worker not at all.
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(65535)
  METRICS_PORT = 0;

  /** Requests per minute per principal (a token's sub), over every API process together; 0: no limit. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(10_000_000)
  RATE_LIMIT_PER_MINUTE = 6000;

  /**
   * Requests of one principal an API process reserves in the database at a time, and admits without
   * asking again; unset: 1% of RATE_LIMIT_PER_MINUTE (at least 1). Above the limit it is the limit.
   */
  @Transform(({ value }: { value: unknown }) => toInt({ value: emptyToUndefined({ value }) }))
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(10_000_000)
  RATE_LIMIT_CHUNK?: number;

  /** Requests per minute per client address to the routes that need no token (health, metrics, docs); 0: no limit. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(10_000_000)
  RATE_LIMIT_PUBLIC_PER_MINUTE = 600;

  /**
   * The proxies whose X-Forwarded-For is believed about a client's address: their addresses and CIDR
   * ranges (or loopback, linklocal, uniquelocal), comma-separated. Empty: none, the connection's peer
   * is the client.
   */
  @IsString()
  @Matches(/^[\sA-Za-z0-9.:/,]*$/, {
    message:
      'TRUST_PROXY must be empty, or comma-separated addresses, CIDR ranges and loopback/linklocal/uniquelocal',
  })
  TRUST_PROXY = '';

  /** Pending, running and cancelling jobs one owner may have at once; 0: no limit. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  BULK_JOBS_MAX_ACTIVE_PER_OWNER = 100;

  /** Origins allowed by CORS, comma-separated (`*` for any); empty: CORS is off. */
  @IsString()
  @Matches(
    /^\s*(\*|https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?)?(\s*,\s*(\*|https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?))*\s*$/,
    {
      message: 'CORS_ORIGINS must be a comma-separated list of origins (scheme://host[:port]) or *',
    },
  )
  CORS_ORIGINS = '';

  // Workers (src/engine, docs/engine.md).

  /** Items one worker process runs at the same time. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000)
  WORKER_CONCURRENCY = 50;

  /**
   * A worker holds at most this many claimed, unrecorded items; it claims and writes
   * WORKER_BATCH_SIZE / (WORKER_CLAIMS_IN_FLIGHT + 2) of them per statement.
   */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000)
  WORKER_BATCH_SIZE = 4000;

  /** Claims a worker keeps in flight at once, each on a database connection of its own. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(8)
  WORKER_CLAIMS_IN_FLIGHT = 2;

  /** How long a claim is valid unless the worker extends it; a dead worker's items return after it. */
  @Transform(toInt)
  @IsInt()
  @Min(500)
  @Max(3_600_000)
  WORKER_LEASE_MS = 30_000;

  /** Longest wait between claim attempts while there is nothing to claim. */
  @Transform(toInt)
  @IsInt()
  @Min(10)
  @Max(60_000)
  WORKER_POLL_INTERVAL_MS = 250;

  /** How often expired leases are swept; default half of WORKER_LEASE_MS, at most 5 s. */
  @Transform(({ value }: { value: unknown }) => toInt({ value: emptyToUndefined({ value }) }))
  @IsOptional()
  @IsInt()
  @Min(100)
  @Max(3_600_000)
  WORKER_SWEEP_INTERVAL_MS?: number;

  /** Longest wait before results that do not fill a batch are written. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000)
  WORKER_FLUSH_INTERVAL_MS = 50;

  /** On SIGTERM: how long in-flight items may run before they are aborted and released. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3_600_000)
  WORKER_SHUTDOWN_GRACE_MS = 20_000;

  /** Backoff before the second attempt; doubles with each further attempt (with jitter). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(3_600_000)
  WORKER_RETRY_BASE_MS = 1_000;

  /** Upper bound of the backoff between attempts. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(86_400_000)
  WORKER_RETRY_MAX_MS = 300_000;

  /** Hosts the http action may call: comma-separated `host`, `host:port` or `*.domain`. Empty: none. */
  @IsString()
  @Matches(/^[\w.*:[\],\s-]*$/, {
    message: 'ACTIONS_HTTP_ALLOWED_HOSTS must be a comma-separated list of host or host:port',
  })
  ACTIONS_HTTP_ALLOWED_HOSTS = '';

  /** Credentials the http action sends by reference (`{"$secret": "name"}`): a JSON object name → value. */
  @IsString()
  ACTIONS_HTTP_SECRETS = '';

  /** Timeout of one request of the http action. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(600_000)
  ACTIONS_HTTP_TIMEOUT_MS = 10_000;

  // Completion webhooks (options.notify).

  /**
   * The key that signs webhooks (Standard Webhooks): `whsec_` and the base64 of 24 to 64 random bytes.
   * Unset: a job that asks for a webhook is refused (400), so that no unsigned event ever leaves.
   */
  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  @Matches(/^whsec_[A-Za-z0-9+/]{32,88}={0,2}$/, {
    message: 'WEBHOOKS_SIGNING_SECRET must be whsec_ followed by the base64 of 24 to 64 bytes',
  })
  WEBHOOKS_SIGNING_SECRET?: string;

  /** The delay after a failed delivery, doubled after each (with jitter), at most an hour. */
  @Transform(toInt)
  @IsInt()
  @Min(10)
  @Max(3_600_000)
  WEBHOOKS_RETRY_BASE_MS = 1000;

  /** How long an event is retried from the job's end before it is given up. */
  @Transform(toInt)
  @IsInt()
  @Min(1000)
  @Max(7 * 86_400_000)
  WEBHOOKS_RETRY_FOR_MS = 86_400_000;

  /** Timeout of one delivery attempt (the receiver's answer included). */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(120_000)
  WEBHOOKS_TIMEOUT_MS = 10_000;

  /** How often a worker looks for events due. */
  @Transform(toInt)
  @IsInt()
  @Min(20)
  @Max(60_000)
  WEBHOOKS_POLL_MS = 500;

  // Live progress (GET /jobs/{id}/events).

  /** How often the job rows of open event streams are read, and the least time between two progress events. */
  @Transform(toInt)
  @IsInt()
  @Min(50)
  @Max(60_000)
  SSE_PROGRESS_INTERVAL_MS = 250;

  /** How often an open event stream gets a heartbeat comment, so that proxies keep it open. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(3_600_000)
  SSE_HEARTBEAT_MS = 15_000;

  /** Event streams one owner may have open at once, per process; 0: no limit. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(100_000)
  SSE_MAX_STREAMS_PER_OWNER = 10;

  /** Event streams open at once in this process, whoever opened them; 0: no limit. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  SSE_MAX_STREAMS = 1000;

  // The operator's dashboard (src/ui, ui/).

  /** Serve the dashboard at /ui from the API process. */
  @Transform(toBoolean)
  @IsBoolean()
  UI_ENABLED = true;
}

/** RATE_LIMIT_CHUNK, else 1% of the limit (at least one), never above the limit. */
export function rateLimitChunk(env: Pick<Env, 'RATE_LIMIT_CHUNK' | 'RATE_LIMIT_PER_MINUTE'>): number {
  const limit = env.RATE_LIMIT_PER_MINUTE;
  return Math.max(1, Math.min(limit, env.RATE_LIMIT_CHUNK ?? Math.floor(limit / 100)));
}

/** BULK_JOBS_MAX_UPLOADS, else half the pool (at least one). */
export function maxUploads(env: Pick<Env, 'BULK_JOBS_MAX_UPLOADS' | 'DATABASE_POOL_SIZE'>): number {
  return env.BULK_JOBS_MAX_UPLOADS ?? Math.max(1, Math.floor(env.DATABASE_POOL_SIZE / 2));
}

/** BULK_JOBS_MAX_EXPORTS, else a quarter of the pool (at least one): beside maxUploads(), a quarter is left. */
export function maxExports(env: Pick<Env, 'BULK_JOBS_MAX_EXPORTS' | 'DATABASE_POOL_SIZE'>): number {
  return env.BULK_JOBS_MAX_EXPORTS ?? Math.max(1, Math.floor(env.DATABASE_POOL_SIZE / 4));
}

/** Variables whose values must never appear in an error message or a log. */
const SECRET_VARIABLES = new Set([
  'AUTH_JWT_SECRET',
  'METRICS_TOKEN',
  'CURSOR_SECRET',
  'CURSOR_SECRET_PREVIOUS',
  'ACTIONS_HTTP_SECRETS',
  'WEBHOOKS_SIGNING_SECRET',
]);

/** The offending value as shown in a ConfigError: secrets and URL passwords are masked. */
function shown(name: string, value: string | undefined): string {
  if (value === undefined) return 'nothing';
  if (SECRET_VARIABLES.has(name)) return `a value of ${value.length} characters`;
  return JSON.stringify(value.replace(/(\/\/[^/:@]*:)[^/@]*@/, '$1***@'));
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the environment; throws a ConfigError naming every bad variable. */
export function loadEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const known = Object.keys(new Env());
  const picked: Record<string, string> = {};
  for (const key of known) {
    const value = source[key];
    if (value !== undefined) picked[key] = value;
  }
  const env = plainToInstance(Env, picked, { exposeDefaultValues: true });
  const errors = validateSync(env, { whitelist: false, forbidUnknownValues: true });
  if (errors.length > 0) {
    const problems = errors.map((e) => {
      const messages = Object.values(e.constraints ?? {}).join('; ');
      return `${e.property}: ${messages} (got ${shown(e.property, source[e.property])})`;
    });
    throw new ConfigError(problems);
  }
  const problems: string[] = [];
  if (env.BULK_JOBS_MAX_UPLOADS !== undefined && env.BULK_JOBS_MAX_UPLOADS >= env.DATABASE_POOL_SIZE) {
    problems.push(
      `BULK_JOBS_MAX_UPLOADS: must be below DATABASE_POOL_SIZE (${env.DATABASE_POOL_SIZE}), so that uploads ` +
        `leave connections to reads and inline creates (got ${env.BULK_JOBS_MAX_UPLOADS})`,
    );
  } else if (
    // Checked once either is set: the defaults leave at least a quarter of any pool of 3 or more, and
    // a pool of 1 or 2 cannot hold an upload, an export and one more.
    (env.BULK_JOBS_MAX_UPLOADS !== undefined || env.BULK_JOBS_MAX_EXPORTS !== undefined) &&
    maxUploads(env) + maxExports(env) >= env.DATABASE_POOL_SIZE
  ) {
    problems.push(
      `BULK_JOBS_MAX_UPLOADS + BULK_JOBS_MAX_EXPORTS: must be below DATABASE_POOL_SIZE ` +
        `(${env.DATABASE_POOL_SIZE}), so that uploads and exports together leave connections to reads and ` +
        `inline creates (got ${maxUploads(env)} + ${maxExports(env)}; an unset cap counts at its default)`,
    );
  }
  if (env.NODE_ENV === 'production' && !env.AUTH_JWT_SECRET && !env.AUTH_JWKS_URL) {
    problems.push('AUTH_JWT_SECRET or AUTH_JWKS_URL: one of them must be set when NODE_ENV=production');
  }
  if (env.CURSOR_SECRET_PREVIOUS && !env.CURSOR_SECRET) {
    problems.push('CURSOR_SECRET_PREVIOUS is set without CURSOR_SECRET: set the new secret in CURSOR_SECRET');
  }
  const secrets = parseHttpSecrets(env.ACTIONS_HTTP_SECRETS);
  if ('problem' in secrets) {
    problems.push(
      `ACTIONS_HTTP_SECRETS: ${secrets.problem} (got ${shown('ACTIONS_HTTP_SECRETS', env.ACTIONS_HTTP_SECRETS)})`,
    );
  }
  const proxies = trustedProxies(env);
  if (typeof proxies === 'string' && proxies.split(',').some((p) => !isAddressOrRange(p))) {
    problems.push(
      `TRUST_PROXY: ${JSON.stringify(env.TRUST_PROXY)} is not a list of addresses and CIDR ranges`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return env;
}

/**
 * TRUST_PROXY as Fastify's trustProxy takes it: false, or the proxies' addresses and ranges. Never
 * `true` (every client could then name its own address) nor a hop count (Fastify 5 trusts nobody then).
 */
export function trustedProxies(env: Pick<Env, 'TRUST_PROXY'>): false | string {
  const value = env.TRUST_PROXY.split(',')
    .map((p) => p.trim())
    .filter(Boolean)
    .join(',');
  return value === '' ? false : value;
}

const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function isAddressOrRange(text: string): boolean {
  if (PROXY_RANGE_NAMES.has(text)) return true;
  const [address, bits, ...rest] = text.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}
