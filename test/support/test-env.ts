import { loadEnv, type Env } from '../../src/config/env';

export const TEST_JWT_SECRET = 'test-secret-for-e2e-only-0123456789abcdef';

export function testDatabaseUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('TEST_DATABASE_URL is not set: run the suite with `npm test`');
  // Guard: never run against a database whose name does not say it is for tests.
  const name = new URL(url).pathname.slice(1);
  if (!/test/i.test(name)) throw new Error(`refusing to run tests against database "${name}"`);
  return url;
}

/** The validated env the app boots with in tests; overrides win. */
export function testEnv(overrides: Record<string, string> = {}): Env {
  return loadEnv({
    NODE_ENV: 'test',
    DATABASE_URL: testDatabaseUrl(),
    DATA_DIR: process.env.TEST_DATA_DIR ?? '.data',
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: 'error',
    DATABASE_POOL_SIZE: '5',
    ...overrides,
  });
}
