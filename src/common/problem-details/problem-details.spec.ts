import {
  BadRequestException,
  HttpException,
  Logger,
  type LoggerService,
  MethodNotAllowedException,
  NotFoundException,
  PayloadTooLargeException,
  ServiceUnavailableException,
  UnsupportedMediaTypeException,
  type ArgumentsHost,
} from '@nestjs/common';
import { expect } from 'expect';
import { STATUS_CODES } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  BulkJobNotCancellableError,
  BulkJobNotDeletableError,
  BulkJobNotDeletedError,
  BulkJobNotPausableError,
  BulkJobNotResumableError,
  BulkJobNotRetryableError,
  NothingToRetryError,
  BulkJobNotFoundError,
  IdempotencyKeyReusedError,
  TooManyActiveJobsError,
  TooManyExportsError,
  TooManyStreamsError,
  TooManyUploadsError,
} from '../../bulk-jobs/bulk-jobs.errors';
import { isDatabaseUnavailable, isLockNotAvailable } from '../../database/database-errors';
import {
  ForbiddenError,
  RateLimitedError,
  RequestTimeoutError,
  ServiceUnavailableError,
  UnauthenticatedError,
  ValidationFailedError,
  type DomainError,
  type DomainErrorCode,
} from './domain-error';
import {
  buildProblem,
  mapDomainError,
  mapHttpException,
  mapUnknownError,
  PROBLEM_CONTENT_TYPE,
  type ProblemDetails,
  type ProblemMapping,
} from './problem-details';
import { ProblemDetailsFilter } from './problem-details.filter';

const JOB_ID = '8d7c6f9e-1a2b-4c3d-9e8f-0a1b2c3d4e5f';

interface ExpectedMapping {
  error: DomainError;
  status: number;
  type: string;
  extensions?: Record<string, unknown>;
  headers?: Record<string, string>;
}

// A Record over DomainErrorCode: adding a code without a row here fails to compile.
const DOMAIN_ERRORS: Record<DomainErrorCode, ExpectedMapping> = {
  VALIDATION_FAILED: {
    error: new ValidationFailedError({ id: 'must be a UUID' }),
    status: 400,
    type: '/problems/validation-error',
  },
  UNAUTHENTICATED: {
    error: new UnauthenticatedError(),
    status: 401,
    type: 'about:blank',
    headers: { 'www-authenticate': 'Bearer realm="bulk-jobs"' },
  },
  FORBIDDEN: {
    error: new ForbiddenError('bulk-jobs:write'),
    status: 403,
    type: 'about:blank',
    extensions: { required_scope: 'bulk-jobs:write' },
    headers: { 'www-authenticate': 'Bearer realm="bulk-jobs", error="insufficient_scope"' },
  },
  JOB_NOT_FOUND: { error: new BulkJobNotFoundError(JOB_ID), status: 404, type: '/problems/job-not-found' },
  JOB_NOT_DELETABLE: {
    error: new BulkJobNotDeletableError(JOB_ID, 'running'),
    status: 409,
    type: '/problems/job-not-deletable',
    extensions: { job_status: 'running' },
  },
  JOB_NOT_CANCELLABLE: {
    error: new BulkJobNotCancellableError(JOB_ID, 'completed'),
    status: 409,
    type: '/problems/job-not-cancellable',
    extensions: { job_status: 'completed' },
  },
  JOB_NOT_DELETED: {
    error: new BulkJobNotDeletedError(JOB_ID),
    status: 409,
    type: '/problems/job-not-deleted',
  },
  JOB_NOT_RETRYABLE: {
    error: new BulkJobNotRetryableError(JOB_ID, 'running'),
    status: 409,
    type: '/problems/job-not-retryable',
    extensions: { job_status: 'running' },
  },
  NOTHING_TO_RETRY: {
    error: new NothingToRetryError(JOB_ID, 'completed', false),
    status: 409,
    type: '/problems/nothing-to-retry',
    extensions: { job_status: 'completed' },
  },
  JOB_NOT_PAUSABLE: {
    error: new BulkJobNotPausableError(JOB_ID, 'completed'),
    status: 409,
    type: '/problems/job-not-pausable',
    extensions: { job_status: 'completed' },
  },
  JOB_NOT_RESUMABLE: {
    error: new BulkJobNotResumableError(JOB_ID, 'cancelled'),
    status: 409,
    type: '/problems/job-not-resumable',
    extensions: { job_status: 'cancelled' },
  },
  IDEMPOTENCY_KEY_REUSED: {
    error: new IdempotencyKeyReusedError(),
    status: 422,
    type: '/problems/idempotency-key-reused',
  },
  TOO_MANY_ACTIVE_JOBS: {
    error: new TooManyActiveJobsError(100),
    status: 429,
    type: '/problems/too-many-active-jobs',
    extensions: { max_active_jobs: 100 },
  },
  TOO_MANY_UPLOADS: {
    error: new TooManyUploadsError(2, 'owner'),
    status: 429,
    type: '/problems/too-many-uploads',
    extensions: { max_uploads: 2, per: 'owner' },
    headers: { 'retry-after': '5' },
  },
  TOO_MANY_STREAMS: {
    error: new TooManyStreamsError(1000, 'server'),
    status: 429,
    type: '/problems/too-many-streams',
    extensions: { max_streams: 1000, per: 'server' },
    headers: { 'retry-after': '5' },
  },
  TOO_MANY_EXPORTS: {
    error: new TooManyExportsError(2, 'owner'),
    status: 429,
    type: '/problems/too-many-exports',
    extensions: { max_exports: 2, per: 'owner' },
    headers: { 'retry-after': '5' },
  },
  REQUEST_TIMEOUT: {
    error: new RequestTimeoutError(30_000),
    status: 408,
    type: 'about:blank',
    headers: { connection: 'close' },
  },
  RATE_LIMITED: {
    error: new RateLimitedError(6000, 12),
    status: 429,
    type: 'about:blank',
    headers: { 'retry-after': '12' },
  },
  SERVICE_UNAVAILABLE: {
    error: new ServiceUnavailableError(7),
    status: 503,
    type: 'about:blank',
    headers: { 'retry-after': '7' },
  },
};

