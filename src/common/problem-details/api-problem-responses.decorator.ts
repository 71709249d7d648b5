import { applyDecorators } from '@nestjs/common';
import { ApiExtraModels, ApiResponse, getSchemaPath, type HeadersObject } from '@nestjs/swagger';
import { reasonPhrase } from './problem-details';
import { ProblemDetailsDto } from './problem-details.dto';

const DEFAULT_DESCRIPTIONS: Record<number, string> = {
  400: 'The request is not valid (see `details`).',
  401: 'Authentication is required or the supplied token is invalid.',
  403: 'The token lacks the scope this operation needs.',
  404: 'The requested resource was not found.',
  409: 'The resource is not in a state that allows this operation.',
  413: 'The request body is larger than the server accepts.',
  415: 'The request body has an unsupported media type.',
  422: 'The Idempotency-Key was already used with a different body.',
  429: 'Too many requests from this caller; retry after `Retry-After` seconds.',
  500: 'Internal server error',
  503: 'The database, or the key server that verifies tokens, is unavailable; retry after `Retry-After` seconds.',
};

/** Headers the filter sends with some problems (see mapDomainError). */
const HEADERS: Record<number, HeadersObject> = {
  401: {
    'WWW-Authenticate': {
      description: 'The Bearer challenge (RFC 6750).',
      schema: { type: 'string', example: 'Bearer realm="bulk-jobs"' },
    },
  },
  403: {
    'WWW-Authenticate': {
      description: 'The Bearer challenge naming the missing scope (RFC 6750).',
      schema: { type: 'string', example: 'Bearer realm="bulk-jobs", error="insufficient_scope"' },
    },
  },
  429: {
    'Retry-After': {
      description: 'Seconds to wait before retrying.',
      schema: { type: 'integer', example: 30 },
    },
  },
  503: {
    'Retry-After': {
      description: 'Seconds to wait before retrying.',
      schema: { type: 'integer', example: 5 },
    },
  },
};

/**
 * Documents problem+json responses for the given statuses, plus those any
 * authenticated call can give: 429 (rate limit), 500 and 503.
 */
export function ApiProblemResponses(...entries: (number | [number, string])[]) {
  return ApiExactProblemResponses(...entries, 429, 500, 503);
}

/** Documents problem+json responses for exactly the given statuses (the first entry for a status wins). */
export function ApiExactProblemResponses(...entries: (number | [number, string])[]) {
  const all = new Map<number, string>();
  for (const e of entries) {
    const [status, description] = Array.isArray(e) ? e : [e, DEFAULT_DESCRIPTIONS[e] ?? reasonPhrase(e)];
    if (!all.has(status)) all.set(status, description);
  }
  return applyDecorators(
    ApiExtraModels(ProblemDetailsDto),
    ...[...all].map(([status, description]) =>
      ApiResponse({
        status,
        description,
        ...(HEADERS[status] ? { headers: HEADERS[status] } : {}),
        content: { 'application/problem+json': { schema: { $ref: getSchemaPath(ProblemDetailsDto) } } },
      }),
    ),
  );
}
