import { ValidationPipe, type ValidationError } from '@nestjs/common';
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

export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    transform: true,
    validationError: { target: false, value: false },
    exceptionFactory: (errors) => {
      const details = flattenValidationErrors(errors);
      if (Object.keys(details).length === 0) details.body = 'must be a JSON object';
      return new ValidationFailedError(details);
    },
  });
}
