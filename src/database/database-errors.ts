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