describe('mapDomainError', () => {
  for (const [code, expected] of Object.entries(DOMAIN_ERRORS)) {
    it(`maps ${code} to ${expected.status} ${expected.type}`, () => {
      expect(expected.error.code).toBe(code);
      const mapping = mapDomainError(expected.error);
      expect(mapping.status).toBe(expected.status);
      expect(mapping.type).toBe(expected.type);
      expect(mapping.detail).toBe(expected.error.message);
      expect(mapping.title.length).toBeGreaterThan(0);
      if (mapping.type === 'about:blank') expect(mapping.title).toBe(STATUS_CODES[expected.status]);
      else expect(mapping.type).toMatch(/^\/problems\/[a-z0-9-]+$/);
      expect(mapping.extensions ?? {}).toEqual(expected.extensions ?? {});
      expect(mapping.headers ?? {}).toEqual(expected.headers ?? {});
      expect(mapping.unexpected).toBeFalsy();
    });
  }

  it('carries the per-field details of a validation error', () => {
    const mapping = mapDomainError(
      new ValidationFailedError({ 'options.max_attempts': 'must not be greater than 25' }),
    );
    expect(mapping.details).toEqual({ 'options.max_attempts': 'must not be greater than 25' });
  });

  it('gives distinct problem types to distinct domain problems', () => {
    const types = Object.values(DOMAIN_ERRORS)
      .map((e) => mapDomainError(e.error).type)
      .filter((type) => type !== 'about:blank');
    expect(new Set(types).size).toBe(types.length);
  });
});

describe('mapHttpException', () => {
  const cases: [HttpException, number, string | RegExp][] = [
    [new NotFoundException('Cannot GET /nope'), 404, 'No resource exists at this path.'],
    [new MethodNotAllowedException(), 405, 'This method is not allowed on this resource.'],
    [
      new PayloadTooLargeException('Request body is too large'),
      413,
      'The request body is larger than this server accepts.',
    ],
    [new UnsupportedMediaTypeException('Unsupported Media Type: text/plain'), 415, /media type/],
    [
      new BadRequestException('Unexpected token } in JSON at position 7'),
      400,
      'The request body is not valid JSON.',
    ],
    [new BadRequestException('Body cannot be empty'), 400, 'Body cannot be empty'],
    [new HttpException('Too Many Requests', 429), 429, 'Too Many Requests'],
  ];
  for (const [exception, status, detail] of cases) {
    it(`maps ${exception.constructor.name} (${status}) to an about:blank problem titled with the reason phrase`, () => {
      const mapping = mapHttpException(exception);
      expect(mapping).toMatchObject({ status, type: 'about:blank', title: STATUS_CODES[status] });
      if (detail instanceof RegExp) expect(mapping.detail).toMatch(detail);
      else expect(mapping.detail).toBe(detail);
      expect(mapping.unexpected).toBeFalsy();
    });
  }

  it('does not repeat the message of a 5xx HttpException and marks it unexpected', () => {
    const mapping = mapHttpException(new ServiceUnavailableException('pool exhausted on db-3.internal:5432'));
    expect(mapping).toMatchObject({
      status: 503,
      type: 'about:blank',
      title: 'Service Unavailable',
      unexpected: true,
    });
    expect(mapping.detail).not.toContain('db-3');
  });
});

