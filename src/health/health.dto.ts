import { ApiProperty } from '@nestjs/swagger';

const CHECK_EXAMPLE = {
  database: { status: 'up', responseTime: 1 },
  migrations: { status: 'up', applied: 4, responseTime: 2 },
};

export const LIVE_EXAMPLE = { status: 'ok', info: {}, error: {}, details: {} };
export const READY_EXAMPLE = { status: 'ok', info: CHECK_EXAMPLE, error: {}, details: CHECK_EXAMPLE };

export class HealthCheckResponseDto {
  @ApiProperty({ enum: ['ok'], description: 'Every check is up.', example: 'ok' })
  status: 'ok';

  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'object' },
    description: 'The checks that are up, by name.',
    example: CHECK_EXAMPLE,
  })
  info: Record<string, unknown>;

  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'object' },
    description: 'The checks that are down, by name (empty on success).',
    example: {},
  })
  error: Record<string, unknown>;

  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'object' },
    description:
      'Every check, by name: `status` (`up` or `down`), `responseTime` in ms, and what the check adds.',
    example: CHECK_EXAMPLE,
  })
  details: Record<string, unknown>;
}
