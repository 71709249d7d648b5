import { expect } from 'expect';
import { describe, it } from 'node:test';
import { loadEnv } from './env';
import { unsafeApiSettings } from './production';

const SECRET = 'a-secret-that-is-long-enough-0123456789';
const JWKS = {
  AUTH_JWKS_URL: 'https://issuer.example/jwks.json',
  AUTH_JWT_ISSUER: 'https://issuer.example/',
  AUTH_JWT_AUDIENCE: 'bulk-jobs',
};
const SAFE = {
  NODE_ENV: 'production',
  ...JWKS,
  METRICS_TOKEN: 'a-metrics-token-0123',
  CURSOR_SECRET: SECRET,
};
const problems = (env: Record<string, string>) => unsafeApiSettings(loadEnv(env));

describe('unsafeApiSettings', () => {
  it('finds nothing in safe production settings, nor outside production', () => {
    expect(problems(SAFE)).toEqual([]);
    expect(problems({ NODE_ENV: 'production', AUTH_JWT_SECRET: SECRET, METRICS_PORT: '9464' })).toEqual([]);
    expect(problems({ AUTH_JWKS_URL: 'http://127.0.0.1:1/jwks.json' })).toEqual([]);
  });

  it('names each unsafe setting in a sentence of its own', () => {
    const found = problems({
      NODE_ENV: 'production',
      AUTH_JWKS_URL: 'http://issuer.example/jwks.json',
    });
    expect(found).toHaveLength(4);
    expect(found[0]).toMatch(/^AUTH_JWKS_URL must be an https:\/\/ URL/);
    expect(found[1]).toMatch(/^AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE must be set with AUTH_JWKS_URL/);
    expect(found[2]).toMatch(/^METRICS_TOKEN must be set, or METRICS_PORT/);
    expect(found[3]).toMatch(/^CURSOR_SECRET must be set/);
    for (const line of found) expect(line).not.toContain('\n');
  });

  it('wants the audience alone when the issuer is set, and a cursor secret only without AUTH_JWT_SECRET', () => {
    expect(problems({ ...SAFE, AUTH_JWT_AUDIENCE: '' })).toEqual([
      expect.stringMatching(/^AUTH_JWT_AUDIENCE must be set with AUTH_JWKS_URL/),
    ]);
    expect(problems({ ...SAFE, CURSOR_SECRET: '', AUTH_JWT_SECRET: SECRET })).toEqual([]);
  });
});
