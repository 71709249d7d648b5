import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, Req, Res } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiBody,
  ApiConsumes,
  ApiExtraModels,
  ApiHeader,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CurrentPrincipal, RequireScope } from '../auth/auth.decorators';
import { SCOPES, type Principal } from '../auth/scopes';
import {
  ApiProblemResponses,
  describedAs,
  forbidden,
  UNSUPPORTED_BODY,
} from '../common/problem-details/api-problem-responses.decorator';
import { ParseUuidParamPipe } from '../common/uuid-param.pipe';
import { BulkJobsIngestService } from './bulk-jobs-ingest.service';
import { BulkJobsService } from './bulk-jobs.service';
import { CreateJobBodyPipe } from './create-job-body.pipe';
import {
  BulkJobItemListResponseDto,
  BulkJobListResponseDto,
  BulkJobResponseDto,
  DeleteBulkJobResponseDto,
} from './dto/bulk-job-response.dto';
import { CreateBulkJobDto } from './dto/create-bulk-job.dto';
import { ExportResultsQueryDto, ListItemsQueryDto, ListJobsQueryDto } from './dto/list-query.dto';
import { IdempotencyKey } from './idempotency-key.decorator';
import { JobEventsService } from './job-events.service';
import {
  BODY_TIMED_OUT,
  CREATE_THROTTLED,
  EVENTS_DESCRIPTION,
  EVENTS_THROTTLED,
  EVENTS_EXAMPLE,
  EXPORT_CSV_EXAMPLE,
  EXPORT_DESCRIPTION,
  EXPORT_NDJSON_EXAMPLE,
  EXPORT_THROTTLED,
  forbiddenOrOwnerFilter,
  IDEMPOTENCY_KEY_REUSED,
  INVALID_CREATE,
  INVALID_EXPORT_QUERY,
  INVALID_ITEMS_QUERY,
  INVALID_JOB_ID,
  INVALID_LIST_QUERY,
  JOB_EXAMPLES,
  JOB_NOT_CANCELLABLE,
  JOB_NOT_DELETABLE,
  JOB_NOT_DELETED,
  JOB_NOT_FOUND,
  JOB_NOT_PAUSABLE,
  JOB_NOT_RESUMABLE,
  INVALID_PATCH,
  INVALID_RETRY,
  RETRY_REFUSED,
  SAMPLE_JOB_ID,
} from './bulk-jobs.openapi';
import { PatchBulkJobDto, RetryBulkJobDto } from './dto/job-control.dto';
import { SSE_CONTENT_TYPE } from './sse';
import { CSV_CONTENT_TYPE, NDJSON_CONTENT_TYPE } from './results-export';

export const JOBS_PATH = 'api/actions/bulk/jobs';

const JobId = () =>
  ApiParam({
    name: 'id',
    required: true,
    schema: { type: 'string', example: SAMPLE_JOB_ID },
    description: 'The job id (a UUID).',
  });

@ApiTags('bulk-jobs')
@ApiBearerAuth()
@ApiExtraModels(CreateBulkJobDto)
@Controller(JOBS_PATH)
export class BulkJobsController {
  constructor(
    private readonly jobs: BulkJobsService,
    private readonly ingest: BulkJobsIngestService,
    private readonly events: JobEventsService,
  ) {}