describe('mapUnknownError', () => {
  it('answers a bug with a generic 500 that reveals nothing internal', () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'id') at /srv/app/dist/x.js:1:2");
    const problem = buildProblem(mapUnknownError(bug), '/api/actions/bulk/jobs', 'req-1');
    expect(problem).toMatchObject({ status: 500, type: 'about:blank', title: 'Internal Server Error' });
    const text = JSON.stringify(problem);
    for (const secret of ['Cannot read', 'reading', '/srv/app', 'TypeError'])
      expect(text).not.toContain(secret);
    expect(mapUnknownError(bug).unexpected).toBe(true);
  });

  it('does not mistake a failing statement for a lost database', () => {
    const errors: unknown[] = [
      { code: '23505', message: 'duplicate key value violates unique constraint "bulk_jobs_pkey"' },
      {
        name: 'QueryFailedError',
        query: 'SELECT 1',
        driverError: { code: '42P01', message: 'relation "x" does not exist' },
      },
      'a thrown string',
      null,
      undefined,
    ];
    for (const err of errors) {
      expect(isDatabaseUnavailable(err)).toBe(false);
      const mapping = mapUnknownError(err);
      expect(mapping.status).toBe(500);
      expect(JSON.stringify(buildProblem(mapping, '/x', 'r'))).not.toMatch(/duplicate|relation|SELECT/);
    }
  });

  it('answers a lost database with 503 and Retry-After', () => {
    const errors: unknown[] = [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      { code: '57P01', message: 'terminating connection due to administrator command' },
      { code: '53300', message: 'sorry, too many clients already' },
      new Error('Connection terminated unexpectedly'),
      new Error('timeout exceeded when trying to connect'),
      { name: 'QueryFailedError', driverError: { code: '08006' } },
      new Error('wrapped', { cause: { code: 'ETIMEDOUT' } }),
    ];
    for (const err of errors) {
      expect(isDatabaseUnavailable(err)).toBe(true);
      const mapping = mapUnknownError(err);
      expect(mapping).toMatchObject({ status: 503, type: 'about:blank', title: 'Service Unavailable' });
      expect(Number(mapping.headers?.['retry-after'])).toBeGreaterThan(0);
      const text = JSON.stringify(buildProblem(mapping, '/x', 'r'));
      expect(text).not.toMatch(/ECONNREFUSED|5432|administrator|too many clients/);
    }
  });

  it('tells a lock timeout (55P03) apart, however it is wrapped, and only that', () => {
    expect(isLockNotAvailable({ code: '55P03' })).toBe(true);
    expect(isLockNotAvailable({ name: 'QueryFailedError', driverError: { code: '55P03' } })).toBe(true);
    expect(isLockNotAvailable(new Error('wrapped', { cause: { code: '55P03' } }))).toBe(true);
    for (const err of [{ code: '40P01' }, { code: '57P01' }, new Error('55P03'), undefined]) {
      expect(isLockNotAvailable(err)).toBe(false);
    }
    expect(isDatabaseUnavailable({ code: '55P03' })).toBe(false);
  });
});

