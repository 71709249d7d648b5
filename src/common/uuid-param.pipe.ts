import { Injectable, type PipeTransform } from '@nestjs/common';
import { ValidationFailedError } from './problem-details/domain-error';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A path id must be a UUID; anything else is a 400 naming the parameter. */
@Injectable()
export class ParseUuidParamPipe implements PipeTransform<string, string> {
  transform(value: string): string {
    if (typeof value !== 'string' || !UUID_RE.test(value)) {
      throw new ValidationFailedError({ id: 'must be a UUID' }, 'The path parameter "id" must be a UUID.');
    }
    return value.toLowerCase();
  }
}
