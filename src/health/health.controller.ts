import { Controller, Get, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService, type HealthCheckResult } from '@nestjs/terminus';
import { Public } from '../auth/auth.decorators';
import {
  ApiExactProblemResponses,
  problemResponse,
  PUBLIC_RATE_LIMITED,
} from '../common/problem-details/api-problem-responses.decorator';
import { ServiceUnavailableError } from '../common/problem-details/domain-error';
import { HealthCheckResponseDto, LIVE_EXAMPLE, READY_EXAMPLE } from './health.dto';
import { DatabaseHealthIndicators } from './health.indicators';

/** Readiness failed: a 503 problem whose `checks` member says which check is down and why. */
export class NotReadyError extends ServiceUnavailableError {
  constructor(result: HealthCheckResult | undefined) {
    const down = Object.keys(result?.error ?? {});
    super(
      5,
      result?.status === 'shutting_down'
        ? 'The service is shutting down.'
        : `The service is not ready: ${down.length > 0 ? down.join(', ') : 'a check'} failed.`,
    );
    this.extensions.checks = result?.details ?? {};
  }
}

const UNREACHABLE = { status: 'down' as const, message: 'the database is unreachable' };

const NOT_READY = problemResponse(
  'Not ready: the database is unreachable or migrations are missing (see `checks`); retry after `Retry-After` seconds.',
  {
    databaseDown: [
      'The database is unreachable',
      new NotReadyError({
        status: 'error',
        info: {},
        error: { database: UNREACHABLE, migrations: UNREACHABLE },
        details: { database: UNREACHABLE, migrations: UNREACHABLE },
      }),
    ],
  },
  {
    extensions: {
      type: 'object',
      required: ['checks'],
      properties: {
        checks: {
          type: 'object',
          additionalProperties: { type: 'object' },
          description: 'Every check by name: `status` (`up` or `down`), and `message` when it is down.',
        },
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

@ApiTags('operations')
@Public()
@ApiSecurity({})
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: DatabaseHealthIndicators,
  ) {}

  @Get('live')
  @HealthCheck({ noCache: true, swaggerDocumentation: false })
  @ApiOperation({
    operationId: 'getLiveness',
    summary: 'Liveness',
    description:
      'Answers 200 while the process serves HTTP at all; it checks no dependency, so a lost database does not ' +
      'get the process restarted. No token needed; limited per client address (RATE_LIMIT_PUBLIC_PER_MINUTE).',
  })
  @ApiOkResponse({
    type: HealthCheckResponseDto,
    description: 'The process is alive.',
    example: LIVE_EXAMPLE,
  })
  @ApiExactProblemResponses(415, PUBLIC_RATE_LIMITED, 500)
  live(): Promise<HealthCheckResult> {
    return this.health.check([]);
  }

  @Get('ready')
  @HealthCheck({ noCache: true, swaggerDocumentation: false })
  @ApiOperation({
    operationId: 'getReadiness',
    summary: 'Readiness',
    description:
      'Answers 200 when the database answers a query and every migration has been applied, each within 2 s; ' +
      'else a 503 problem with `Retry-After` and a `checks` member that has the status of each check. ' +
      'No token needed; limited per client address (RATE_LIMIT_PUBLIC_PER_MINUTE).',
  })
  @ApiOkResponse({
    type: HealthCheckResponseDto,
    description: 'Ready to serve requests.',
    example: READY_EXAMPLE,
  })
  @ApiExactProblemResponses(415, PUBLIC_RATE_LIMITED, 500, NOT_READY)
  async ready(): Promise<HealthCheckResult> {
    try {
      return await this.health.check([
        () => this.indicators.database('database'),
        () => this.indicators.migrations('migrations'),
      ]);
    } catch (err) {
      if (err instanceof ServiceUnavailableException) {
        throw new NotReadyError(err.getResponse() as HealthCheckResult);
      }
      throw err;
    }
  }
}
