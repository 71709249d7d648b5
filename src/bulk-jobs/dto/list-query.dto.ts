import { applyDecorators } from '@nestjs/common';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  MaxLength,
  Min,
  MinLength,
} from 'class-validator';
import { ITEM_STATUSES, JOB_STATUSES, type ItemStatus, type JobStatus } from '../../jobs/job-status';
import { MAX_PAGE_SIZE } from '../../common/pagination/cursor';

// Query values arrive as strings: accept only a plain positive integer, so
// that "1.5", "1e3" or "10abc" are refused rather than coerced. A huge one is
// still a positive integer: it is capped here and lowered to the page maximum later.
const toStrictInt = ({ value }: { value: unknown }) =>
  typeof value === 'string' && /^\d+$/.test(value) ? Math.min(Number(value), Number.MAX_SAFE_INTEGER) : value;
const toStrictBool = ({ value }: { value: unknown }) =>
  value === 'true' ? true : value === 'false' ? false : value;

export class PageQueryDto {
  @ApiPropertyOptional({
    type: 'integer',
    description: `Page size; values above ${MAX_PAGE_SIZE} are lowered to ${MAX_PAGE_SIZE}.`,
    minimum: 1,
    default: 50,
    example: 50,
  })
  @IsOptional()
  @Transform(toStrictInt)
  @IsInt({ message: 'limit must be a positive integer' })
  @Min(1, { message: 'limit must be a positive integer' })
  limit?: number;

  @ApiPropertyOptional({ description: 'The `next_cursor` of the previous page.' })
  @IsOptional()
  @IsString()
  @MaxLength(1024)
  cursor?: string;
}

/** `owner`: an admin's filter on one owner's jobs. */
const OwnerFilter = () =>
  applyDecorators(
    ApiPropertyOptional({
      description:
        "Only this owner's jobs (a token's `sub`). Admins only (bulk-jobs:admin): anyone else gets a 403 " +
        '(`required_scope`), since the filter names jobs they may not see.',
      example: 'alice',
    }),
    IsOptional(),
    IsString(),
    MinLength(1),
    MaxLength(256),
  );

export class JobCountsQueryDto {
  @OwnerFilter()
  owner?: string;
}

export class ListJobsQueryDto extends PageQueryDto {
  @OwnerFilter()
  owner?: string;

  @ApiPropertyOptional({ enum: JOB_STATUSES, description: 'Only jobs in this status.' })
  @IsOptional()
  @IsIn(JOB_STATUSES, { message: `status must be one of ${JOB_STATUSES.join(', ')}` })
  status?: JobStatus;

  @ApiPropertyOptional({
    type: 'array',
    items: { type: 'string', example: 'team:billing' },
    description:
      'Only jobs with this label, as `key:value`; repeat it for several, which must all match. Served by a ' +
      'GIN index on the labels.',
    example: ['team:billing'],
  })
  @IsOptional()
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? [value] : value))
  @IsArray({ message: 'label must be key:value' })
  @ArrayMaxSize(16, { message: 'label can be given at most 16 times' })
  @IsString({ each: true, message: 'label must be key:value' })
  label?: string[];

  @ApiPropertyOptional({ description: 'Include soft-deleted jobs.', default: false })
  @IsOptional()
  @Transform(toStrictBool)
  @IsBoolean({ message: 'show_deleted must be true or false' })
  show_deleted?: boolean;
}

export class ListItemsQueryDto extends PageQueryDto {
  @ApiPropertyOptional({ enum: ITEM_STATUSES, description: 'Only items in this status.' })
  @IsOptional()
  @IsIn(ITEM_STATUSES, { message: `status must be one of ${ITEM_STATUSES.join(', ')}` })
  status?: ItemStatus;
}

const toList = ({ value }: { value: unknown }) =>
  typeof value === 'string' ? [...new Set(value.split(',').map((s) => s.trim()))] : value;

export class ExportResultsQueryDto {
  @ApiPropertyOptional({
    type: 'string',
    description: `Only items in these statuses: one, or several separated by commas (${ITEM_STATUSES.join(', ')}).`,
    example: 'failed,skipped',
  })
  @IsOptional()
  @Transform(toList)
  @IsArray({ message: 'status must be one or more of ' + ITEM_STATUSES.join(', ') + ', separated by commas' })
  @IsIn(ITEM_STATUSES, {
    each: true,
    message: `status must be one or more of ${ITEM_STATUSES.join(', ')}, separated by commas`,
  })
  status?: ItemStatus[];
}
