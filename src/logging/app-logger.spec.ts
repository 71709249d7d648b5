import { Logger } from '@nestjs/common';
import { expect } from 'expect';
import { describe, it } from 'node:test';
import { loadEnv } from '../config/env';
import { createAppLogger, usePrettyLogs } from './app-logger';

function capture(level = 'verbose') {
  const lines: Record<string, unknown>[] = [];
  const logger = createAppLogger(loadEnv({ LOG_LEVEL: level, LOG_FORMAT: 'json' }), {
    write: (chunk: string) => {
      for (const line of chunk.split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return { logger, lines };
}

describe('AppLogger', () => {
  it("maps Nest's levels to pino's and keeps the context as a field", () => {
    const { logger, lines } = capture();
    logger.log('hello', 'Main');
    logger.verbose('details', 'Worker');
    logger.fatal('gone');
    expect(lines).toEqual([
      expect.objectContaining({ level: 'info', msg: 'hello', context: 'Main' }),
      expect.objectContaining({ level: 'trace', msg: 'details', context: 'Worker' }),
      expect.objectContaining({ level: 'fatal', msg: 'gone' }),
    ]);
  });

  it('keeps the stack Nest passes with an error apart from the message', () => {
    const { logger, lines } = capture();
    const err = new Error('boom');
    logger.error('request failed', err.stack, 'ProblemDetails');
    expect(lines[0]).toMatchObject({ level: 'error', msg: 'request failed', context: 'ProblemDetails' });
    expect(String(lines[0].stack)).toContain('at ');
    logger.error(err);
    expect(lines[1]).toMatchObject({
      level: 'error',
      msg: 'boom',
      err: expect.objectContaining({ message: 'boom' }),
    });
  });

  it('writes the fields of a structured message', () => {
    const { logger, lines } = capture();
    logger.log({ msg: 'job finished', jobId: 'j1', status: 'completed' }, 'Engine');
    expect(lines[0]).toMatchObject({
      msg: 'job finished',
      jobId: 'j1',
      status: 'completed',
      context: 'Engine',
    });
  });

  it('leaves out what is below LOG_LEVEL', () => {
    const { logger, lines } = capture('warn');
    logger.log('quiet');
    logger.debug('quieter');
    logger.warn('loud');
    expect(lines.map((l) => l.msg)).toEqual(['loud']);
  });

  it('never writes an authorization header or a token field', () => {
    const { logger, lines } = capture();
    logger.log({ msg: 'x', headers: { authorization: 'Bearer abc.def.ghi' }, token: 'abc.def.ghi' });
    expect(JSON.stringify(lines)).not.toContain('abc.def.ghi');
  });

  it('is what a Nest Logger writes to once it is the override', () => {
    const { logger, lines } = capture();
    Logger.overrideLogger(logger);
    try {
      new Logger('Somewhere').warn('careful');
    } finally {
      Logger.overrideLogger(['error', 'fatal']);
    }
    expect(lines[0]).toMatchObject({ level: 'warn', msg: 'careful', context: 'Somewhere' });
    expect(lines[0].params).toBeUndefined();
  });
});

describe('usePrettyLogs', () => {
  const env = (LOG_FORMAT: string, NODE_ENV = 'development') =>
    loadEnv({ LOG_FORMAT, NODE_ENV, AUTH_JWT_SECRET: 'x'.repeat(32) });
  it('is pretty on a terminal outside production, JSON elsewhere', () => {
    expect(usePrettyLogs(env('auto'), true)).toBe(true);
    expect(usePrettyLogs(env('auto'), false)).toBe(false);
    expect(usePrettyLogs(env('auto', 'production'), true)).toBe(false);
  });
  it('follows LOG_FORMAT when it is set', () => {
    expect(usePrettyLogs(env('json'), true)).toBe(false);
    expect(usePrettyLogs(env('pretty', 'production'), false)).toBe(true);
  });
});
