import { Controller, Get, Headers, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Public } from '../auth/auth.decorators';
import { Env } from '../config/env';
import {
  ApiExactProblemResponses,
  problemResponse,
  PUBLIC_RATE_LIMITED,
} from '../common/problem-details/api-problem-responses.decorator';
import { InvalidTokenError, UnauthenticatedError } from '../common/problem-details/domain-error';
import { Metrics } from './metrics';
import { metricsAuthorized } from './metrics-token';

const METRICS_TOKEN_MISSING = problemResponse(
  'METRICS_TOKEN is set and the request does not carry it.',
  { missingToken: ['No metrics token', new UnauthenticatedError('The metrics token is required.')] },
  {
    headers: {
      'WWW-Authenticate': {
        description: 'The Bearer challenge (RFC 6750).',
        schema: { type: 'string', example: 'Bearer realm="bulk-jobs"' },
      },
    },
  },
);

@ApiTags('operations')
@Public()
@ApiSecurity({})
@Controller('metrics')
export class MetricsController {
  constructor(
    private readonly metrics: Metrics,
    private readonly env: Env,
  ) {}

  @Get()
  @ApiOperation({
    operationId: 'getMetrics',
    summary: 'Prometheus metrics',
    description:
      'The metrics of this process in the Prometheus text format: HTTP request durations by route pattern and ' +
      'status, item outcomes per action, claim latency and lease reclaims of the workers in this process, jobs by ' +
      'status and the queue depth (read from the database at scrape time), and the Node.js process metrics. ' +
      'Public unless METRICS_TOKEN is set; then it wants `Authorization: Bearer <METRICS_TOKEN>` (not a JWT). ' +
      'Limited per client address (RATE_LIMIT_PUBLIC_PER_MINUTE). Served here only when METRICS_PORT is 0; ' +
      'with METRICS_PORT set, on that port instead, and this operation is not in the document.',
  })
  @ApiProduces('text/plain')
  @ApiOkResponse({
    description: 'The metrics (text format 0.0.4).',
    content: {
      'text/plain': {
        schema: { type: 'string' },
        example:
          '# HELP bulk_jobs_pending_items Items of pending and running jobs still waiting to be claimed (the queue depth), from the jobs’ counters.\n' +
          '# TYPE bulk_jobs_pending_items gauge\n' +
          'bulk_jobs_pending_items 1200\n',
      },
    },
  })
  @ApiExactProblemResponses(METRICS_TOKEN_MISSING, 415, PUBLIC_RATE_LIMITED, 500)
  async scrape(
    @Headers('authorization') authorization: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<string> {
    if (!metricsAuthorized(this.env.METRICS_TOKEN, authorization)) {
      throw authorization
        ? new InvalidTokenError('The metrics token is not valid.')
        : new UnauthenticatedError('The metrics token is required.');
    }
    void reply.header('content-type', this.metrics.registry.contentType);
    return this.metrics.registry.metrics();
  }
}
