/**
 * Every error the service raises on purpose has a code. The global filter maps
 * each code to an HTTP status and a problem type in one exhaustive switch.
 */
export type DomainErrorCode =
  | 'VALIDATION_FAILED'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'JOB_NOT_FOUND'
  | 'JOB_NOT_DELETABLE'
  | 'JOB_NOT_CANCELLABLE'
  | 'JOB_NOT_DELETED'
  | 'JOB_NOT_RETRYABLE'
  | 'NOTHING_TO_RETRY'
  | 'JOB_NOT_PAUSABLE'
  | 'JOB_NOT_RESUMABLE'
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'TOO_MANY_ACTIVE_JOBS'
  | 'TOO_MANY_UPLOADS'
  | 'TOO_MANY_STREAMS'
  | 'TOO_MANY_EXPORTS'
  | 'RATE_LIMITED'
  | 'REQUEST_TIMEOUT'
  | 'SERVICE_UNAVAILABLE';

export abstract class DomainError extends Error {
  abstract readonly code: DomainErrorCode;
  /** Extra members for the problem body (RFC 9457 extension members). */
  readonly extensions: Record<string, unknown> = {};

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad input. `details` maps each offending field to a message. */
export class ValidationFailedError extends DomainError {
  readonly code = 'VALIDATION_FAILED';
  constructor(
    readonly details: Record<string, string>,
    message = 'The request is not valid.',
  ) {
    super(message);
  }
}

export class UnauthenticatedError extends DomainError {
  readonly code = 'UNAUTHENTICATED';
  /** A token was sent but is not valid (RFC 6750 `invalid_token`), as opposed to no token at all. */
  readonly invalidToken: boolean = false;
  constructor(message = 'A valid bearer token is required.') {
    super(message);
  }
}

export class InvalidTokenError extends UnauthenticatedError {
  override readonly invalidToken = true;
}

export class ForbiddenError extends DomainError {
  readonly code = 'FORBIDDEN';
  constructor(readonly requiredScope: string) {
    super(`The token lacks the scope ${requiredScope}.`);
    this.extensions.required_scope = requiredScope;
  }
}

/** The caller sent more requests than its rate limit allows; it may retry after `retryAfterSeconds`. */
export class RateLimitedError extends DomainError {
  readonly code = 'RATE_LIMITED';
  constructor(
    readonly limit: number,
    readonly retryAfterSeconds: number,
  ) {
    super(`More than ${limit} requests in a minute. Retry after ${retryAfterSeconds} seconds.`);
  }
}

/**
 * The request body stopped arriving for longer than the server waits
 * (BODY_IDLE_TIMEOUT_MS). Answered when the client can still read it, then
 * the connection is closed: the rest of the body is not worth waiting for.
 */
export class RequestTimeoutError extends DomainError {
  readonly code = 'REQUEST_TIMEOUT';
  constructor(readonly idleMs: number) {
    super(`The request body stopped arriving for ${idleMs} ms; nothing was stored. Send it again.`);
  }
}

/** The database cannot be reached; the client should retry. */
export class ServiceUnavailableError extends DomainError {
  readonly code = 'SERVICE_UNAVAILABLE';
  constructor(
    readonly retryAfterSeconds = 5,
    message = 'The service is temporarily unavailable. Retry later.',
  ) {
    super(message);
  }
}
