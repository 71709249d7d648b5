import { ApiProperty } from '@nestjs/swagger';
import type { ApiPropertyOptions } from '@nestjs/swagger';
import { ITEM_STATUSES, JOB_STATUSES, type ItemStatus, type JobStatus } from '../../jobs/job-status';

export interface JobErrorDto {
  code: string;
  message: string;
}

/**
 * A job's or an item's error, or null. Written inline rather than as a reference: in OpenAPI 3.0
 * `nullable` only widens the `type` beside it, so a nullable `allOf: [$ref]` still refuses null.
 */
const nullableError = (description: string): ApiPropertyOptions => ({
  type: 'object',
  nullable: true,
  description,
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', example: 'ACTION_ERROR' },
    message: { type: 'string', example: 'Upstream answered 404' },
  },
  example: null,
});

export const NOTIFICATION_STATUSES = ['waiting', 'pending', 'delivered', 'failed'] as const;

export interface NotificationResponseDto {
  status: (typeof NOTIFICATION_STATUSES)[number];
  attempts: number;
  last_error: string | null;
  delivered_at: string | null;
}

export class BulkJobResponseDto {
  @ApiProperty({ format: 'uuid' })
  id: string;

  @ApiProperty({ example: 'noop' })
  action: string;

  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    description:
      'The params as given, but that the values of credential headers in `params.headers` (Authorization, ' +
      'Proxy-Authorization, Cookie, and names with key, token, secret, password, session, auth or credential in ' +
      'them) read "[REDACTED]"; a reference to a server-side secret (`{"$secret": "name"}`) is shown as it is.',
    example: {},
  })
  params: Record<string, unknown>;

  @ApiProperty({ type: 'object', additionalProperties: true, example: { max_attempts: 3 } })
  options: Record<string, unknown>;

  @ApiProperty({ enum: JOB_STATUSES, example: 'running' })
  status: JobStatus;

  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'string' },
    description: "The client's labels ({} when none).",
    example: { team: 'billing' },
  })
  labels: Record<string, string>;

  @ApiProperty({ type: 'integer', example: 1000 })
  total_items: number;

  @ApiProperty({ type: 'integer', example: 420 })
  succeeded_items: number;

  @ApiProperty({ type: 'integer', example: 3 })
  failed_items: number;

  @ApiProperty({ type: 'integer', example: 0 })
  skipped_items: number;

  @ApiProperty({
    description: 'Share of items finished (succeeded, failed or skipped), 0 to 1.',
    example: 0.423,
  })
  progress: number;

  @ApiProperty({ description: 'The `sub` of the token that created the job.', example: 'alice' })
  owner: string;

  @ApiProperty(nullableError('Why the job could not run at all; null when it could.'))
  error: JobErrorDto | null;

  @ApiProperty({ type: 'string', format: 'date-time', nullable: true })
  deleted_at: string | null;

  @ApiProperty({
    type: 'string',
    format: 'date-time',
    nullable: true,
    description: 'When a deleted job is purged for good.',
  })
  purge_at: string | null;

  @ApiProperty({
    type: 'string',
    format: 'uuid',
    nullable: true,
    description:
      'The job whose failed (and skipped) items this job retries (POST /jobs/{id}/retry); null for a job ' +
      'created from targets.',
    example: null,
  })
  retry_of: string | null;

  @ApiProperty({ type: 'string', format: 'date-time' })
  created_at: string;

  @ApiProperty({ type: 'string', format: 'date-time', nullable: true })
  started_at: string | null;

  @ApiProperty({ type: 'string', format: 'date-time', nullable: true })
  finished_at: string | null;

  @ApiProperty({ type: 'string', format: 'date-time' })
  updated_at: string;

  @ApiProperty({
    type: 'object',
    nullable: true,
    description:
      'Where the completion webhook stands, when the job asked for one (`options.notify`); null otherwise.',
    required: ['status', 'attempts', 'last_error', 'delivered_at'],
    properties: {
      status: {
        type: 'string',
        enum: [...NOTIFICATION_STATUSES],
        description:
          '`waiting`: the job has not ended; `pending`: its event is being delivered (or waits for a retry); ' +
          '`delivered`: the receiver answered 2xx; `failed`: given up (410, a URL no longer allowed, or retries over).',
      },
      attempts: { type: 'integer', description: 'Delivery attempts made so far.' },
      last_error: {
        type: 'string',
        nullable: true,
        description: 'Why the last attempt failed (e.g. `HTTP 500`, `ECONNREFUSED`); null once delivered.',
      },
      delivered_at: { type: 'string', format: 'date-time', nullable: true },
    },
    example: null,
  })
  notification: NotificationResponseDto | null;
}

