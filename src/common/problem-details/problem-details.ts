import { HttpException } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import type { DomainError, RateLimitedError } from './domain-error';
import { isDatabaseUnavailable } from '../../database/database-errors';

/** RFC 9457 problem details plus the legacy members older clients read. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  /** The request path; absent only when the server could not read the request line. */
  instance?: string;
  /** Legacy: same text as `detail`. */
  error: string;
  /** Legacy: per-field messages, on validation errors only. */
  details?: Record<string, string>;
  requestId: string;
  [extension: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface ProblemMapping {
  status: number;
  type: string;
  title: string;
  detail: string;
  details?: Record<string, string>;
  extensions?: Record<string, unknown>;
  headers?: Record<string, string>;
  /** Unexpected errors are logged with their stack; expected ones are not. */
  unexpected?: boolean;
}

export function reasonPhrase(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}

/** Maps each domain error code to its HTTP status and problem type. */
export function mapDomainError(err: DomainError): ProblemMapping {
  const base = { detail: err.message, extensions: { ...err.extensions } };
  const code = err.code;
  switch (code) {
    case 'VALIDATION_FAILED':
      return {
        ...base,
        status: 400,
        type: '/problems/validation-error',
        title: 'Your request is not valid.',
        details: (err as DomainError & { details: Record<string, string> }).details,
      };
    case 'UNAUTHENTICATED':
      return {
        ...base,
        status: 401,
        type: 'about:blank',
        title: reasonPhrase(401),
        headers: {
          'www-authenticate': (err as DomainError & { invalidToken: boolean }).invalidToken
            ? 'Bearer realm="bulk-jobs", error="invalid_token"'
            : 'Bearer realm="bulk-jobs"',
        },
      };
    case 'FORBIDDEN':
      return {
        ...base,
        status: 403,
        type: 'about:blank',
        title: reasonPhrase(403),
        headers: { 'www-authenticate': `Bearer realm="bulk-jobs", error="insufficient_scope"` },
      };
    case 'JOB_NOT_FOUND':
      return { ...base, status: 404, type: '/problems/job-not-found', title: 'Job not found.' };
    case 'JOB_NOT_DELETABLE':
      return {
        ...base,
        status: 409,
        type: '/problems/job-not-deletable',
        title: 'The job cannot be deleted in its current status.',
      };
    case 'JOB_NOT_CANCELLABLE':
      return {
        ...base,
        status: 409,
        type: '/problems/job-not-cancellable',
        title: 'The job cannot be cancelled in its current status.',
      };
    case 'JOB_NOT_DELETED':
      return {
        ...base,
        status: 409,
        type: '/problems/job-not-deleted',
        title: 'The job is not deleted.',
      };
    case 'JOB_NOT_RETRYABLE':
      return {
        ...base,
        status: 409,
        type: '/problems/job-not-retryable',
        title: 'The job cannot be retried in its current status.',
      };
    case 'NOTHING_TO_RETRY':
      return {
        ...base,
        status: 409,
        type: '/problems/nothing-to-retry',
        title: 'The job has no items to retry.',
      };
    case 'JOB_NOT_PAUSABLE':
      return {
        ...base,
        status: 409,
        type: '/problems/job-not-pausable',
        title: 'The job cannot be paused in its current status.',
      };
    case 'JOB_NOT_RESUMABLE':
      return {
        ...base,
        status: 409,
        type: '/problems/job-not-resumable',
        title: 'The job cannot be resumed in its current status.',
      };
    case 'IDEMPOTENCY_KEY_REUSED':
      return {
        ...base,
        status: 422,
        type: '/problems/idempotency-key-reused',
        title: 'The Idempotency-Key was reused with a different request.',
      };
    case 'TOO_MANY_ACTIVE_JOBS':
      return {
        ...base,
        status: 429,
        type: '/problems/too-many-active-jobs',
        title: 'Too many active jobs.',
      };
    case 'TOO_MANY_UPLOADS':
      return {
        ...base,
        status: 429,
        type: '/problems/too-many-uploads',
        title: 'Too many streamed creates in progress.',
        headers: {
          'retry-after': String((err as DomainError & { retryAfterSeconds: number }).retryAfterSeconds),
        },
      };
    case 'TOO_MANY_STREAMS':
      return {
        ...base,
        status: 429,
        type: '/problems/too-many-streams',
        title: 'Too many open event streams.',
        headers: {
          'retry-after': String((err as DomainError & { retryAfterSeconds: number }).retryAfterSeconds),
        },
      };
    case 'TOO_MANY_EXPORTS':
      return {
        ...base,
        status: 429,
        type: '/problems/too-many-exports',
        title: 'Too many results exports in progress.',
        headers: {
          'retry-after': String((err as DomainError & { retryAfterSeconds: number }).retryAfterSeconds),
        },
      };
    case 'REQUEST_TIMEOUT':
      return {
        ...base,
        status: 408,
        type: 'about:blank',
        title: reasonPhrase(408),
        // The rest of the body may still come; the connection is not worth keeping for it.
        headers: { connection: 'close' },
      };
    case 'RATE_LIMITED':
      return {
        ...base,
        status: 429,
        type: 'about:blank',
        title: reasonPhrase(429),
        headers: { 'retry-after': String((err as RateLimitedError).retryAfterSeconds) },
      };
    case 'SERVICE_UNAVAILABLE': {
      const retryAfter = (err as DomainError & { retryAfterSeconds: number }).retryAfterSeconds;
      return {
        ...base,
        status: 503,
        type: 'about:blank',
        title: reasonPhrase(503),
        headers: { 'retry-after': String(retryAfter) },
      };
    }
    default: {
      const unreachable: never = code;
      throw new Error(`unmapped domain error code ${String(unreachable)}`);
    }
  }
}

/** Framework and transport errors: plain HTTP problems (`about:blank`). */
export function mapHttpException(err: HttpException): ProblemMapping {
  const status = err.getStatus();
  if (status >= 500) {
    return {
      status,
      type: 'about:blank',
      title: reasonPhrase(status),
      detail: 'The server could not handle the request.',
      unexpected: true,
    };
  }
  return {
    status,
    type: 'about:blank',
    title: reasonPhrase(status),
    detail: clientDetail(status, err),
  };
}

function clientDetail(status: number, err: HttpException): string {
  switch (status) {
    case 404:
      return 'No resource exists at this path.';
    case 405:
      return 'This method is not allowed on this resource.';
    case 413:
      return 'The request body is larger than this server accepts.';
    case 415:
      return /content-encoding/i.test(err.message)
        ? err.message
        : 'The request body has a media type this endpoint does not accept.';
    case 400:
      return /json/i.test(err.message)
        ? 'The request body is not valid JSON.'
        : (firstMessage(err) ?? 'The request is not valid.');
    default:
      return firstMessage(err) ?? reasonPhrase(status);
  }
}

function firstMessage(err: HttpException): string | undefined {
  const response = err.getResponse();
  if (typeof response === 'string') return response;
  const message = (response as { message?: unknown }).message;
  if (typeof message === 'string') return message;
  if (Array.isArray(message) && typeof message[0] === 'string') return message[0];
  return undefined;
}

/** Anything else: a lost database is a 503; the rest is a bug, a 500. */
export function mapUnknownError(err: unknown): ProblemMapping {
  if (isDatabaseUnavailable(err)) {
    return {
      status: 503,
      type: 'about:blank',
      title: reasonPhrase(503),
      detail: 'The database is unavailable. Retry later.',
      headers: { 'retry-after': '5' },
    };
  }
  return {
    status: 500,
    type: 'about:blank',
    title: reasonPhrase(500),
    detail: 'The server encountered an unexpected error.',
    unexpected: true,
  };
}

export function buildProblem(
  mapping: ProblemMapping,
  /** The request path; undefined only when the request line could not be read (RFC 9457 makes it optional). */
  instance: string | undefined,
  requestId: string,
): ProblemDetails {
  const problem: ProblemDetails = {
    type: mapping.type,
    title: mapping.title,
    status: mapping.status,
    detail: mapping.detail,
    ...(instance === undefined ? {} : { instance }),
    error: mapping.detail,
    requestId,
  };
  if (mapping.details) problem.details = mapping.details;
  for (const [key, value] of Object.entries(mapping.extensions ?? {})) {
    if (!(key in problem)) problem[key] = value;
  }
  return problem;
}
