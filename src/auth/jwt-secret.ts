import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Env } from '../config/env';

const SECRET_FILE = 'jwt-secret';

/**
 * The HS256 secret: AUTH_JWT_SECRET when set; in development, a random secret
 * created once under DATA_DIR (so `npm run token` signs with the same one);
 * undefined when only JWKS is configured.
 */
export function resolveJwtSecret(env: Env): string | undefined {
  if (env.AUTH_JWT_SECRET) return env.AUTH_JWT_SECRET;
  if (env.AUTH_JWKS_URL || env.NODE_ENV === 'production') return undefined;
  const dir = resolve(env.DATA_DIR);
  const file = join(dir, SECRET_FILE);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const secret = randomBytes(48).toString('base64url');
  try {
    writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    return secret;
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as { code?: string }).code === 'EEXIST') return readFileSync(file, 'utf8').trim();
    throw err;
  }
}
