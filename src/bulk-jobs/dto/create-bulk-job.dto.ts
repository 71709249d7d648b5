import { ApiExtraModels, ApiProperty, ApiPropertyOptional, getSchemaPath, OmitType } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { isUnstorableJsonText, isUnstorableText } from '../../common/storable-json';
import { IsLabels, LABELS_DESCRIPTION } from './job-control.dto';
import {
  IsArray,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidateNested,
  registerDecorator,
  type ValidationArguments,
} from 'class-validator';

export const TARGET_ID_MAX_LENGTH = 512;

export type TargetInput = string | { id: string; data?: Record<string, unknown> };

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * How deep objects and arrays may nest in a create body (or one NDJSON line).
 * Deeper values are refused before anything walks them: class-transformer,
 * JSON.stringify and PostgreSQL's jsonb all recurse and run out of stack on
 * a few thousand levels, which would be a 500 for a malformed request.
 */
export const MAX_JSON_DEPTH = 64;
/** What a value nested deeper than MAX_JSON_DEPTH is told. */
export const TOO_DEEP = `nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep`;

/** True when `value` nests objects and arrays more than `max` levels deep. Iterative: any depth is safe. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (typeof current !== 'object' || current === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(current) ? current : Object.values(current)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** What a target whose data is larger than BULK_JOBS_MAX_TARGET_DATA_BYTES is told. */
export function dataTooLarge(bytes: number, max: number): string {
  return `data is ${bytes} bytes as JSON, more than BULK_JOBS_MAX_TARGET_DATA_BYTES (${max})`;
}

/**
 * Why one target is invalid, or null. With `maxDataBytes`, a target whose
 * data takes more bytes as JSON is invalid too (the streaming create checks
 * it here, line by line; a JSON create's service checks it apart, since a
 * validation decorator cannot read the settings).
 */
export function targetProblem(t: unknown, maxDataBytes?: number): string | null {
  if (typeof t === 'string') {
    if (t.length < 1 || t.length > TARGET_ID_MAX_LENGTH)
      return `must be 1 to ${TARGET_ID_MAX_LENGTH} characters long`;
    return isUnstorableText(t) ? 'must not contain NUL characters or unpaired surrogates' : null;
  }
  if (!isPlainObject(t)) return 'must be a string id or an object { "id": string, "data"?: object }';
  for (const key of Object.keys(t)) {
    if (key !== 'id' && key !== 'data') return `has an unknown member "${key}"`;
  }
  if (typeof t.id !== 'string' || t.id.length < 1 || t.id.length > TARGET_ID_MAX_LENGTH) {
    return `id must be a string of 1 to ${TARGET_ID_MAX_LENGTH} characters`;
  }
  if (isUnstorableText(t.id)) return 'id must not contain NUL characters or unpaired surrogates';
  if (t.data === undefined) return null;
  if (!isPlainObject(t.data)) return 'data must be an object';
  const json = JSON.stringify(t.data);
  if (maxDataBytes !== undefined && json.length > maxDataBytes / 3) {
    // Cheap to skip: a string of n UTF-16 units takes at most 3n bytes of UTF-8.
    const bytes = Buffer.byteLength(json);
    if (bytes > maxDataBytes) return dataTooLarge(bytes, maxDataBytes);
  }
  if (isUnstorableJsonText(json)) return 'data must not contain \\u0000 or unpaired surrogates';
  return null;
}

/** Validates every element of a target list; the message names the first bad index. */
function IsTargetList(): PropertyDecorator {
  return (object, propertyName) => {
    let firstProblem = '';
    registerDecorator({
      name: 'isTargetList',
      target: object.constructor,
      propertyName: propertyName as string,
      validator: {
        validate(value: unknown) {
          if (!Array.isArray(value)) return false;
          if (value.length === 0) {
            firstProblem = 'must contain at least one target';
            return false;
          }
          for (let i = 0; i < value.length; i++) {
            const problem = targetProblem(value[i]);
            if (problem) {
              firstProblem = `targets[${i}] ${problem}`;
              return false;
            }
          }
          return true;
        },
        defaultMessage(args?: ValidationArguments) {
          return Array.isArray(args?.value) ? firstProblem : 'must be an array of targets';
        },
      },
    });
  };
}

