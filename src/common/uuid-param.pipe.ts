import { Injectable, type PipeTransform } from '@nestjs/common';
import { ValidationFailedError } from './problem-details/domain-error';
import { isUuid } from './uuid';

/** A path id must be a UUID; anything else is a 400 naming the parameter. */
@Injectable()
export class ParseUuidParamPipe implements PipeTransform<string, string> {
  transform(value: string): string {
    if (!isUuid(value)) {
      throw new ValidationFailedError({ id: 'must be a UUID' }, 'The path parameter "id" must be a UUID.');
    }
    return value.toLowerCase();
  }
}
