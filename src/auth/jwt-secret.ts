import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Env } from '../config/env';

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
const MIN_SECRET_LENGTH = 32;

/**
 * The HS256 secret: AUTH_JWT_SECRET when set; in development, a random secret
 * created once under DATA_DIR (so `npm run token` signs with the same one);
 * undefined when only JWKS is configured, and always in production.
 */
export function resolveJwtSecret(env: Env): string | undefined {
  if (env.AUTH_JWT_SECRET) return env.AUTH_JWT_SECRET;
  if (env.AUTH_JWKS_URL || env.NODE_ENV === 'production') return undefined;
  const dir = resolve(env.DATA_DIR);
  const file = join(dir, SECRET_FILE);
  const existing = readSecret(file);
  if (existing !== undefined) return existing;

  // Private: it holds secrets (the embedded PostgreSQL run as root keeps its data elsewhere).
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(48).toString('base64url');
  // Written in full to a private temporary file and then linked into place, so
  // that the server and `npm run token` starting together never read a
  // half-written file, and the first one to link wins.
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(tmp, file);
    return secret;
  } catch (err) {
    if ((err as { code?: string }).code !== 'EEXIST') throw err;
    const theirs = readSecret(file);
    if (theirs === undefined) throw err;
    return theirs;
  } finally {
    unlinkSync(tmp);
  }
}

function readSecret(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err;
  }
  const secret = text.trim();
  // A short secret would make every token forgeable; refuse it rather than sign with it.
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new Error(
      `${file} holds a secret shorter than ${MIN_SECRET_LENGTH} characters: delete the file to get a new one`,
    );
  }
  return secret;
}