export class NotifyOptionsDto {
  @ApiProperty({
    description:
      'Receives a POST of the `bulk_job.finished` event when the job ends (completed, failed or cancelled), signed ' +
      'as Standard Webhooks has it. Its host must be in ACTIONS_HTTP_ALLOWED_HOSTS, as for the http action.',
    example: 'https://hooks.example.com/bulk-jobs',
  })
  @IsString()
  @MinLength(1)
  @MaxLength(2048)
  url: string;
}

export class JobOptionsDto {
  @ApiPropertyOptional({
    type: 'integer',
    description:
      "Attempts per item before it fails. Every attempt of an item carries the item's one idempotency key, so " +
      'a downstream that honours it applies the item once however many attempts it takes.',
    minimum: 1,
    maximum: 25,
    default: 3,
    example: 3,
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(25)
  max_attempts?: number;

  @ApiPropertyOptional({
    type: 'integer',
    description: 'Items of this job in flight at once, across all workers.',
    minimum: 1,
    maximum: 10000,
    example: 10,
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(10_000)
  concurrency?: number;

  @ApiPropertyOptional({
    description: 'Items of this job started per second at most (protects a downstream API).',
    minimum: 0.01,
    maximum: 100000,
    example: 50,
  })
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0.01)
  @Max(100_000)
  rate_limit_per_second?: number;

  @ApiPropertyOptional({ type: NotifyOptionsDto, description: 'Tell a URL when the job ends (a webhook).' })
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => NotifyOptionsDto)
  notify?: NotifyOptionsDto;

  @ApiPropertyOptional({
    type: 'integer',
    description:
      'Workers claim items of higher-priority jobs first, and round-robin between jobs of one priority. A ' +
      'job waits while any job of a higher priority has items to claim (no ageing): see the README.',
    minimum: -10,
    maximum: 10,
    default: 0,
    example: 0,
  })
  @IsOptional()
  @IsInt()
  @Min(-10)
  @Max(10)
  priority?: number;
}

export class TargetDto {
  @ApiProperty({ minLength: 1, maxLength: TARGET_ID_MAX_LENGTH, example: 'user-42' })
  id: string;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    description:
      "The target's data, given to the action (the `http` action sends it as the request body); at most " +
      'BULK_JOBS_MAX_TARGET_DATA_BYTES (16,384 by default) as JSON.',
    example: { email: 'a@example.com' },
  })
  data?: Record<string, unknown>;
}

// TargetDto is only referenced from inside a oneOf, which the schema scanner does not follow.
@ApiExtraModels(TargetDto)
export class CreateBulkJobDto {
  @ApiProperty({ description: 'A registered action (GET /api/actions/bulk/actions).', example: 'noop' })
  @IsString()
  @Matches(/^[a-z][a-z0-9_.-]{0,63}$/, { message: 'action must be a registered action name' })
  action: string;

  @ApiProperty({
    description: `The targets: string ids (1–${TARGET_ID_MAX_LENGTH} characters) or { id, data } objects. One item is created per target, in this order.`,
    type: 'array',
    items: {
      oneOf: [
        { type: 'string', minLength: 1, maxLength: TARGET_ID_MAX_LENGTH },
        { $ref: getSchemaPath(TargetDto) },
      ],
    },
    example: ['user-1', 'user-2', { id: 'user-3', data: { note: 'vip' } }],
  })
  @IsArray()
  @IsTargetList()
  targets: TargetInput[];

  @ApiPropertyOptional({
    description:
      "The action's parameters, validated against its JSON schema (GET /api/actions/bulk/actions); at most " +
      'BULK_JOBS_MAX_PARAMS_BYTES (65,536 by default) as JSON. Credential headers of the `http` action are ' +
      'shown redacted in every response.',
    type: 'object',
    additionalProperties: true,
    example: {},
  })
  @IsOptional()
  @IsObject()
  params?: Record<string, unknown>;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: { type: 'string', maxLength: 255 },
    description: LABELS_DESCRIPTION,
    example: { team: 'billing', campaign: 'spring-2026' },
  })
  @IsOptional()
  @IsLabels()
  labels?: Record<string, string>;

  @ApiPropertyOptional({ type: () => JobOptionsDto })
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => JobOptionsDto)
  options?: JobOptionsDto;
}

/** The first line of a streamed (application/x-ndjson) create: the job without its targets. */
export class CreateBulkJobSpecDto extends OmitType(CreateBulkJobDto, ['targets'] as const) {}
