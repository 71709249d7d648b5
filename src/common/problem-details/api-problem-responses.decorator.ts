import {
  applyDecorators,
  HttpException,
  PayloadTooLargeException,
  UnsupportedMediaTypeException,
} from '@nestjs/common';
import {
  ApiExtraModels,
  ApiResponse,
  getSchemaPath,
  type HeadersObject,
  type OpenAPIObject,
  type SchemaObject,
} from '@nestjs/swagger';
import { DomainError, ForbiddenError, RateLimitedError, UnauthenticatedError } from './domain-error';
import {
  buildProblem,
  mapDomainError,
  mapHttpException,
  mapUnknownError,
  PROBLEM_CONTENT_TYPE,
  type ProblemDetails,
  type ProblemMapping,
} from './problem-details';
import { ProblemDetailsDto } from './problem-details.dto';

/** What an example problem is made from: what the service throws, mapped by the filter's own functions. */
type ProblemSource = DomainError | HttpException | ProblemMapping;

/** The request id of every example problem. */
const SAMPLE_REQUEST_ID = '5f0c2b1e-7d3a-4c8e-9b6f-2a1d0e9c8b7a';

/** Stands for the operation's path in an example until documentProblemExamples() writes it in. */
const OPERATION_PATH = '{operation path}';

/** The value an example shows for a path parameter that a validation error refuses. */
const REFUSED_PATH_VALUE = 'not-a-uuid';

/** The problem a client gets for `source`, as the filter would answer it (without its `instance`). */
function problemExample(source: ProblemSource): ProblemDetails {
  const mapping =
    source instanceof DomainError
      ? mapDomainError(source)
      : source instanceof HttpException
        ? mapHttpException(source)
        : source;
  return buildProblem(mapping, OPERATION_PATH, SAMPLE_REQUEST_ID);
}

/** One documented problem response: its status, what it means, and the problems a client gets with it. */
export interface ProblemResponse {
  status: number;
  description: string;
  /** Each problem of this status by name, with a one-line summary; the first is shown first. */
  examples: Record<string, { summary: string; value: ProblemDetails }>;
  /** The extension members (RFC 9457 §3.2) these problems carry, as an object schema. */
  extensions?: SchemaObject;
  headers?: HeadersObject;
}

/**
 * A problem response whose examples are made from what the service throws. All of them must have the
 * response's status: an example of another status would show a client a problem this response never is.
 */
export function problemResponse(
  description: string,
  examples: Record<string, [summary: string, source: ProblemSource]>,
  options: { extensions?: SchemaObject; headers?: HeadersObject } = {},
): ProblemResponse {
  const values = Object.fromEntries(
    Object.entries(examples).map(([name, [summary, source]]) => [
      name,
      { summary, value: problemExample(source) },
    ]),
  );
  const statuses = new Set(Object.values(values).map((e) => e.value.status));
  if (statuses.size !== 1)
    throw new Error(`examples of one response with statuses ${[...statuses].join(', ')}`);
  return { status: [...statuses][0], description, examples: values, ...options };
}

const retryAfter = (seconds: number): HeadersObject => ({
  'Retry-After': {
    description: 'Seconds to wait before retrying.',
    schema: { type: 'integer', example: seconds },
  },
});

/** The database's driver error when the server is not there, as the filter classifies it. */
const connectionRefused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
  code: 'ECONNREFUSED',
});

/** The 403 of an operation that needs `scope`. */
export const forbidden = (scope: string): ProblemResponse =>
  problemResponse(
    'The token lacks the scope this operation needs (`required_scope` names it).',
    { insufficientScope: ['The token lacks the scope', new ForbiddenError(scope)] },
    {
      extensions: {
        type: 'object',
        required: ['required_scope'],
        properties: {
          required_scope: { type: 'string', description: 'The scope the token lacks.', example: scope },
        },
      },
      headers: {
        'WWW-Authenticate': {
          description: 'The Bearer challenge naming the missing scope (RFC 6750).',
          schema: { type: 'string', example: 'Bearer realm="bulk-jobs", error="insufficient_scope"' },
        },
      },
    },
  );

/** A Content-Encoding other than identity, refused on every route before the handler runs. */
const CONTENT_ENCODING_REFUSED = new UnsupportedMediaTypeException(
  'Content-Encoding is not supported: send the request body uncompressed (identity).',
);
const ACCEPT_ENCODING: HeadersObject = {
  'Accept-Encoding': {
    description: 'Sent when a Content-Encoding was refused: the only one accepted.',
    schema: { type: 'string', example: 'identity' },
  },
};

/** The problem responses that need nothing from the operation, by status. */
const GENERIC: Record<number, () => ProblemResponse> = {
  401: () =>
    problemResponse(
      'Authentication is required or the supplied token is invalid.',
      {
        missingToken: ['No bearer token', new UnauthenticatedError()],
      },
      {
        headers: {
          'WWW-Authenticate': {
            description: 'The Bearer challenge (RFC 6750).',
            schema: { type: 'string', example: 'Bearer realm="bulk-jobs"' },
          },
        },
      },
    ),
  413: () =>
    problemResponse('The request body is larger than the server accepts.', {
      tooLarge: ['The body is over BODY_LIMIT_BYTES', new PayloadTooLargeException()],
    }),
  415: () =>
    problemResponse(
      'The request has a Content-Encoding other than identity (see `Accept-Encoding`).',
      { contentEncoding: ['A compressed request', CONTENT_ENCODING_REFUSED] },
      { headers: ACCEPT_ENCODING },
    ),
  429: () =>
    problemResponse(
      'Too many requests from this caller; retry after `Retry-After` seconds.',
      { rateLimited: ['Over the rate limit', new RateLimitedError(6000, 12)] },
      { headers: retryAfter(12) },
    ),
  500: () =>
    problemResponse('Internal server error', {
      unexpected: ['A bug', mapUnknownError(new Error('unexpected'))],
    }),
  503: () =>
    problemResponse(
      'The database, or the key server that verifies tokens, is unavailable; retry after `Retry-After` seconds.',
      {
        databaseUnavailable: ['The database is unavailable', mapUnknownError(connectionRefused)],
      },
      { headers: retryAfter(5) },
    ),
};

