import { ValidationPipe, type ArgumentMetadata, type ValidationError } from '@nestjs/common';
import { expect } from 'expect';
import { describe, it } from 'node:test';
import { ListItemsQueryDto, ListJobsQueryDto } from '../bulk-jobs/dto/list-query.dto';
import { ValidationFailedError } from './problem-details/domain-error';
import { createValidationPipe, flattenValidationErrors } from './validation';

function error(
  property: string,
  constraints?: Record<string, string>,
  children: ValidationError[] = [],
): ValidationError {
  return { property, constraints, children };
}

describe('flattenValidationErrors', () => {
  it('keys nested fields with dots', () => {
    const details = flattenValidationErrors([
      error('action', { isString: 'action must be a string' }),
      error('options', undefined, [
        error('max_attempts', { max: 'max_attempts must not be greater than 25' }),
      ]),
    ]);
    expect(details).toEqual({
      action: 'action must be a string',
      'options.max_attempts': 'max_attempts must not be greater than 25',
    });
  });

  it('joins distinct messages and says a repeated one once', () => {
    const details = flattenValidationErrors([
      error('limit', { min: 'limit must be a positive integer', isInt: 'limit must be a positive integer' }),
      error('action', {
        isString: 'action must be a string',
        matches: 'action must be a registered action name',
      }),
    ]);
    expect(details.limit).toBe('limit must be a positive integer');
    expect(details.action).toBe('action must be a string; action must be a registered action name');
  });

  it('says that an unknown field is not known', () => {
    expect(
      flattenValidationErrors([
        error('priority', { whitelistValidation: 'property priority should not exist' }),
      ]),
    ).toEqual({
      priority: 'is not a known field',
    });
  });
});

describe('the global validation pipe on the values it leaves as they are', () => {
  const pipe = createValidationPipe();
  const plain = new ValidationPipe({ transform: true });
  const cases: [unknown, ArgumentMetadata][] = [
    [
      { sub: 'alice', scopes: ['bulk-jobs:read'] },
      { type: 'custom', metatype: Object },
    ],
    ['0b5f2f3c-3f7e-4f7a-9d9e-4c1d2e3f4a5b', { type: 'param', metatype: String, data: 'id' }],
  ];

  it("returns a custom decorator's value and a string path parameter without a promise, as ValidationPipe does", async () => {
    for (const [value, metadata] of cases) {
      const result: unknown = pipe.transform(value, metadata);
      expect(result).not.toBeInstanceOf(Promise);
      expect(result).toBe(await plain.transform(value, metadata));
    }
  });

  it('still converts a path parameter typed as a number', async () => {
    expect(await pipe.transform('7', { type: 'param', metatype: Number, data: 'n' })).toBe(7);
  });
});

describe('the global validation pipe on list queries', () => {
  const pipe = createValidationPipe();
  const transform = (
    value: Record<string, string>,
    metatype: typeof ListJobsQueryDto | typeof ListItemsQueryDto = ListJobsQueryDto,
  ) => pipe.transform(value, { type: 'query', metatype }) as Promise<ListJobsQueryDto>;

  async function detailsOf(value: Record<string, string>): Promise<Record<string, string>> {
    try {
      await transform(value);
    } catch (err) {
      if (err instanceof ValidationFailedError) return err.details;
      throw err;
    }
    throw new Error(`${JSON.stringify(value)} was accepted`);
  }

  it('turns a plain positive integer limit into a number', async () => {
    expect((await transform({ limit: '1' })).limit).toBe(1);
    expect((await transform({ limit: '500' })).limit).toBe(500);
    expect((await transform({ limit: '007' })).limit).toBe(7);
  });

  it('accepts a limit far above the maximum (it is lowered later, not refused)', async () => {
    expect((await transform({ limit: '10000000000' })).limit).toBeGreaterThan(500);
    expect((await transform({ limit: '9'.repeat(400) })).limit).toBe(Number.MAX_SAFE_INTEGER);
  });

  for (const limit of ['0', '-1', '1.5', 'abc', '1e3', '', ' 5', '10abc', '0x10']) {
    it(`refuses limit=${JSON.stringify(limit)} with one clear message`, async () => {
      expect(await detailsOf({ limit })).toEqual({ limit: 'limit must be a positive integer' });
    });
  }

  it('accepts show_deleted only as true or false', async () => {
    expect((await transform({ show_deleted: 'true' })).show_deleted).toBe(true);
    expect((await transform({ show_deleted: 'false' })).show_deleted).toBe(false);
    for (const show_deleted of ['1', 'yes', 'TRUE', '']) {
      expect(await detailsOf({ show_deleted })).toEqual({ show_deleted: expect.any(String) as unknown });
    }
  });

  it('refuses unknown statuses and unknown parameters', async () => {
    expect(Object.keys(await detailsOf({ status: 'done' }))).toEqual(['status']);
    expect(Object.keys(await detailsOf({ status: 'succeeded' }))).toEqual(['status']);
    expect(await detailsOf({ sort: 'asc' })).toEqual({ sort: 'is not a known field' });
    await expect(transform({ status: 'succeeded' }, ListItemsQueryDto)).resolves.toMatchObject({
      status: 'succeeded',
    });
  });
});
