import { BadRequestException } from '@nestjs/common';
import type { OpenAPIObject, SchemaObject } from '@nestjs/swagger';
import { SCOPES } from '../auth/scopes';
import {
  forbidden,
  problemResponse,
  type ProblemResponse,
} from '../common/problem-details/api-problem-responses.decorator';
import {
  DomainError,
  RateLimitedError,
  RequestTimeoutError,
  ValidationFailedError,
} from '../common/problem-details/domain-error';
import { ParseUuidParamPipe } from '../common/uuid-param.pipe';
import { isTerminal, ITEM_STATUSES, JOB_STATUSES, TERMINAL_JOB_STATUSES } from '../jobs/job-status';
import {
  BulkJobNotCancellableError,
  BulkJobNotDeletableError,
  BulkJobNotDeletedError,
  BulkJobNotFoundError,
  BulkJobNotPausableError,
  BulkJobNotResumableError,
  BulkJobNotRetryableError,
  IdempotencyKeyReusedError,
  NothingToRetryError,
  TooManyActiveJobsError,
  TooManyExportsError,
  TooManyStreamsError,
  TooManyUploadsError,
} from './bulk-jobs.errors';

const NDJSON_EXAMPLE =
  '{"action":"noop","params":{}}\n"user-1"\n"user-2"\n{"id":"user-3","data":{"vip":true}}\n';

/**
 * Adds the streamed (application/x-ndjson) form of the create request, which a
 * decorator cannot express: its body is lines, not one JSON schema.
 */
export function documentStreamingCreate(document: OpenAPIObject): void {
  const operation = document.paths['/api/actions/bulk/jobs']?.post;
  const body = operation?.requestBody;
  if (!body || !('content' in body)) return;
  body.content['application/x-ndjson'] = {
    schema: {
      type: 'string',
      description:
        'Newline-delimited JSON. Line 1: the job spec { "action", "params"?, "options"? }. Every further line: one ' +
        'target, a JSON string id (1–512 characters) or { "id", "data"? }. The targets are streamed into the ' +
        'database in one transaction, up to BULK_JOBS_MAX_TARGETS; BODY_LIMIT_BYTES does not apply. The params are ' +
        "at most BULK_JOBS_MAX_PARAMS_BYTES and a target's data at most BULK_JOBS_MAX_TARGET_DATA_BYTES, as " +
        'bytes of JSON, as in a JSON body. A bad line is a 400 problem whose `details` name the line (`line N`, or ' +
        "the spec's members for line 1) and whose `line` member is its number, and nothing is stored. A body that " +
        'stops arriving for BODY_IDLE_TIMEOUT_MS is a 408, and nothing is stored. An owner may stream ' +
        'BULK_JOBS_MAX_UPLOADS_PER_OWNER creates at once, and a server BULK_JOBS_MAX_UPLOADS; past either, a 429 ' +
        '(`/problems/too-many-uploads`).',
    },
    example: NDJSON_EXAMPLE,
  };
}

export const EVENTS_DESCRIPTION =
  'Server-Sent Events (text/event-stream) with the live progress of one job. The job is looked up as GET ' +
  '/jobs/{id} does (same scope and owner rules) before the stream starts, so an unknown job is a 404 problem, ' +
  'not a stream. Events: `progress` with the job (the GET representation) when the stream opens and whenever ' +
  'the job changes, at most one per SSE_PROGRESS_INTERVAL_MS (250 ms by default); `end` with the job once it ' +
  'is completed, failed or cancelled, after which the server closes the stream (an already finished job gets ' +
  'only `end`); `problem` with a 404 problem if the job is purged meanwhile. Each event has an `id` that names ' +
  'the job state: a client reconnecting with Last-Event-ID gets the next change rather than a repeat. A ' +
  '`: heartbeat` comment comes every SSE_HEARTBEAT_MS (15 s by default). When the bearer token expires, the ' +
  'stream ends with a `problem` event holding a 401 problem: reconnect with a new token. EventSource reconnects ' +
  'whenever a stream closes, so close it on `end` and `problem`. An owner may have SSE_MAX_STREAMS_PER_OWNER ' +
  'streams open (10 by default) and a server SSE_MAX_STREAMS (1,000); past either, the request is a 429 ' +
  '(`/problems/too-many-streams`, with Retry-After) before any stream starts.';