describe('buildProblem', () => {
  const mapping: ProblemMapping = {
    status: 409,
    type: '/problems/job-not-deletable',
    title: 'The job cannot be deleted in its current status.',
    detail: 'Bulk action job x is running.',
    extensions: { job_status: 'running', status: 200, requestId: 'forged', type: 'about:blank' },
  };

  it('writes every member, with error the same text as detail', () => {
    const problem: ProblemDetails = buildProblem(mapping, '/api/actions/bulk/jobs/x', 'req-42');
    expect(problem).toEqual({
      type: '/problems/job-not-deletable',
      title: 'The job cannot be deleted in its current status.',
      status: 409,
      detail: 'Bulk action job x is running.',
      instance: '/api/actions/bulk/jobs/x',
      error: 'Bulk action job x is running.',
      requestId: 'req-42',
      job_status: 'running',
    });
  });

  it('adds details only when there are some', () => {
    expect('details' in buildProblem(mapping, '/x', 'r')).toBe(false);
    const withDetails = buildProblem(
      { ...mapping, details: { limit: 'must be a positive integer' } },
      '/x',
      'r',
    );
    expect(withDetails.details).toEqual({ limit: 'must be a positive integer' });
    expect(withDetails.error).toBe(withDetails.detail);
  });
});

interface CapturedReply {
  statusCode?: number;
  headers: Record<string, string>;
  body?: unknown;
  sent: boolean;
}

function fakeHost(url: string, reply: CapturedReply): ArgumentsHost {
  const replyApi = {
    get sent() {
      return reply.sent;
    },
    status(code: number) {
      reply.statusCode = code;
      return replyApi;
    },
    header(name: string, value: string) {
      reply.headers[name.toLowerCase()] = value;
      return replyApi;
    },
    send(body: unknown) {
      reply.body = body;
      reply.sent = true;
      return replyApi;
    },
  };
  const request = { id: 'req-7', url, method: 'GET' };
  return {
    switchToHttp: () => ({
      getRequest: () => request,
      getResponse: () => replyApi,
      getNext: () => undefined,
    }),
  } as unknown as ArgumentsHost;
}

describe('ProblemDetailsFilter', () => {
  const logged: string[] = [];
  const captureLogger: LoggerService = {
    log: () => undefined,
    warn: () => undefined,
    error: (message: unknown, ...rest: unknown[]) => {
      logged.push([message, ...rest].map(String).join(' '));
    },
  };
  before(() => {
    Logger.overrideLogger(captureLogger);
  });
  after(() => {
    Logger.overrideLogger(['error', 'fatal']);
  });
  beforeEach(() => {
    logged.length = 0;
  });

  function send(exception: unknown, url = '/api/actions/bulk/jobs?limit=3'): CapturedReply {
    const reply: CapturedReply = { headers: {}, sent: false };
    new ProblemDetailsFilter().catch(exception, fakeHost(url, reply));
    return reply;
  }

  it('answers a domain error as problem+json with the path as instance and the request id', () => {
    const reply = send(new BulkJobNotDeletableError(JOB_ID, 'pending'));
    expect(reply.statusCode).toBe(409);
    expect(reply.headers['content-type']).toBe(PROBLEM_CONTENT_TYPE);
    expect(reply.body).toMatchObject({
      type: '/problems/job-not-deletable',
      status: 409,
      instance: '/api/actions/bulk/jobs',
      requestId: 'req-7',
      job_status: 'pending',
    });
    expect(logged).toEqual([]);
  });

  it('logs an unknown error with the request id and stack, and answers a bare 500', () => {
    const reply = send(new Error('column "secret_column" does not exist'));
    expect(reply.statusCode).toBe(500);
    expect(JSON.stringify(reply.body)).not.toContain('secret_column');
    expect(logged.join('\n')).toContain('requestId=req-7');
    expect(logged.join('\n')).toContain('secret_column');
  });

  it('sends Retry-After with a 503 for a lost database', () => {
    const reply = send(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    expect(reply.statusCode).toBe(503);
    expect(reply.headers['retry-after']).toBe('5');
    expect(reply.headers['content-type']).toBe(PROBLEM_CONTENT_TYPE);
  });

  it("maps Fastify's own unwrapped client errors by their status", () => {
    const reply = send({
      code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE',
      statusCode: 415,
      message: 'Unsupported Media Type: text/plain',
    });
    expect(reply.statusCode).toBe(415);
    expect(reply.body).toMatchObject({ type: 'about:blank', title: 'Unsupported Media Type', status: 415 });
  });

  it('does not write twice to a reply that was already sent', () => {
    const reply: CapturedReply = { headers: {}, sent: true };
    new ProblemDetailsFilter().catch(new BulkJobNotFoundError(JOB_ID), fakeHost('/x', reply));
    expect(reply.statusCode).toBeUndefined();
    expect(reply.body).toBeUndefined();
  });
});
