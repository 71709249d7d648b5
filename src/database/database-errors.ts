// SQLSTATE classes and driver codes that mean "the database is not there right
// now", as opposed to "this statement is wrong".
const UNAVAILABLE_SQLSTATES = new Set([
  '08000',
  '08001',
  '08003',
  '08004',
  '08006', // connection exceptions
  '57P01',
  '57P02',
  '57P03', // admin shutdown, crash shutdown, cannot connect now
  '53300', // too many connections
]);
const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
]);
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'Connection terminated unexpectedly',
  'Driver not Connected',
  // The client's query_timeout (src/engine/engine-pool.ts): no answer, as from a host cut off.
  'Query read timeout',
];

/** The error and the driver errors and causes it wraps (TypeORM's QueryFailedError wraps pg's). */
function* chainOf(err: unknown): Generator<{ code?: unknown; message?: unknown }> {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    yield e;
    const { driverError, cause } = e as { driverError?: unknown; cause?: unknown };
    e = driverError ?? cause;
  }
}

export function isDatabaseUnavailable(err: unknown): boolean {
  for (const { code, message } of chainOf(err)) {
    if (typeof code === 'string' && (UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_NODE_CODES.has(code))) {
      return true;
    }
    if (typeof message === 'string' && UNAVAILABLE_MESSAGES.some((m) => message.includes(m))) {
      return true;
    }
  }
  return false;
}

/** lock_not_available (55P03): a lock_timeout ran out, or NOWAIT found the row locked. */
export function isLockNotAvailable(err: unknown): boolean {
  for (const { code } of chainOf(err)) if (code === '55P03') return true;
  return false;
}

/** SQLSTATE classes whose messages quote a statement's values: data exceptions, integrity violations. */
const VALUE_QUOTING_CLASSES = new Set(['22', '23']);
const SQLSTATE = /^[0-9A-Z]{5}$/;
const QUOTED = /"(?:[^"]|"")*"/g;

/**
 * The message of `err` as a log line may carry it. PostgreSQL quotes the
 * value it refused (`invalid input syntax for type integer: "…"`, `value
 * "2147483648" is out of range`): logged as it is, a statement's parameter
 * (a client's params, a credential) would be in the log. A database error is
 * logged with its SQLSTATE, and, for the classes that quote values, with
 * every quoted part replaced; identifiers in other messages stay.
 */
export function loggableMessage(err: unknown): string {
  for (const e of chainOf(err)) {
    const { code, message } = e;
    if (typeof code !== 'string' || !SQLSTATE.test(code) || typeof message !== 'string') continue;
    const text = VALUE_QUOTING_CLASSES.has(code.slice(0, 2)) ? message.replace(QUOTED, '"…"') : message;
    return `database error ${code}: ${text}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The stack of `err` for a log line: its first line, which repeats the message, as loggableMessage has it. */
export function loggableStack(err: unknown): string {
  if (!(err instanceof Error) || typeof err.stack !== 'string') return loggableMessage(err);
  const frames = err.stack.indexOf('\n    at ');
  return `${err.name}: ${loggableMessage(err)}${frames < 0 ? '' : err.stack.slice(frames)}`;
}