export const EVENTS_EXAMPLE =
  'id: 4hD2kq0W3mYbQv1x\nevent: progress\ndata: {"id":"8d7c0d1e-5b1f-4c55-9d8e-1f2a3b4c5d6e","status":"running",' +
  '"total_items":1000,"succeeded_items":420,"failed_items":3,"skipped_items":0,"progress":0.423,"…":"…"}\n\n' +
  ': heartbeat\n\n' +
  'id: Zr9sT1uV2wX3yA4b\nevent: end\ndata: {"id":"8d7c0d1e-5b1f-4c55-9d8e-1f2a3b4c5d6e","status":"completed",' +
  '"total_items":1000,"succeeded_items":997,"failed_items":3,"skipped_items":0,"progress":1,"…":"…"}\n\n';

/** The job every example shows: its id is in the example paths, bodies and problems alike. */
export const SAMPLE_JOB_ID = '8d7c6f9e-1a2b-4c3d-9e8f-0a1b2c3d4e5f';

const RUNNING_JOB = {
  id: SAMPLE_JOB_ID,
  action: 'http',
  params: {
    url: 'https://api.example.com/users/{id}/notify',
    headers: { Authorization: { $secret: 'crm-token' }, 'X-Api-Key': '[REDACTED]' },
  },
  options: { max_attempts: 3, notify: { url: 'https://hooks.example.com/bulk-jobs' } },
  status: 'running',
  labels: { team: 'billing' },
  total_items: 1000,
  succeeded_items: 420,
  failed_items: 3,
  skipped_items: 0,
  progress: 0.423,
  owner: 'alice',
  error: null,
  deleted_at: null,
  purge_at: null,
  retry_of: null,
  created_at: '2026-11-29T10:15:00.000Z',
  started_at: '2026-11-29T10:15:00.412Z',
  finished_at: null,
  updated_at: '2026-11-29T10:15:42.108Z',
  notification: { status: 'waiting', attempts: 0, last_error: null, delivered_at: null },
};

/** Example bodies of the successful responses, by operation. */
export const JOB_EXAMPLES = {
  created: {
    ...RUNNING_JOB,
    status: 'pending',
    succeeded_items: 0,
    failed_items: 0,
    progress: 0,
    started_at: null,
    updated_at: RUNNING_JOB.created_at,
  },
  running: RUNNING_JOB,
  cancelled: {
    ...RUNNING_JOB,
    status: 'cancelled',
    skipped_items: 577,
    progress: 1,
    finished_at: '2026-11-29T10:15:43.020Z',
    updated_at: '2026-11-29T10:15:43.020Z',
    notification: {
      status: 'delivered',
      attempts: 1,
      last_error: null,
      delivered_at: '2026-11-29T10:15:43.391Z',
    },
  },
  paused: { ...RUNNING_JOB, status: 'paused', updated_at: '2026-11-29T10:15:43.020Z' },
  resumed: { ...RUNNING_JOB, updated_at: '2026-11-29T10:21:07.734Z' },
  restored: {
    ...RUNNING_JOB,
    status: 'completed',
    succeeded_items: 997,
    progress: 1,
    finished_at: '2026-11-29T10:17:05.331Z',
    updated_at: '2026-12-01T08:02:11.540Z',
    notification: { status: 'pending', attempts: 2, last_error: 'HTTP 503', delivered_at: null },
  },
  counts: {
    by_status: { pending: 1, running: 2, paused: 0, cancelling: 0, completed: 40, failed: 3, cancelled: 1 },
    total: 47,
  },
  list: {
    items: [RUNNING_JOB],
    next_cursor:
      'eyJ2IjoyLCJrIjoiam9icyIsInAiOlsiMjAyNi0xMS0yOVQxMDoxNTowMC4wMDBaIiwiOGQ3YzZmOWUtMWEyYi00YzNkLTllOGYtMGExYjJjM2Q0ZTVmIl0sInMiOiJZN2lDaG1CVkhSejlzaEJNUkFRNWdMNTFWMUhGVGQyZC1SUDVCRnl6NFQ0In0',
  },
  items: {
    items: [
      {
        seq: 0,
        target_id: 'user-1',
        data: null,
        status: 'succeeded',
        attempts: 1,
        last_error: null,
        result: { status: 204 },
        started_at: '2026-11-29T10:15:00.415Z',
        finished_at: '2026-11-29T10:15:00.502Z',
      },
      {
        seq: 1,
        target_id: 'user-2',
        data: { vip: true },
        status: 'failed',
        attempts: 3,
        last_error: { code: 'HTTP_404', message: 'Upstream answered 404' },
        result: null,
        started_at: '2026-11-29T10:15:03.871Z',
        finished_at: '2026-11-29T10:15:03.944Z',
      },
    ],
    next_cursor: null,
  },
  deleted: { job_id: SAMPLE_JOB_ID, status: 'completed', success: true },
  retried: {
    ...RUNNING_JOB,
    id: '3f0b9a4c-6d2e-4f81-a7c5-9b1e2d3c4f50',
    status: 'pending',
    total_items: 3,
    succeeded_items: 0,
    failed_items: 0,
    progress: 0,
    retry_of: SAMPLE_JOB_ID,
    created_at: '2026-11-29T11:02:00.000Z',
    started_at: null,
    updated_at: '2026-11-29T11:02:00.000Z',
  },
};

