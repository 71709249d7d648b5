import type { LoggerService } from '@nestjs/common';
import pino, { type DestinationStream, type Level, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { Env } from '../config/env';

/** LOG_LEVEL (Nest's names) to pino's levels. */
const PINO_LEVEL: Record<Env['LOG_LEVEL'], Level> = {
  fatal: 'fatal',
  error: 'error',
  warn: 'warn',
  log: 'info',
  debug: 'debug',
  verbose: 'trace',
};

/**
 * Header and field names whose values are credentials: never written, whatever
 * a caller passes to the logger.
 */
const REDACTED_PATHS = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'request.headers.authorization',
  'token',
  'headers.cookie',
  'req.headers.cookie',
];

/** Pretty output when asked for, or by default on a terminal outside production. */
export function usePrettyLogs(
  env: Pick<Env, 'LOG_FORMAT' | 'NODE_ENV'>,
  isTty = process.stdout.isTTY,
): boolean {
  if (env.LOG_FORMAT === 'pretty') return true;
  if (env.LOG_FORMAT === 'json') return false;
  return Boolean(isTty) && env.NODE_ENV !== 'production';
}

/**
 * The process's pino logger: one JSON object a line on stdout (ISO time,
 * level as a name), or readable lines on a terminal in development.
 * `destination` replaces stdout (tests capture lines with it).
 */
export function createPino(
  env: Pick<Env, 'LOG_LEVEL' | 'LOG_FORMAT' | 'NODE_ENV'>,
  destination?: DestinationStream,
): Logger {
  const options: pino.LoggerOptions = {
    level: PINO_LEVEL[env.LOG_LEVEL],
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  if (destination) return pino(options, destination);
  if (usePrettyLogs(env)) {
    return pino(
      options,
      pretty({
        colorize: true,
        sync: true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,context',
        messageFormat: (log, key) =>
          typeof log.context === 'string' ? `[${log.context}] ${String(log[key])}` : String(log[key]),
      }),
    );
  }
  // Asynchronous writes; pino flushes what is buffered when the process exits.
  return pino(options, pino.destination({ dest: 1, sync: false }));
}

/** A message with structured fields: `logger.log({ msg: 'job finished', jobId, status })`. */
export interface LogRecord {
  msg: string;
  [field: string]: unknown;
}

const STACK_LIKE = /\n\s+at /;

function isLogRecord(value: unknown): value is LogRecord {
  return typeof value === 'object' && value !== null && typeof (value as { msg?: unknown }).msg === 'string';
}

/**
 * Nest's LoggerService on pino, so that the framework's own lines (start-up,
 * routes, errors) are JSON like ours. Nest passes the context (the logger's
 * name) as the last argument and, for errors, a stack before it.
 */
export class AppLogger implements LoggerService {
  constructor(readonly pino: Logger) {}

  log(message: unknown, ...params: unknown[]): void {
    this.write('info', message, params);
  }

  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params);
  }

  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }

  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }

  verbose(message: unknown, ...params: unknown[]): void {
    this.write('trace', message, params);
  }

  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }

  private write(level: Level, message: unknown, params: unknown[]): void {
    if (!this.pino.isLevelEnabled(level)) return;
    // Nest pads a call without parameters with `undefined` before the context.
    const rest = params.filter((p) => p !== undefined);
    const fields: Record<string, unknown> = {};
    const last = rest[rest.length - 1];
    if (typeof last === 'string' && !STACK_LIKE.test(last)) {
      fields.context = last;
      rest.pop();
    }
    const stack = rest.findIndex((p) => typeof p === 'string' && STACK_LIKE.test(p));
    if (stack >= 0) {
      fields.stack = rest[stack];
      rest.splice(stack, 1);
    }
    if (rest.length > 0) fields.params = rest;

    if (message instanceof Error) {
      this.pino[level]({ ...fields, err: message }, message.message);
    } else if (isLogRecord(message)) {
      const { msg, ...extra } = message;
      this.pino[level]({ ...extra, ...fields }, msg);
    } else if (typeof message === 'object' && message !== null) {
      this.pino[level]({ ...fields, data: message }, '');
    } else {
      this.pino[level](fields, String(message));
    }
  }
}

export function createAppLogger(
  env: Pick<Env, 'LOG_LEVEL' | 'LOG_FORMAT' | 'NODE_ENV'>,
  destination?: DestinationStream,
): AppLogger {
  return new AppLogger(createPino(env, destination));
}
