import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const MIN_SECRET_LENGTH = 32;

/**
 * A random secret kept in `name` under `dataDir` for development: created
 * once (mode 0600, in a 0700 folder), then read by every later process, so
 * that the server and the tools that share it (`npm run token`) agree.
 */
export function developmentSecret(dataDir: string, name: string): string {
  const dir = resolve(dataDir);
  const file = join(dir, name);
  const existing = readSecret(file);
  if (existing !== undefined) return existing;

  // Private: it holds secrets (the embedded PostgreSQL run as root keeps its data elsewhere).
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(48).toString('base64url');
  // Written in full to a private temporary file and then linked into place, so
  // that processes starting together never read a half-written file, and the
  // first one to link wins.
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
  // A short secret would make what it signs forgeable; refuse it rather than sign with it.
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new Error(
      `${file} holds a secret shorter than ${MIN_SECRET_LENGTH} characters: delete the file to get a new one`,
    );
  }
  return secret;
}