const jobStatusMember = (statuses: readonly string[], description: string): SchemaObject => ({
  type: 'object',
  required: ['job_status'],
  properties: { job_status: { type: 'string', enum: [...statuses], description } },
});

/** The 400 of an operation on one job, when `{id}` is not a UUID: the pipe's own refusal. */
export const INVALID_JOB_ID = problemResponse(
  'The id is not a UUID (`/problems/validation-error`, with `details.id`).',
  { invalidId: ['The id is not a UUID', thrownBy(() => new ParseUuidParamPipe().transform('not-a-uuid'))] },
);

const LIMIT_REFUSED = new ValidationFailedError({ limit: 'limit must be a positive integer' });
const CURSOR_REFUSED = new ValidationFailedError({
  cursor: 'is not a cursor issued for this listing and these filters',
});

export const INVALID_LIST_QUERY = problemResponse(
  'A query parameter is not valid (`/problems/validation-error`, with `details` naming it): a limit that is ' +
    'not a positive integer, an unknown status, a `label` that is not `key:value`, or a cursor this server ' +
    'did not issue for these filters ' +
    '(cursors are signed: an edited, hand-made or truncated one is refused).',
  {
    invalidLimit: ['limit is not a positive integer', LIMIT_REFUSED],
    invalidCursor: ['A cursor this server did not issue', CURSOR_REFUSED],
  },
);

/** The 403 of a listing with the admins' `owner` filter: no read scope, or the filter without admin. */
export function forbiddenOrOwnerFilter(): ProblemResponse {
  const read = forbidden(SCOPES.read);
  const admin = forbidden(SCOPES.admin);
  return {
    ...read,
    description:
      'The token lacks bulk-jobs:read, or the caller used the `owner` filter without bulk-jobs:admin ' +
      '(`required_scope` names the scope).',
    examples: {
      insufficientScope: read.examples.insufficientScope,
      ownerFilter: {
        ...admin.examples.insufficientScope,
        summary: 'The owner filter without bulk-jobs:admin',
      },
    },
  };
}

export const INVALID_COUNTS_QUERY = problemResponse(
  'The `owner` filter is empty or too long (`/problems/validation-error`, with `details.owner`).',
  {
    invalidOwner: [
      'owner is empty',
      new ValidationFailedError({ owner: 'owner must be longer than or equal to 1 characters' }),
    ],
  },
);

export const INVALID_ITEMS_QUERY = problemResponse(
  'The id is not a UUID, or a query parameter is not valid (`/problems/validation-error`, with `details` ' +
    'naming it; a cursor this server did not issue for this job and filter included).',
  {
    invalidId: ['The id is not a UUID', thrownBy(() => new ParseUuidParamPipe().transform('not-a-uuid'))],
    invalidLimit: ['limit is not a positive integer', LIMIT_REFUSED],
    invalidCursor: ['A cursor this server did not issue', CURSOR_REFUSED],
  },
);

export const INVALID_EXPORT_QUERY = problemResponse(
  'The id is not a UUID, or `status` names a status items do not have (`/problems/validation-error`, with ' +
    '`details` naming it).',
  {
    invalidId: ['The id is not a UUID', thrownBy(() => new ParseUuidParamPipe().transform('not-a-uuid'))],
    invalidStatus: [
      'An unknown status',
      new ValidationFailedError({
        status: `status must be one or more of ${ITEM_STATUSES.join(', ')}, separated by commas`,
      }),
    ],
  },
);

