import type { Env } from '../config/env';
import { developmentSecret } from '../config/secret-file';

const SECRET_FILE = 'jwt-secret';

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
