import type { Env } from '../config/env';
import { developmentSecret } from '../config/secret-file';

const SECRET_FILE = 'jwt-secret';

/**
 * Whether the server signs with the secret it generated itself (development,
 * neither AUTH_JWT_SECRET nor AUTH_JWKS_URL set). Only then may it hand out
 * development tokens: with a configured key, tokens come from their issuer.
 */
export function usesGeneratedSecret(
  env: Pick<Env, 'NODE_ENV' | 'AUTH_JWT_SECRET' | 'AUTH_JWKS_URL'>,
): boolean {
  return env.NODE_ENV !== 'production' && !env.AUTH_JWT_SECRET && !env.AUTH_JWKS_URL;
}

/**
 * The HS256 secret: AUTH_JWT_SECRET when set; in development, a random secret
 * created once under DATA_DIR (so `npm run token` signs with the same one);
 * undefined when only JWKS is configured, and always in production.
 */
export function resolveJwtSecret(env: Env): string | undefined {
  if (env.AUTH_JWT_SECRET) return env.AUTH_JWT_SECRET;
  if (env.AUTH_JWKS_URL || env.NODE_ENV === 'production') return undefined;
  return developmentSecret(env.DATA_DIR, SECRET_FILE);
}