export const EXPORT_DESCRIPTION =
  'Every item of the job in target order (only those of `status`, when given), from one snapshot: safe while the job runs (it shows what is there now), and allowed on a deleted job that is still retained. ' +
  'Streamed as it is read, never held whole, so its size has no limit. NDJSON (`application/x-ndjson`, the default): one JSON object a line. ' +
  'CSV (`Accept: text/csv`): RFC 4180, CRLF line ends, a header row, `data` and `result` as JSON text in one column each; an empty field is NULL, `""` an empty string. ' +
  'Columns and members: target_id, data, status, attempts, result, error_code, error_message, finished_at (RFC 3339, UTC). ' +
  '`Content-Disposition` names a file (`bulk-job-<id>-results[-<statuses>].ndjson|csv`). A failure once the first bytes are sent ends the connection without the last line. ' +
  'An export holds a database connection for as long as its client reads, so an owner may have BULK_JOBS_MAX_EXPORTS_PER_OWNER exports in progress (2 by default) and a server BULK_JOBS_MAX_EXPORTS (a quarter of its pool); ' +
  'past either, the request is a 429 (`/problems/too-many-exports`, with Retry-After) before the job is looked up.';

export const EXPORT_NDJSON_EXAMPLE =
  '{"target_id":"u1","data":null,"status":"succeeded","attempts":1,"result":{"status":200},"error_code":null,"error_message":null,"finished_at":"2026-11-29T10:15:03.944Z"}\n' +
  '{"target_id":"u2","data":{"vip":true},"status":"failed","attempts":3,"result":null,"error_code":"HTTP_404","error_message":"Upstream answered 404","finished_at":"2026-11-29T10:15:04.101Z"}\n';

export const EXPORT_CSV_EXAMPLE =
  'target_id,data,status,attempts,result,error_code,error_message,finished_at\r\n' +
  'u1,,succeeded,1,"{""status"": 200}",,,2026-11-29T10:15:03.944Z\r\n' +
  'u2,"{""vip"": true}",failed,3,,HTTP_404,Upstream answered 404,2026-11-29T10:15:04.101Z\r\n';

export const INVALID_CREATE = problemResponse(
  'The body is not valid JSON (`about:blank`), or a member is not valid (`/problems/validation-error`, with ' +
    '`details` naming it; for NDJSON, `line N`): among others, params larger than BULK_JOBS_MAX_PARAMS_BYTES, ' +
    "a target's data larger than BULK_JOBS_MAX_TARGET_DATA_BYTES, or a header of the `http` action that refers " +
    'to a secret this server does not have.',
  {
    invalidMember: [
      'A member is not valid',
      new ValidationFailedError({ targets: 'must contain at least one target' }),
    ],
    paramsTooLarge: [
      'The params are over BULK_JOBS_MAX_PARAMS_BYTES',
      new ValidationFailedError(
        { params: 'are 4194370 bytes as JSON, more than BULK_JOBS_MAX_PARAMS_BYTES (65536)' },
        'The params are larger than this service accepts: at most 65536 bytes as JSON.',
      ),
    ],
    dataTooLarge: [
      "A target's data is over BULK_JOBS_MAX_TARGET_DATA_BYTES",
      new ValidationFailedError({
        targets: 'targets[7] data is 20480 bytes as JSON, more than BULK_JOBS_MAX_TARGET_DATA_BYTES (16384)',
      }),
    ],
    unknownSecret: [
      'A header refers to a secret the server does not have',
      new ValidationFailedError({
        'params.headers.Authorization':
          'refers to the secret "crm-tokn", which this server does not have (ACTIONS_HTTP_SECRETS)',
      }),
    ],
    malformedJson: ['The body is not JSON', new BadRequestException('Unexpected end of JSON input')],
  },
);

export const JOB_NOT_FOUND = problemResponse(
  'The job is unknown, not yours, or purged (`/problems/job-not-found`).',
  { notFound: ['No such job for this caller', new BulkJobNotFoundError(SAMPLE_JOB_ID)] },
);

