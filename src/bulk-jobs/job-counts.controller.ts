import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, RequireScope } from '../auth/auth.decorators';
import { SCOPES, type Principal } from '../auth/scopes';
import { ApiProblemResponses } from '../common/problem-details/api-problem-responses.decorator';
import { BulkJobsService } from './bulk-jobs.service';
import { forbiddenOrOwnerFilter, INVALID_COUNTS_QUERY, JOB_EXAMPLES } from './bulk-jobs.openapi';
import { JobCountsResponseDto } from './dto/bulk-job-response.dto';
import { JobCountsQueryDto } from './dto/list-query.dto';

/**
 * GET /api/actions/bulk/job-counts: how many jobs are in each status, for the
 * dashboard's header. A path of its own rather than one under /jobs, where any
 * segment is a job id.
 */
@ApiTags('bulk-jobs')
@ApiBearerAuth()
@Controller('api/actions/bulk/job-counts')
export class JobCountsController {
  constructor(private readonly jobs: BulkJobsService) {}

  @Get()
  @RequireScope(SCOPES.read)
  @ApiOperation({
    operationId: 'countBulkActionJobs',
    summary: 'Count bulk action jobs by status',
    description:
      "The caller's jobs that are not deleted (every owner's for admins, or one owner's with `owner`), " +
      'counted in each status; every status is present, 0 when it has none.',
  })
  @ApiOkResponse({ type: JobCountsResponseDto, example: JOB_EXAMPLES.counts })
  @ApiProblemResponses(INVALID_COUNTS_QUERY, 401, forbiddenOrOwnerFilter())
  counts(
    @CurrentPrincipal() principal: Principal,
    @Query() query: JobCountsQueryDto,
  ): Promise<JobCountsResponseDto> {
    return this.jobs.counts(principal, query);
  }
}