  @Post()
  @HttpCode(202)
  @RequireScope(SCOPES.write)
  @ApiOperation({
    operationId: 'createBulkActionJob',
    summary: 'Create a bulk action job',
    description:
      'Stores the job and one item per target; workers run the items in the background. With an Idempotency-Key, a repeated request within 24 hours returns the job the first one created.',
  })
  @ApiBody({
    required: true,
    description: 'The job with its targets inline. For large jobs, stream them as application/x-ndjson.',
    schema: { $ref: getSchemaPath(CreateBulkJobDto) },
  })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: 'Up to 255 printable ASCII characters; scoped to the caller.',
  })
  @ApiAcceptedResponse({
    type: BulkJobResponseDto,
    description: 'Accepted. `Location` points at the job.',
    headers: { Location: { schema: { type: 'string' }, description: 'The job URL.' } },
    example: JOB_EXAMPLES.created,
  })
  @ApiProblemResponses(
    INVALID_CREATE,
    INVALID_EXPORT_QUERY,
    401,
    forbidden(SCOPES.write),
    413,
    UNSUPPORTED_BODY,
    IDEMPOTENCY_KEY_REUSED,
    BODY_TIMED_OUT,
    CREATE_THROTTLED,
  )
  async create(
    @CurrentPrincipal() principal: Principal,
    @Body(CreateJobBodyPipe) body: CreateBulkJobDto | Readable,
    @IdempotencyKey() idempotencyKey: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<BulkJobResponseDto> {
    const { job, replayed } =
      body instanceof Readable
        ? await this.ingest.createFromNdjson(principal, body, idempotencyKey)
        : await this.jobs.create(principal, body, idempotencyKey);
    void reply.header('location', `/${JOBS_PATH}/${job.id}`);
    if (replayed) void reply.header('idempotent-replayed', 'true');
    return job;
  }

  @Get()
  @RequireScope(SCOPES.read)
  @ApiOperation({
    operationId: 'listBulkActionJobs',
    summary: 'List bulk action jobs',
    description:
      "The caller's jobs (every owner's for admins, or one owner's with `owner`), newest first, keyset-paginated " +
      'with a signed cursor. A page holds `limit` jobs, or fewer once their params pass BULK_JOBS_MAX_PAGE_BYTES. ' +
      'Deleted jobs are left out unless show_deleted=true.',
  })
  @ApiOkResponse({ type: BulkJobListResponseDto, example: JOB_EXAMPLES.list })
  @ApiProblemResponses(INVALID_LIST_QUERY, 401, forbiddenOrOwnerFilter())
  list(
    @CurrentPrincipal() principal: Principal,
    @Query() query: ListJobsQueryDto,
  ): Promise<BulkJobListResponseDto> {
    return this.jobs.list(principal, query);
  }

  @Get(':id')
  @RequireScope(SCOPES.read)
  @JobId()
  @ApiOperation({
    operationId: 'getBulkActionJob',
    summary: 'Get a bulk action job',
    description: 'A soft-deleted job is still shown, with deleted_at and purge_at set, until it is purged.',
  })
  @ApiOkResponse({ type: BulkJobResponseDto, example: JOB_EXAMPLES.running })
  @ApiProblemResponses(INVALID_JOB_ID, 401, forbidden(SCOPES.read), JOB_NOT_FOUND)
  get(
    @CurrentPrincipal() principal: Principal,
    @Param('id', ParseUuidParamPipe) id: string,
  ): Promise<BulkJobResponseDto> {
    return this.jobs.get(principal, id);
  }

  @Patch(':id')
  @RequireScope(SCOPES.write)
  @JobId()
  @ApiOperation({
    operationId: 'updateBulkActionJob',
    summary: "Change a job's labels",
    description:
      'A JSON merge patch (RFC 7396, AIP-134 style) of the job: only `labels` can change. A string sets a ' +
      'label, null removes it, labels not named stay. The result may have at most 16 labels; the merge and ' +
      'that check are one statement. Sent as application/merge-patch+json (application/json is accepted too). ' +
      'A deleted job is not found.',
  })
  @ApiConsumes('application/merge-patch+json', 'application/json')
  @ApiBody({ required: true, type: PatchBulkJobDto })
  @ApiOkResponse({ type: BulkJobResponseDto, example: JOB_EXAMPLES.running })
  @ApiProblemResponses(INVALID_PATCH, 401, forbidden(SCOPES.write), JOB_NOT_FOUND, UNSUPPORTED_BODY)
  patch(
    @CurrentPrincipal() principal: Principal,
    @Param('id', ParseUuidParamPipe) id: string,
    @Body() body: PatchBulkJobDto,
  ): Promise<BulkJobResponseDto> {
    return this.jobs.patch(principal, id, body);
  }

  @Get(':id/events')
  @RequireScope(SCOPES.read)
  @JobId()
  @ApiOperation({
    operationId: 'streamBulkActionJobEvents',
    summary: "Follow a job's progress (Server-Sent Events)",
    description: EVENTS_DESCRIPTION,
  })
  @ApiOkResponse({
    description:
      'The event stream: `progress` events while the job runs, then `end` (or `problem`), then the stream closes.',
    content: { [SSE_CONTENT_TYPE.split(';')[0]]: { schema: { type: 'string' }, example: EVENTS_EXAMPLE } },
  })
  @ApiProblemResponses(
    INVALID_JOB_ID,
    401,
    forbidden(SCOPES.read),
    describedAs(
      JOB_NOT_FOUND,
      'The job is unknown, not yours, or purged (`/problems/job-not-found`); checked before the stream starts.',
    ),
    EVENTS_THROTTLED,
  )
  streamEvents(
    @CurrentPrincipal() principal: Principal,
    @Param('id', ParseUuidParamPipe) id: string,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    return this.events.open(principal, id, request, reply);
  }

  @Get(':id/items')
  @RequireScope(SCOPES.read)
  @JobId()
  @ApiOperation({
    operationId: 'listBulkActionJobItems',
    summary: "List a job's items",
    description:
      'In target order, keyset-paginated with a signed cursor, optionally filtered by status. A page holds `limit` items, or fewer once their data, results and errors pass BULK_JOBS_MAX_PAGE_BYTES.',
  })
  @ApiOkResponse({ type: BulkJobItemListResponseDto, example: JOB_EXAMPLES.items })
  @ApiProblemResponses(INVALID_ITEMS_QUERY, 401, forbidden(SCOPES.read), JOB_NOT_FOUND)
  listItems(
    @CurrentPrincipal() principal: Principal,
    @Param('id', ParseUuidParamPipe) id: string,
    @Query() query: ListItemsQueryDto,
  ): Promise<BulkJobItemListResponseDto> {
    return this.jobs.listItems(principal, id, query);
  }

  @Get(':id/results')
  @RequireScope(SCOPES.read)
  @JobId()
  @ApiOperation({
    operationId: 'exportBulkActionJobResults',
    summary: "Export a job's results (NDJSON or CSV)",
    description: EXPORT_DESCRIPTION,
  })
  @ApiHeader({
    name: 'Accept',
    required: false,
    description: '`text/csv` for CSV; anything else (or none) gets NDJSON.',
    schema: { type: 'string', example: 'text/csv' },
  })
  @ApiOkResponse({
    description: 'The items, streamed. `Content-Disposition: attachment` names the file.',
    headers: {
      'Content-Disposition': {
        schema: { type: 'string' },
        description: `attachment; filename="bulk-job-${SAMPLE_JOB_ID}-results.ndjson"`,
      },
    },
    content: {
      [NDJSON_CONTENT_TYPE]: { schema: { type: 'string' }, example: EXPORT_NDJSON_EXAMPLE },
      [CSV_CONTENT_TYPE.split(';')[0]]: { schema: { type: 'string' }, example: EXPORT_CSV_EXAMPLE },
    },
  })
  @ApiProblemResponses(INVALID_EXPORT_QUERY, 401, forbidden(SCOPES.read), JOB_NOT_FOUND, EXPORT_THROTTLED)
  async exportResults(
    @CurrentPrincipal() principal: Principal,
    @Param('id', ParseUuidParamPipe) id: string,
    @Query() query: ExportResultsQueryDto,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const { contentType, fileName, body } = await this.jobs.exportResults(
      principal,
      id,
      query,
      request.headers.accept,
    );
    await reply
      .header('content-type', contentType)
      .header('content-disposition', `attachment; filename="${fileName}"`)
      .header('cache-control', 'no-store')
      .send(body);
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @RequireScope(SCOPES.write)
  @JobId()
  @ApiOperation({
    operationId: 'cancelBulkActionJob',
    summary: 'Cancel a bulk action job',
    description:
      "A pending, running or paused job. Answers at once whatever the job's size. The job turns cancelling and its first BULK_JOBS_CANCEL_BATCH_SIZE " +
      'pending items skipped; the workers skip the rest in batches, and the job is cancelled once no item is pending ' +
      'or in flight (at once when there was nothing more). Cancelling a cancelling job changes nothing. Items that ' +
      'already succeeded stay succeeded.',
  })
  @ApiOkResponse({ type: BulkJobResponseDto, example: JOB_EXAMPLES.cancelled })
  @ApiProblemResponses(INVALID_JOB_ID, 401, forbidden(SCOPES.write), JOB_NOT_FOUND, JOB_NOT_CANCELLABLE)
  cancel(
    @CurrentPrincipal() principal: Principal,
    @Param('id', ParseUuidParamPipe) id: string,
  ): Promise<BulkJobResponseDto> {
    return this.jobs.cancel(principal, id);
  }

  @Post(':id/pause')
  @HttpCode(200)
  @RequireScope(SCOPES.write)
  @JobId()
  @ApiOperation({
    operationId: 'pauseBulkActionJob',
    summary: 'Pause a bulk action job',
    description:
      'A pending or running job becomes paused: workers claim none of its items any more; items already in ' +
      'flight finish and are recorded (a paused job whose last items finish so completes or fails as usual). ' +
      'A paused job is still active (it counts against BULK_JOBS_MAX_ACTIVE_PER_OWNER), cannot be deleted, ' +
      'and can be cancelled or resumed. Pausing a paused job changes nothing and answers 200.',
  })
  @ApiOkResponse({ type: BulkJobResponseDto, example: JOB_EXAMPLES.paused })
  @ApiProblemResponses(INVALID_JOB_ID, 401, forbidden(SCOPES.write), JOB_NOT_FOUND, JOB_NOT_PAUSABLE)
  pause(
    @CurrentPrincipal() principal: Principal,
    @Param('id', ParseUuidParamPipe) id: string,
  ): Promise<BulkJobResponseDto> {
    return this.jobs.pause(principal, id);
  }

  @Post(':id/resume')
  @HttpCode(200)
  @RequireScope(SCOPES.write)
  @JobId()
  @ApiOperation({
    operationId: 'resumeBulkActionJob',
    summary: 'Resume a paused bulk action job',
    description:
      'A paused job becomes running again (pending if none of its items had started), and workers claim its ' +
      'items at once. Any other status is a 409.',
  })
  @ApiOkResponse({ type: BulkJobResponseDto, example: JOB_EXAMPLES.resumed })
  @ApiProblemResponses(INVALID_JOB_ID, 401, forbidden(SCOPES.write), JOB_NOT_FOUND, JOB_NOT_RESUMABLE)
  resume(
    @CurrentPrincipal() principal: Principal,
    @Param('id', ParseUuidParamPipe) id: string,
  ): Promise<BulkJobResponseDto> {
    return this.jobs.resume(principal, id);
  }

  @Post(':id/retry')
  @HttpCode(202)
  @RequireScope(SCOPES.write)
  @JobId()
  @ApiOperation({
    operationId: 'retryBulkActionJob',
    summary: "Retry a finished job's failed items",
    description:
      'Creates a new job with the same action, params, options and labels whose targets are the failed items ' +
      'of this completed, failed or cancelled job (and its skipped ones with `include_skipped`), in their ' +
      'order, with their data. The new job belongs to the caller and carries `retry_of`; this job stays as it ' +
      'is. A create in every other respect: the Idempotency-Key, BULK_JOBS_MAX_ACTIVE_PER_OWNER and ' +
      'BULK_JOBS_MAX_TARGETS apply. A deleted job is not found (restore it first).',
  })
  @ApiBody({ required: false, type: RetryBulkJobDto })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: 'Up to 255 printable ASCII characters; scoped to the caller, shared with creates.',
  })
  @ApiAcceptedResponse({
    type: BulkJobResponseDto,
    description: 'Accepted: the new job. `Location` points at it.',
    headers: { Location: { schema: { type: 'string' }, description: 'The new job URL.' } },
    example: JOB_EXAMPLES.retried,
  })
  @ApiProblemResponses(
    INVALID_RETRY,
    401,
    forbidden(SCOPES.write),
    JOB_NOT_FOUND,
    RETRY_REFUSED,
    IDEMPOTENCY_KEY_REUSED,
    CREATE_THROTTLED,
  )
  async retry(
    @CurrentPrincipal() principal: Principal,
    @Param('id', ParseUuidParamPipe) id: string,
    @Body() body: RetryBulkJobDto,
    @IdempotencyKey() idempotencyKey: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<BulkJobResponseDto> {
    const { job, replayed } = await this.jobs.retry(principal, id, body, idempotencyKey);
    void reply.header('location', `/${JOBS_PATH}/${job.id}`);
    if (replayed) void reply.header('idempotent-replayed', 'true');
    return job;
  }

  @Delete(':id')
  @HttpCode(200)
  @RequireScope(SCOPES.write)
  @JobId()
  @ApiOperation({
    operationId: 'deleteBulkActionJob',
    summary:
      'Delete a bulk action job (soft-delete). Only allowed for jobs with status completed, failed, or cancelled',
    description:
      'Delete a bulk action job (soft-delete). Only allowed for jobs with status completed, failed, or cancelled.',
  })
  @ApiOkResponse({
    type: DeleteBulkJobResponseDto,
    description: 'Successful response',
    example: JOB_EXAMPLES.deleted,
  })
  @ApiProblemResponses(
    INVALID_JOB_ID,
    401,
    forbidden(SCOPES.write),
    describedAs(JOB_NOT_FOUND, 'The requested resource was not found.'),
    JOB_NOT_DELETABLE,
  )
  delete(
    @CurrentPrincipal() principal: Principal,
    @Param('id', ParseUuidParamPipe) id: string,
  ): Promise<DeleteBulkJobResponseDto> {
    return this.jobs.delete(principal, id);
  }

  @Post(':id/restore')
  @HttpCode(200)
  @RequireScope(SCOPES.write)
  @JobId()
  @ApiOperation({
    operationId: 'restoreBulkActionJob',
    summary: 'Restore a soft-deleted bulk action job',
    description: 'Undoes a delete while the job is retained (until purge_at).',
  })
  @ApiOkResponse({ type: BulkJobResponseDto, example: JOB_EXAMPLES.restored })
  @ApiProblemResponses(
    INVALID_JOB_ID,
    401,
    forbidden(SCOPES.write),
    describedAs(
      JOB_NOT_FOUND,
      'The job is unknown, not yours, or already purged (`/problems/job-not-found`).',
    ),
    JOB_NOT_DELETED,
  )
  restore(
    @CurrentPrincipal() principal: Principal,
    @Param('id', ParseUuidParamPipe) id: string,
  ): Promise<BulkJobResponseDto> {
    return this.jobs.restore(principal, id);
  }
}
