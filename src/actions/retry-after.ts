/**
 * Milliseconds to wait according to a Retry-After header (RFC 9110 §10.2.3):
 * either delay-seconds or an HTTP-date. Undefined when absent or unreadable;
 * a date in the past is 0.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (v === '') return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP-date always names a weekday and a time; a bare number or word is not one.
  if (!/^[A-Za-z]{3},? /.test(v) || !/\d{1,2}:\d{2}:\d{2}/.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
