import { expect } from 'expect';
import { describe, it } from 'node:test';
import { loggableMessage, loggableStack } from './database-errors';

/** An error as node-postgres builds it: the message PostgreSQL sent, and its SQLSTATE. */
function pgError(code: string, message: string): Error {
  return Object.assign(new Error(message), { name: 'error', code, severity: 'ERROR' });
}

describe('loggableMessage', () => {
  it('names the SQLSTATE, and takes out the values PostgreSQL quotes in data and integrity errors', () => {
    expect(loggableMessage(pgError('22P02', 'invalid input syntax for type integer: "Bearer s3cr3t"'))).toBe(
      'database error 22P02: invalid input syntax for type integer: "…"',
    );
    expect(loggableMessage(pgError('22003', 'value "2147483648" is out of range for type integer'))).toBe(
      'database error 22003: value "…" is out of range for type integer',
    );
    expect(loggableMessage(pgError('23505', 'duplicate key value violates unique constraint "x_pkey"'))).toBe(
      'database error 23505: duplicate key value violates unique constraint "…"',
    );
    // A quote doubled inside the value does not end it early.
    expect(loggableMessage(pgError('22P02', 'invalid input syntax for type uuid: "a""b c"'))).toBe(
      'database error 22P02: invalid input syntax for type uuid: "…"',
    );
  });

  it('keeps identifiers in other messages, which quote no value', () => {
    expect(loggableMessage(pgError('42P01', 'relation "bulk_jobs" does not exist'))).toBe(
      'database error 42P01: relation "bulk_jobs" does not exist',
    );
  });

  it('finds the driver error that TypeORM wraps, and leaves other errors as they are', () => {
    const wrapped = Object.assign(new Error('invalid input syntax for type json'), {
      driverError: pgError('22P02', 'invalid input syntax for type json: "{secret"'),
      parameters: ['{secret'],
    });
    expect(loggableMessage(wrapped)).toBe('database error 22P02: invalid input syntax for type json: "…"');
    expect(loggableMessage(new Error('connect ECONNREFUSED 127.0.0.1:5432'))).toBe(
      'connect ECONNREFUSED 127.0.0.1:5432',
    );
    expect(loggableMessage('a string')).toBe('a string');
  });
});

describe('loggableStack', () => {
  it('keeps the frames and replaces the first line, which repeats the message', () => {
    const err = pgError('22003', 'value "99999999999" is out of range for type integer');
    const stack = loggableStack(err);
    expect(stack).not.toContain('99999999999');
    expect(stack.split('\n')[0]).toBe(
      'error: database error 22003: value "…" is out of range for type integer',
    );
    expect(stack).toMatch(/\n {4}at /);
  });
});
