import { timingSafeEqual } from 'node:crypto';

/**
 * True when METRICS_TOKEN is unset (metrics are public) or the Authorization
 * header carries it as a bearer token. Compared in constant time.
 */
export function metricsAuthorized(expected: string | undefined, authorization: string | undefined): boolean {
  if (!expected) return true;
  const match = typeof authorization === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
  if (!match) return false;
  const given = Buffer.from(match[1]);
  const wanted = Buffer.from(expected);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}
