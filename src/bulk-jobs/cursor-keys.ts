import { hkdfSync } from 'node:crypto';
import type { CursorKeys } from '../common/pagination/cursor';
import type { Env } from '../config/env';
import { CURSOR_SECRET_REQUIRED } from '../config/production';
import { developmentSecret } from '../config/secret-file';
import { StartupError } from '../config/startup-error';
import { resolveJwtSecret } from '../auth/jwt-secret';

/** Makes the key derived from the token secret a key of its own: a cursor is never a valid token MAC. */
const DERIVED_KEY_LABEL = 'bulk-action-jobs/cursor-hmac-sha256/v1';
/** Development with JWKS alone has no token secret to derive from: a secret of its own under DATA_DIR. */
const DEVELOPMENT_FILE = 'cursor-secret';

/**
 * The keys that sign and verify list cursors. Every API replica must have the
 * same ones, or a cursor from one would be refused by the next: CURSOR_SECRET
 * (with CURSOR_SECRET_PREVIOUS during a rotation), else a key derived with
 * HKDF from AUTH_JWT_SECRET, which the replicas already share; never a key
 * made up per process. In development without either, a secret under DATA_DIR.
 */
export function resolveCursorKeys(env: Env): CursorKeys {
  if (env.CURSOR_SECRET) {
    return {
      current: Buffer.from(env.CURSOR_SECRET, 'utf8'),
      previous: env.CURSOR_SECRET_PREVIOUS ? Buffer.from(env.CURSOR_SECRET_PREVIOUS, 'utf8') : undefined,
    };
  }
  const base =
    resolveJwtSecret(env) ??
    (env.NODE_ENV === 'production' ? undefined : developmentSecret(env.DATA_DIR, DEVELOPMENT_FILE));
  if (base === undefined) throw new StartupError(CURSOR_SECRET_REQUIRED);
  return { current: Buffer.from(hkdfSync('sha256', base, '', DERIVED_KEY_LABEL, 32)) };
}
