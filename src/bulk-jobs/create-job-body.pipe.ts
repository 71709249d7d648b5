import { Injectable, type ArgumentMetadata, type PipeTransform } from '@nestjs/common';
import { Readable } from 'node:stream';
import { ValidationFailedError } from '../common/problem-details/domain-error';
import { createValidationPipe } from '../common/validation';
import { MAX_JSON_DEPTH, nestsDeeperThan, TOO_DEEP } from '../common/json-depth';
import { CreateBulkJobDto } from './dto/create-bulk-job.dto';

/**
 * The create body is either JSON, validated here like every other body, or an
 * NDJSON stream that the ingest service reads and validates line by line.
 */
@Injectable()
export class CreateJobBodyPipe implements PipeTransform<unknown, Promise<CreateBulkJobDto | Readable>> {
  private readonly validation = createValidationPipe();

  async transform(value: unknown, metadata: ArgumentMetadata): Promise<CreateBulkJobDto | Readable> {
    if (value instanceof Readable) return value;
    if (nestsDeeperThan(value, MAX_JSON_DEPTH)) {
      throw new ValidationFailedError({ body: TOO_DEEP });
    }
    return (await this.validation.transform(value, {
      ...metadata,
      metatype: CreateBulkJobDto,
    })) as CreateBulkJobDto;
  }
}
