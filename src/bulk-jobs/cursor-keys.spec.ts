import { expect } from 'expect';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CursorCodec } from '../common/pagination/cursor';
import { loadEnv } from '../config/env';
import { StartupError } from '../config/startup-error';
import { resolveCursorKeys } from './cursor-keys';

const JWT_SECRET = 'a-jwt-secret-that-is-long-enough-0123456789';
const CURSOR_SECRET = 'a-cursor-secret-that-is-long-enough-98765';
const JWKS = { AUTH_JWKS_URL: 'https://issuer.example/jwks.json' };

describe('resolveCursorKeys', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'cursor-keys-'));
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('uses CURSOR_SECRET, and CURSOR_SECRET_PREVIOUS for verification only', () => {
    const keys = resolveCursorKeys(
      loadEnv({ CURSOR_SECRET, CURSOR_SECRET_PREVIOUS: JWT_SECRET, AUTH_JWT_SECRET: JWT_SECRET }),
    );
    expect(keys.current.toString()).toBe(CURSOR_SECRET);
    expect(keys.previous?.toString()).toBe(JWT_SECRET);
  });

  it('derives the same key from AUTH_JWT_SECRET in every process, and not the secret itself', () => {
    const a = resolveCursorKeys(loadEnv({ AUTH_JWT_SECRET: JWT_SECRET, DATA_DIR: tempDir() }));
    const b = resolveCursorKeys(loadEnv({ AUTH_JWT_SECRET: JWT_SECRET, DATA_DIR: tempDir() }));
    expect(a.current.equals(b.current)).toBe(true);
    expect(a.current).toHaveLength(32);
    expect(a.current.equals(Buffer.from(JWT_SECRET))).toBe(false);
    expect(a.previous).toBeUndefined();
    // One process issues, another verifies.
    const cursor = new CursorCodec(a).encode('jobs', {}, [1]);
    expect(new CursorCodec(b).decode(cursor, 'jobs', {})).toEqual([1]);
    const other = resolveCursorKeys(loadEnv({ AUTH_JWT_SECRET: `${JWT_SECRET}x` }));
    expect(other.current.equals(a.current)).toBe(false);
  });

  it('in development with JWKS alone, keeps a secret of its own under DATA_DIR', () => {
    const dir = tempDir();
    const first = resolveCursorKeys(loadEnv({ ...JWKS, DATA_DIR: dir }));
    expect(readdirSync(dir)).toEqual(['cursor-secret']);
    expect(resolveCursorKeys(loadEnv({ ...JWKS, DATA_DIR: dir })).current.equals(first.current)).toBe(true);
  });

  it('refuses production with JWKS alone, naming CURSOR_SECRET, and writes nothing', () => {
    const dir = tempDir();
    const env = loadEnv({ NODE_ENV: 'production', ...JWKS, DATA_DIR: dir });
    expect(() => resolveCursorKeys(env)).toThrow(StartupError);
    expect(() => resolveCursorKeys(env)).toThrow(/^CURSOR_SECRET must be set/);
    expect(existsSync(join(dir, 'cursor-secret'))).toBe(false);
  });
});
