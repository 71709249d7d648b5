import type { Env } from './env';

export const CURSOR_SECRET_REQUIRED =
  'CURSOR_SECRET must be set: list cursors are signed with it, and without AUTH_JWT_SECRET there is no ' +
  'secret that every API process shares to derive it from (set the same value of 32 bytes or more on each).';

/**
 * What makes the settings of an API process unsafe with NODE_ENV=production:
 * one sentence per problem, each naming the setting that fixes it. A worker
 * process verifies no token and serves no cursor, and its /metrics is always
 * on a port of its own (METRICS_PORT), so nothing here applies to it.
 */
export function unsafeApiSettings(env: Env): string[] {
  if (env.NODE_ENV !== 'production') return [];
  const problems: string[] = [];
  if (env.AUTH_JWKS_URL) {
    if (!/^https:\/\//i.test(env.AUTH_JWKS_URL)) {
      problems.push(
        'AUTH_JWKS_URL must be an https:// URL: keys fetched over plain HTTP can be replaced on the way, and with them every token.',
      );
    }
    const missing = (['AUTH_JWT_ISSUER', 'AUTH_JWT_AUDIENCE'] as const).filter((name) => !env[name]);
    if (missing.length > 0) {
      problems.push(
        `${missing.join(' and ')} must be set with AUTH_JWKS_URL: without them, a token that key server ` +
          'signed for any other service or issuer is accepted here.',
      );
    }
  }
  if (env.METRICS_PORT === 0 && !env.METRICS_TOKEN) {
    problems.push(
      'METRICS_TOKEN must be set, or METRICS_PORT, to serve /metrics on a port of its own: otherwise ' +
        'anyone who can reach the API reads its metrics.',
    );
  }
  if (!env.CURSOR_SECRET && !env.AUTH_JWT_SECRET) problems.push(CURSOR_SECRET_REQUIRED);
  return problems;
}
