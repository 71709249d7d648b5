import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsOptional } from 'class-validator';

/** The body of POST /jobs/{id}/retry (optional). */
export class RetryBulkJobDto {
  @ApiPropertyOptional({
    description:
      "Retry the job's skipped items too (those a cancel left unstarted), not only its failed ones.",
    default: false,
    example: false,
  })
  @IsOptional()
  @IsBoolean()
  include_skipped?: boolean;
}