export const JOB_NOT_DELETABLE = problemResponse(
  'The job is pending, running, paused or cancelling (`/problems/job-not-deletable`, with `job_status`).',
  { notDeletable: ['The job is still running', new BulkJobNotDeletableError(SAMPLE_JOB_ID, 'running')] },
  {
    extensions: jobStatusMember(
      JOB_STATUSES.filter((s) => !isTerminal(s)),
      'The status that keeps the job from being deleted.',
    ),
  },
);

export const JOB_NOT_PAUSABLE = problemResponse(
  'The job is cancelling, completed, failed or cancelled (`/problems/job-not-pausable`, with `job_status`).',
  { notPausable: ['The job has finished', new BulkJobNotPausableError(SAMPLE_JOB_ID, 'completed')] },
  {
    extensions: jobStatusMember(
      JOB_STATUSES.filter((s) => !['pending', 'running', 'paused'].includes(s)),
      'The status that keeps the job from being paused.',
    ),
  },
);

export const JOB_NOT_RESUMABLE = problemResponse(
  'The job is not paused (`/problems/job-not-resumable`, with `job_status`).',
  { notResumable: ['The job is running', new BulkJobNotResumableError(SAMPLE_JOB_ID, 'running')] },
  {
    extensions: jobStatusMember(
      JOB_STATUSES.filter((s) => s !== 'paused'),
      'The status that keeps the job from being resumed.',
    ),
  },
);

export const JOB_NOT_CANCELLABLE = problemResponse(
  'The job is completed, failed or cancelled (`/problems/job-not-cancellable`, with `job_status`). A paused ' +
    'job can be cancelled.',
  { notCancellable: ['The job has finished', new BulkJobNotCancellableError(SAMPLE_JOB_ID, 'completed')] },
  {
    extensions: jobStatusMember(TERMINAL_JOB_STATUSES, 'The status that keeps the job from being cancelled.'),
  },
);

export const RETRY_REFUSED = problemResponse(
  'The job is not finished (`/problems/job-not-retryable`), or it has no failed items, nor skipped ones with ' +
    '`include_skipped` (`/problems/nothing-to-retry`); both with `job_status`.',
  {
    notRetryable: ['The job is still running', new BulkJobNotRetryableError(SAMPLE_JOB_ID, 'running')],
    nothingToRetry: ['Every item succeeded', new NothingToRetryError(SAMPLE_JOB_ID, 'completed', false)],
  },
  { extensions: jobStatusMember(JOB_STATUSES, "The job's status.") },
);

export const INVALID_PATCH = problemResponse(
  'The id is not a UUID, or the patch is not valid (`/problems/validation-error`, with `details` naming the ' +
    'member): a member other than `labels`, a bad key or value, or more than 16 labels after the merge.',
  {
    invalidId: ['The id is not a UUID', thrownBy(() => new ParseUuidParamPipe().transform('not-a-uuid'))],
    notPatchable: [
      'A member other than labels',
      new ValidationFailedError({ status: 'property status should not exist' }),
    ],
    tooManyLabels: [
      'More than 16 labels after the merge',
      new ValidationFailedError(
        { labels: 'would have more than 16 keys after the merge' },
        'A job has at most 16 labels.',
      ),
    ],
  },
);

export const INVALID_RETRY = problemResponse(
  'The id is not a UUID, the body is not valid (`/problems/validation-error`, with `details` naming the ' +
    'member), or the retry would have more than BULK_JOBS_MAX_TARGETS targets.',
  {
    invalidId: ['The id is not a UUID', thrownBy(() => new ParseUuidParamPipe().transform('not-a-uuid'))],
    invalidMember: [
      'include_skipped is not a boolean',
      new ValidationFailedError({ include_skipped: 'include_skipped must be a boolean value' }),
    ],
  },
);

export const JOB_NOT_DELETED = problemResponse('The job is not deleted (`/problems/job-not-deleted`).', {
  notDeleted: ['The job is not deleted', new BulkJobNotDeletedError(SAMPLE_JOB_ID)],
});

export const IDEMPOTENCY_KEY_REUSED = problemResponse(
  'The Idempotency-Key was already used with a different body (`/problems/idempotency-key-reused`).',
  { reused: ['Same key, another body', new IdempotencyKeyReusedError()] },
);

/** `per` of a concurrency problem: whose cap was reached. */
const PER_MEMBER: SchemaObject = {
  type: 'string',
  enum: ['owner', 'server'],
  description: "Whose cap was reached: the caller's own, or this server's (every caller's together).",
  example: 'owner',
};