export class BulkJobListResponseDto {
  @ApiProperty({ type: () => [BulkJobResponseDto] })
  items: BulkJobResponseDto[];

  @ApiProperty({
    type: 'string',
    nullable: true,
    description:
      'Pass as `cursor` for the next page; null on the last page. A page holds `limit` jobs, or fewer once ' +
      'their params pass BULK_JOBS_MAX_PAGE_BYTES (4 MiB by default; a page always holds one job): follow ' +
      '`next_cursor` rather than counting.',
  })
  next_cursor: string | null;
}

export class BulkJobItemResponseDto {
  @ApiProperty({ type: 'integer', description: "The target's position in the job, from 0.", example: 0 })
  seq: number;

  @ApiProperty({ example: 'user-42' })
  target_id: string;

  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true })
  data: Record<string, unknown> | null;

  @ApiProperty({ enum: ITEM_STATUSES, example: 'succeeded' })
  status: ItemStatus;

  @ApiProperty({
    type: 'integer',
    example: 1,
    description:
      "Attempts made on this item so far; all of them carried the item's one idempotency key (`<job id>:<seq>`).",
  })
  attempts: number;

  @ApiProperty(nullableError('The error of the latest attempt that failed; null if none failed.'))
  last_error: JobErrorDto | null;

  // Any JSON value: a combinator keeps the scanner from typing `unknown` as an object. null rides
  // on the object branch, since OpenAPI 3.0's `nullable` only applies beside a `type`.
  @ApiProperty({
    description:
      "The action's result (any JSON value), or null if it returned none. A result over 64 KiB as JSON is not " +
      'stored: the item fails with `RESULT_TOO_LARGE`.',
    anyOf: [
      { type: 'object', additionalProperties: true, nullable: true },
      { type: 'array', items: {} },
      { type: 'string' },
      { type: 'number' },
      { type: 'boolean' },
    ],
    example: null,
  })
  result: unknown;

  @ApiProperty({ type: 'string', format: 'date-time', nullable: true })
  started_at: string | null;

  @ApiProperty({ type: 'string', format: 'date-time', nullable: true })
  finished_at: string | null;
}

export class BulkJobItemListResponseDto {
  @ApiProperty({ type: () => [BulkJobItemResponseDto] })
  items: BulkJobItemResponseDto[];

  @ApiProperty({
    type: 'string',
    nullable: true,
    description:
      'Pass as `cursor` for the next page; null on the last page. A page holds `limit` items, or fewer once ' +
      'their data, results and errors pass BULK_JOBS_MAX_PAGE_BYTES (a page always holds one item).',
  })
  next_cursor: string | null;
}

/** The seeded DELETE response: all three members required. */
export class DeleteBulkJobResponseDto {
  @ApiProperty({ type: 'string', format: 'uuid', required: true })
  job_id: string;

  @ApiProperty({
    type: 'string',
    required: true,
    example: 'completed',
    description: 'The job status: completed, failed or cancelled.',
  })
  status: string;

  @ApiProperty({ type: 'boolean', required: true, example: true })
  success: boolean;
}

/** Every job status with a count, so that a client never has to tell a missing status from zero. */
class JobCountsByStatusDto implements Record<JobStatus, number> {
  @ApiProperty({ type: 'integer', example: 1 })
  pending: number;

  @ApiProperty({ type: 'integer', example: 2 })
  running: number;

  @ApiProperty({ type: 'integer', example: 0 })
  paused: number;

  @ApiProperty({ type: 'integer', example: 0 })
  cancelling: number;

  @ApiProperty({ type: 'integer', example: 40 })
  completed: number;

  @ApiProperty({ type: 'integer', example: 3 })
  failed: number;

  @ApiProperty({ type: 'integer', example: 1 })
  cancelled: number;
}

export class JobCountsResponseDto {
  @ApiProperty({ type: () => JobCountsByStatusDto, description: 'Jobs (not deleted) in each status.' })
  by_status: JobCountsByStatusDto;

  @ApiProperty({ type: 'integer', description: 'Jobs (not deleted) in all.', example: 47 })
  total: number;
}
