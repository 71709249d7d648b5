import { expect } from 'expect';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadEnv } from '../config/env';
import { resolveJwtSecret } from './jwt-secret';

const SECRET = 'a-secret-that-is-long-enough-0123456789';

describe('resolveJwtSecret', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'jwt-secret-'));
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('uses AUTH_JWT_SECRET when it is set, and writes nothing', () => {
    const dir = tempDir();
    expect(resolveJwtSecret(loadEnv({ AUTH_JWT_SECRET: SECRET, DATA_DIR: dir }))).toBe(SECRET);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('in development, creates a random secret once, private to the owner, and reuses it', () => {
    const dir = join(tempDir(), 'nested', 'data');
    const env = loadEnv({ NODE_ENV: 'development', DATA_DIR: dir });
    const first = resolveJwtSecret(env);
    expect(typeof first).toBe('string');
    expect(first!.length).toBeGreaterThanOrEqual(32);

    const file = join(dir, 'jwt-secret');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe(first);
    expect(resolveJwtSecret(env)).toBe(first);
    expect(resolveJwtSecret(loadEnv({ NODE_ENV: 'development', DATA_DIR: dir }))).toBe(first);
    // No temporary files are left behind.
    expect(readdirSync(dir)).toEqual(['jwt-secret']);
  });

  it('gives each data directory its own secret', () => {
    const a = resolveJwtSecret(loadEnv({ DATA_DIR: tempDir() }));
    const b = resolveJwtSecret(loadEnv({ DATA_DIR: tempDir() }));
    expect(a).not.toBe(b);
  });

  it('reads a secret that another process wrote', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'jwt-secret'), `${SECRET}\n`, { mode: 0o600 });
    expect(resolveJwtSecret(loadEnv({ DATA_DIR: dir }))).toBe(SECRET);
  });

  it('refuses a secret file that holds too short a secret', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'jwt-secret'), '\n', { mode: 0o600 });
    expect(() => resolveJwtSecret(loadEnv({ DATA_DIR: dir }))).toThrow(/shorter than 32/);
  });

  it('returns undefined in production and writes nothing', () => {
    const dir = tempDir();
    const env = loadEnv({
      NODE_ENV: 'production',
      AUTH_JWKS_URL: 'https://issuer.example/jwks.json',
      DATA_DIR: dir,
    });
    expect(resolveJwtSecret(env)).toBeUndefined();
    // loadEnv refuses production without a key, so bypass it to check the rule itself.
    expect(
      resolveJwtSecret(Object.assign(loadEnv({ DATA_DIR: dir }), { NODE_ENV: 'production' as const })),
    ).toBeUndefined();
    expect(existsSync(join(dir, 'jwt-secret'))).toBe(false);
  });

  it('returns undefined when only JWKS is configured, and writes nothing', () => {
    const dir = tempDir();
    expect(
      resolveJwtSecret(loadEnv({ AUTH_JWKS_URL: 'http://127.0.0.1:1/jwks.json', DATA_DIR: dir })),
    ).toBeUndefined();
    expect(existsSync(join(dir, 'jwt-secret'))).toBe(false);
  });
});