export const CREATE_THROTTLED = problemResponse(
  'Too many requests from this caller (`about:blank`, with `Retry-After`); the owner already has ' +
    'BULK_JOBS_MAX_ACTIVE_PER_OWNER pending, running, paused or cancelling jobs (`/problems/too-many-active-jobs`, ' +
    'with `max_active_jobs`); or, for a streamed (NDJSON) create, the owner or the server already has its cap ' +
    'of streamed creates in progress (`/problems/too-many-uploads`, with `max_uploads`, `per` and `Retry-After`).',
  {
    tooManyActiveJobs: ['The owner has too many active jobs', new TooManyActiveJobsError(100)],
    tooManyUploads: [
      'The owner has too many streamed creates in progress',
      new TooManyUploadsError(2, 'owner'),
    ],
    rateLimited: ['Over the rate limit', new RateLimitedError(6000, 12)],
  },
  {
    extensions: {
      type: 'object',
      properties: {
        max_active_jobs: {
          type: 'integer',
          description: 'BULK_JOBS_MAX_ACTIVE_PER_OWNER (on `/problems/too-many-active-jobs`).',
          example: 100,
        },
        max_uploads: {
          type: 'integer',
          description:
            'BULK_JOBS_MAX_UPLOADS_PER_OWNER or BULK_JOBS_MAX_UPLOADS, as `per` says (on `/problems/too-many-uploads`).',
          example: 2,
        },
        per: PER_MEMBER,
      },
    },
    headers: {
      'Retry-After': {
        description: 'Seconds to wait before retrying (on the rate limit and `/problems/too-many-uploads`).',
        schema: { type: 'integer', example: 12 },
      },
    },
  },
);

export const BODY_TIMED_OUT = problemResponse(
  'The request body stopped arriving for BODY_IDLE_TIMEOUT_MS (`about:blank`); nothing was stored, and the ' +
    'server closes the connection after this answer.',
  { bodyIdle: ['The body stopped arriving', new RequestTimeoutError(30_000)] },
);

export const EVENTS_THROTTLED = problemResponse(
  'Too many requests from this caller (`about:blank`), or the owner or the server already has its cap of open ' +
    'event streams (`/problems/too-many-streams`, with `max_streams` and `per`); both with `Retry-After`.',
  {
    tooManyStreams: ['The owner has too many streams open', new TooManyStreamsError(10, 'owner')],
    rateLimited: ['Over the rate limit', new RateLimitedError(6000, 12)],
  },
  {
    extensions: {
      type: 'object',
      properties: {
        max_streams: {
          type: 'integer',
          description:
            'SSE_MAX_STREAMS_PER_OWNER or SSE_MAX_STREAMS, as `per` says (on `/problems/too-many-streams`).',
          example: 10,
        },
        per: PER_MEMBER,
      },
    },
    headers: {
      'Retry-After': {
        description: 'Seconds to wait before retrying.',
        schema: { type: 'integer', example: 5 },
      },
    },
  },
);

export const EXPORT_THROTTLED = problemResponse(
  'Too many requests from this caller (`about:blank`), or the owner or the server already has its cap of ' +
    'results exports in progress (`/problems/too-many-exports`, with `max_exports` and `per`); both with ' +
    '`Retry-After`.',
  {
    tooManyExports: ['The owner has too many exports in progress', new TooManyExportsError(2, 'owner')],
    serverFull: ['The server has too many exports in progress', new TooManyExportsError(2, 'server')],
    rateLimited: ['Over the rate limit', new RateLimitedError(6000, 12)],
  },
  {
    extensions: {
      type: 'object',
      properties: {
        max_exports: {
          type: 'integer',
          description:
            'BULK_JOBS_MAX_EXPORTS_PER_OWNER or BULK_JOBS_MAX_EXPORTS, as `per` says (on `/problems/too-many-exports`).',
          example: 2,
        },
        per: PER_MEMBER,
      },
    },
    headers: {
      'Retry-After': {
        description: 'Seconds to wait before retrying.',
        schema: { type: 'integer', example: 5 },
      },
    },
  },
);

/** The error `fn` throws: examples quote the service's own refusals rather than restating them. */
function thrownBy(fn: () => unknown): DomainError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DomainError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}
