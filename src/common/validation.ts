import {
  ValidationPipe,
  type ArgumentMetadata,
  type PipeTransform,
  type ValidationError,
} from '@nestjs/common';
import { Readable } from 'node:stream';
import { MAX_JSON_DEPTH, nestsDeeperThan, TOO_DEEP } from './json-depth';
import { ValidationFailedError } from './problem-details/domain-error';

/** Flattens class-validator errors into `{ "options.max_attempts": "…" }`. */
export function flattenValidationErrors(errors: ValidationError[], prefix = ''): Record<string, string> {
  const details: Record<string, string> = {};
  for (const error of errors) {
    const key = prefix ? `${prefix}.${error.property}` : error.property;
    if (error.constraints) {
      const messages = Object.entries(error.constraints);
      // whitelist violations read better as "is not allowed" than as the raw message.
      const nonWhitelisted = messages.find(([name]) => name === 'whitelistValidation');
      // Several constraints may share one message (e.g. IsInt and Min on limit): say it once.
      details[key] = nonWhitelisted
        ? 'is not a known field'
        : [...new Set(messages.map(([, m]) => m))].join('; ');
    }
    if (error.children?.length) Object.assign(details, flattenValidationErrors(error.children, key));
  }
  return details;
}

/** A body the JSON parser made (an array or a plain object), not a stream left for its route to read. */
function isParsedJson(value: unknown): boolean {
  if (Array.isArray(value)) return true;
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * The ValidationPipe, for bodies nested no deeper than MAX_JSON_DEPTH:
 * class-transformer walks a body recursively, so a deeper one is refused
 * before it is transformed (a 400, not a stack overflow's 500).
 *
 * The values it returns as they are (a custom decorator's, such as the
 * principal, and a string path parameter typed as a string) are returned
 * without a promise: every request passes each of its parameters through this
 * pipe, and ValidationPipe.transform is an async function.
 */
class BoundedValidationPipe implements PipeTransform {
  constructor(private readonly validation: ValidationPipe) {}

  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    // As ValidationPipe has it without validateCustomDecorators (off here): a custom decorator's value
    // as it is; a param typed String as String(value), which is the value itself for a string.
    if (metadata.type === 'custom') return value;
    if (metadata.type === 'param' && metadata.metatype === String && typeof value === 'string') return value;
    if (metadata.type === 'body' && isParsedJson(value) && nestsDeeperThan(value, MAX_JSON_DEPTH)) {
      throw new ValidationFailedError({ body: TOO_DEEP });
    }
    // A body left as a stream (application/x-ndjson, read by the create route alone) is not a JSON
    // object: a route that wants one refuses it, and never lets class-transformer walk a stream.
    if (
      metadata.type === 'body' &&
      value instanceof Readable &&
      metadata.metatype &&
      metadata.metatype !== Object
    ) {
      value.resume();
      throw new ValidationFailedError({ body: 'must be a JSON object (Content-Type: application/json)' });
    }
    return this.validation.transform(value, metadata);
  }
}

export function createValidationPipe(): PipeTransform {
  return new BoundedValidationPipe(
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      forbidUnknownValues: true,
      transform: true,
      validateCustomDecorators: false,
      validationError: { target: false, value: false },
      exceptionFactory: (errors) => {
        const details = flattenValidationErrors(errors);
        if (Object.keys(details).length === 0) details.body = 'must be a JSON object';
        return new ValidationFailedError(details);
      },
    }),
  );
}