/** The 429 of a route that needs no token: limited per client address (RATE_LIMIT_PUBLIC_PER_MINUTE). */
export const PUBLIC_RATE_LIMITED = problemResponse(
  'Too many requests from this client address to the routes that need no token ' +
    '(RATE_LIMIT_PUBLIC_PER_MINUTE); retry after `Retry-After` seconds.',
  { rateLimited: ['Over the per-address rate limit', new RateLimitedError(600, 7)] },
  { headers: retryAfter(7) },
);

/** The 415 of an operation that reads a body: a media type it does not take, or a Content-Encoding. */
export const UNSUPPORTED_BODY = problemResponse(
  'The request body has a media type this operation does not accept, or a Content-Encoding other than identity.',
  {
    mediaType: ['A media type other than JSON or NDJSON', new UnsupportedMediaTypeException()],
    contentEncoding: ['A compressed body', CONTENT_ENCODING_REFUSED],
  },
  { headers: ACCEPT_ENCODING },
);

/** Replaces the description of a response (the seed's words where the operation has its own). */
export const describedAs = (response: ProblemResponse, description: string): ProblemResponse => ({
  ...response,
  description,
});

type ProblemEntry = number | ProblemResponse;

/**
 * Documents problem+json responses for the given entries, plus those any authenticated call can
 * give: 415 (a Content-Encoding), 429 (rate limit), 500 and 503.
 */
export function ApiProblemResponses(...entries: ProblemEntry[]) {
  return ApiExactProblemResponses(...entries, 415, 429, 500, 503);
}

/**
 * Documents problem+json responses for exactly the given entries (the first one for a status wins).
 * A status alone stands for its generic problem; the others give their own.
 */
export function ApiExactProblemResponses(...entries: ProblemEntry[]) {
  const all = new Map<number, ProblemResponse>();
  for (const entry of entries) {
    if (typeof entry === 'number' && !GENERIC[entry]) {
      throw new Error(`no generic problem for ${entry}: pass its problemResponse()`);
    }
    const response = typeof entry === 'number' ? GENERIC[entry]() : entry;
    if (!all.has(response.status)) all.set(response.status, response);
  }
  return applyDecorators(
    ApiExtraModels(ProblemDetailsDto),
    ...[...all.values()].map((r) => {
      const problem = { $ref: getSchemaPath(ProblemDetailsDto) };
      const examples = Object.entries(r.examples);
      return ApiResponse({
        status: r.status,
        description: r.description,
        ...(r.headers ? { headers: r.headers } : {}),
        content: {
          [PROBLEM_CONTENT_TYPE]: {
            schema: r.extensions ? { allOf: [problem, r.extensions] } : problem,
            ...(examples.length === 1
              ? { example: structuredClone(examples[0][1].value) }
              : { examples: structuredClone(r.examples) }),
          },
        },
      });
    }),
  );
}

interface ParameterLike {
  name: string;
  in: string;
  example?: unknown;
  schema?: { example?: unknown };
}

/**
 * Writes each problem example's `instance`: the operation's path with its parameters filled in from
 * their examples. A validation error that names a path parameter in `details` was caused by that
 * parameter, so its example shows a value the parameter refuses.
 */
export function documentProblemExamples(document: OpenAPIObject): void {
  for (const [path, item] of Object.entries(document.paths)) {
    for (const operation of Object.values(item as Record<string, unknown>)) {
      const op = operation as { parameters?: ParameterLike[]; responses?: Record<string, unknown> };
      if (!op?.responses) continue;
      const params = (op.parameters ?? []).filter((p) => p.in === 'path');
      const instanceFor = (problem: ProblemDetails) =>
        path.replace(/\{(\w+)\}/g, (_, name: string) => {
          if (problem.details && name in problem.details) return REFUSED_PATH_VALUE;
          const param = params.find((p) => p.name === name);
          const value = param?.example ?? param?.schema?.example;
          if (value === undefined) throw new Error(`path parameter ${name} of ${path} has no example`);
          return encodeURIComponent(typeof value === 'string' ? value : JSON.stringify(value));
        });
      for (const response of Object.values(op.responses)) {
        const media = (response as { content?: Record<string, { example?: unknown; examples?: unknown }> })
          .content?.[PROBLEM_CONTENT_TYPE];
        if (!media) continue;
        const values = [
          media.example,
          ...Object.values((media.examples ?? {}) as Record<string, { value: unknown }>).map((e) => e.value),
        ];
        for (const value of values) {
          const problem = value as ProblemDetails | undefined;
          if (problem?.instance === OPERATION_PATH) problem.instance = instanceFor(problem);
        }
      }
    }
  }
}
