import { expect } from 'expect';
import { describe, it } from 'node:test';
import { ConfigError, Env, loadEnv, maxExports, maxUploads, trustedProxies } from './env';

const SECRET = 'a-secret-that-is-long-enough-0123456789';

/** The ConfigError that loadEnv throws for this environment. */
function configError(source: NodeJS.ProcessEnv): ConfigError {
  try {
    loadEnv(source);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadEnv accepted ${JSON.stringify(source)}`);
}

describe('loadEnv', () => {
  it('gives the documented defaults for an empty environment', () => {
    const env = loadEnv({});
    expect(env).toBeInstanceOf(Env);
    expect(env).toMatchObject({
      NODE_ENV: 'development',
      PORT: 3000,
      HOST: '0.0.0.0',
      DATABASE_MIGRATIONS_RUN: true,
      DATABASE_POOL_SIZE: 10,
      DATA_DIR: '.data',
      EMBEDDED_PG_PORT: 54329,
      AUTH_JWKS_TIMEOUT_MS: 5000,
      BULK_JOBS_RETENTION_DAYS: 30,
      BULK_JOBS_MAX_INLINE_TARGETS: 100_000,
      BULK_JOBS_PURGE_INTERVAL_MS: 3_600_000,
      BODY_LIMIT_BYTES: 16 * 1024 * 1024,
      LOG_LEVEL: 'log',
      BULK_JOBS_MAX_PARAMS_BYTES: 65_536,
      BULK_JOBS_MAX_TARGET_DATA_BYTES: 16_384,
      BULK_JOBS_MAX_PAGE_BYTES: 4 * 1024 * 1024,
      RATE_LIMIT_PUBLIC_PER_MINUTE: 600,
      TRUST_PROXY: '',
      ACTIONS_HTTP_SECRETS: '',
    });
    for (const key of [
      'DATABASE_URL',
      'AUTH_JWT_SECRET',
      'AUTH_JWKS_URL',
      'AUTH_JWT_ISSUER',
      'AUTH_JWT_AUDIENCE',
      'CURSOR_SECRET',
      'CURSOR_SECRET_PREVIOUS',
    ] as const) {
      expect(env[key]).toBeUndefined();
    }
  });

  it('parses numbers, booleans and URLs from their string forms', () => {
    const env = loadEnv({
      PORT: ' 8080 ',
      BULK_JOBS_RETENTION_DAYS: '0',
      DATABASE_URL: 'postgres://app:pw@db.internal:5432/bulk',
      AUTH_JWT_SECRET: SECRET,
      AUTH_JWKS_URL: 'https://issuer.example/.well-known/jwks.json',
      AUTH_JWT_ISSUER: 'https://issuer.example/',
      AUTH_JWT_AUDIENCE: 'bulk-jobs',
    });
    expect(env.PORT).toBe(8080);
    expect(env.BULK_JOBS_RETENTION_DAYS).toBe(0);
    expect(env.DATABASE_URL).toBe('postgres://app:pw@db.internal:5432/bulk');
    expect(env.AUTH_JWT_SECRET).toBe(SECRET);
    expect(env.AUTH_JWKS_URL).toBe('https://issuer.example/.well-known/jwks.json');
    expect(env.AUTH_JWT_ISSUER).toBe('https://issuer.example/');
    expect(env.AUTH_JWT_AUDIENCE).toBe('bulk-jobs');
  });

  for (const [text, value] of [
    ['false', false],
    ['0', false],
    ['no', false],
    ['OFF', false],
    ['true', true],
    ['1', true],
    ['Yes', true],
  ] as const) {
    it(`parses DATABASE_MIGRATIONS_RUN=${text} as ${value}`, () => {
      expect(loadEnv({ DATABASE_MIGRATIONS_RUN: text }).DATABASE_MIGRATIONS_RUN).toBe(value);
    });
  }

  it('accepts postgresql:// URLs, localhost and hostnames with underscores', () => {
    for (const url of [
      'postgresql://u@localhost/db',
      'postgres://postgres@127.0.0.1:5432/postgres',
      'postgres://u:p@pg_primary:5432/db',
    ]) {
      expect(loadEnv({ DATABASE_URL: url }).DATABASE_URL).toBe(url);
    }
  });

  it('treats an empty or blank optional value as unset', () => {
    const env = loadEnv({
      DATABASE_URL: '',
      AUTH_JWT_SECRET: '',
      AUTH_JWKS_URL: ' ',
      AUTH_JWT_ISSUER: '',
      AUTH_JWT_AUDIENCE: '',
    });
    for (const key of [
      'DATABASE_URL',
      'AUTH_JWT_SECRET',
      'AUTH_JWKS_URL',
      'AUTH_JWT_ISSUER',
      'AUTH_JWT_AUDIENCE',
      'CURSOR_SECRET',
      'CURSOR_SECRET_PREVIOUS',
    ] as const) {
      expect(env[key]).toBeUndefined();
    }
  });

  it('ignores variables it does not know', () => {
    expect(() => loadEnv({ SOMETHING_ELSE: 'x', PATH: '/bin' })).not.toThrow();
  });

  const invalid: [name: string, value: string][] = [
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '80.5'],
    ['PORT', ''],
    ['BULK_JOBS_RETENTION_DAYS', '-1'],
    ['BULK_JOBS_RETENTION_DAYS', 'thirty'],
    ['AUTH_JWT_SECRET', 'too-short-0123456789'],
    ['DATABASE_URL', 'not-a-url'],
    ['DATABASE_URL', 'mysql://u@localhost/db'],
    ['AUTH_JWKS_URL', 'ftp://issuer.example/jwks.json'],
    ['AUTH_JWKS_TIMEOUT_MS', '10'],
    ['DATABASE_MIGRATIONS_RUN', 'maybe'],
    ['DATABASE_POOL_SIZE', '0'],
    ['NODE_ENV', 'staging'],
    ['LOG_LEVEL', 'trace'],
    ['BODY_IDLE_TIMEOUT_MS', '0'],
    ['REQUEST_TIMEOUT_MS', '-1'],
    ['BULK_JOBS_MAX_UPLOADS_PER_OWNER', 'two'],
    ['BULK_JOBS_MAX_UPLOADS', '0'],
    ['BULK_JOBS_MAX_EXPORTS_PER_OWNER', '-1'],
    ['BULK_JOBS_MAX_EXPORTS', '0'],
    ['BULK_JOBS_MAX_EXPORTS', 'all'],
    ['SSE_MAX_STREAMS_PER_OWNER', '-1'],
    ['SSE_MAX_STREAMS', '1.5'],
    ['CURSOR_SECRET', 'too-short-0123456789'],
    ['CURSOR_SECRET_PREVIOUS', 'too-short-0123456789'],
    ['BULK_JOBS_MAX_PARAMS_BYTES', '100'],
    ['BULK_JOBS_MAX_TARGET_DATA_BYTES', '1e3'],
    ['BULK_JOBS_MAX_PAGE_BYTES', '1000'],
    ['RATE_LIMIT_PUBLIC_PER_MINUTE', '-1'],
    ['TRUST_PROXY', 'true'],
    ['TRUST_PROXY', '10.0.0.0/33'],
    ['TRUST_PROXY', '2'],
    ['TRUST_PROXY', '10.0.0.1; rm -rf'],
    ['ACTIONS_HTTP_SECRETS', '{"a":'],
    ['ACTIONS_HTTP_SECRETS', '["x"]'],
    ['ACTIONS_HTTP_SECRETS', '{"bad name":"x"}'],
    ['ACTIONS_HTTP_SECRETS', '{"a":1}'],
    ['ACTIONS_HTTP_SECRETS', '{"a":"line\\nbreak"}'],
    ['ACTIONS_HTTP_SECRETS', '{"a":""}'],
  ];
  for (const [name, value] of invalid) {
    it(`refuses ${name}=${JSON.stringify(value)} with a ConfigError naming the variable`, () => {
      const err = configError({ [name]: value });
      expect(err.name).toBe('ConfigError');
      expect(err.problems).toHaveLength(1);
      expect(err.problems[0].startsWith(`${name}: `)).toBe(true);
      expect(err.message).toContain(name);
    });
  }

  it('gives the limits against hostile clients their documented defaults', () => {
    const env = loadEnv({});
    expect(env).toMatchObject({
      BODY_IDLE_TIMEOUT_MS: 30_000,
      REQUEST_TIMEOUT_MS: 300_000,
      BULK_JOBS_MAX_UPLOADS_PER_OWNER: 2,
      BULK_JOBS_MAX_EXPORTS_PER_OWNER: 2,
      SSE_MAX_STREAMS_PER_OWNER: 10,
      SSE_MAX_STREAMS: 1000,
    });
    expect(env.BULK_JOBS_MAX_UPLOADS).toBeUndefined();
    // Half the pool, at least one.
    expect(maxUploads(env)).toBe(5);
    expect(maxUploads(loadEnv({ DATABASE_POOL_SIZE: '25' }))).toBe(12);
    expect(maxUploads(loadEnv({ DATABASE_POOL_SIZE: '1' }))).toBe(1);
    expect(maxUploads(loadEnv({ DATABASE_POOL_SIZE: '25', BULK_JOBS_MAX_UPLOADS: '15' }))).toBe(15);
    expect(env.BULK_JOBS_MAX_EXPORTS).toBeUndefined();
    // A quarter of the pool, at least one: with the uploads' half, a quarter is left to everything else.
    expect(maxExports(env)).toBe(2);
    expect(maxExports(loadEnv({ DATABASE_POOL_SIZE: '25' }))).toBe(6);
    expect(maxExports(loadEnv({ DATABASE_POOL_SIZE: '3' }))).toBe(1);
    expect(maxExports(loadEnv({ DATABASE_POOL_SIZE: '1' }))).toBe(1);
    expect(maxExports(loadEnv({ DATABASE_POOL_SIZE: '25', BULK_JOBS_MAX_EXPORTS: '10' }))).toBe(10);
    // The per-owner cap may be lifted.
    expect(loadEnv({ BULK_JOBS_MAX_EXPORTS_PER_OWNER: '0' }).BULK_JOBS_MAX_EXPORTS_PER_OWNER).toBe(0);
  });

  it('refuses a cap of uploads that would leave no connection to other requests, naming both settings', () => {
    for (const uploads of ['10', '11']) {
      const err = configError({ DATABASE_POOL_SIZE: '10', BULK_JOBS_MAX_UPLOADS: uploads });
      expect(err.problems).toHaveLength(1);
      expect(err.problems[0]).toMatch(/^BULK_JOBS_MAX_UPLOADS: must be below DATABASE_POOL_SIZE \(10\)/);
    }
    expect(maxUploads(loadEnv({ DATABASE_POOL_SIZE: '10', BULK_JOBS_MAX_UPLOADS: '7' }))).toBe(7);
  });

  it('refuses caps of uploads and exports that together would leave no connection to other requests', () => {
    const refused = [
      // The uploads' cap set, the exports' at its default (a quarter of 10: 2).
      [{ BULK_JOBS_MAX_UPLOADS: '8' }, '8 + 2'],
      [{ BULK_JOBS_MAX_UPLOADS: '9' }, '9 + 2'],
      // The exports' cap set, the uploads' at its default (half of 10: 5).
      [{ BULK_JOBS_MAX_EXPORTS: '5' }, '5 + 5'],
      [{ BULK_JOBS_MAX_EXPORTS: '10' }, '5 + 10'],
      [{ BULK_JOBS_MAX_UPLOADS: '3', BULK_JOBS_MAX_EXPORTS: '7' }, '3 + 7'],
    ] as const;
    for (const [caps, got] of refused) {
      const err = configError({ DATABASE_POOL_SIZE: '10', ...caps });
      expect(err.problems).toEqual([
        'BULK_JOBS_MAX_UPLOADS + BULK_JOBS_MAX_EXPORTS: must be below DATABASE_POOL_SIZE (10), so that uploads ' +
          'and exports together leave connections to reads and inline creates ' +
          `(got ${got}; an unset cap counts at its default)`,
      ]);
    }
    const fits = loadEnv({
      DATABASE_POOL_SIZE: '10',
      BULK_JOBS_MAX_UPLOADS: '3',
      BULK_JOBS_MAX_EXPORTS: '6',
    });
    expect([maxUploads(fits), maxExports(fits)]).toEqual([3, 6]);
    expect(maxExports(loadEnv({ DATABASE_POOL_SIZE: '10', BULK_JOBS_MAX_EXPORTS: '4' }))).toBe(4);
    // The defaults are not refused, whatever the pool: a pool of 2 holds one upload and one export.
    for (const pool of ['1', '2', '3', '4', '10', '1000']) {
      const env = loadEnv({ DATABASE_POOL_SIZE: pool });
      expect(maxUploads(env) + maxExports(env)).toBeLessThanOrEqual(Math.max(2, Number(pool) - 1));
    }
  });

  it('names every bad variable at once', () => {
    const err = configError({ PORT: 'abc', BULK_JOBS_RETENTION_DAYS: '-1' });
    expect(err.problems.map((p) => p.split(':', 1)[0]).sort()).toEqual(['BULK_JOBS_RETENTION_DAYS', 'PORT']);
  });

  it('never puts a rejected secret or a URL password in the message', () => {
    const secret = configError({ AUTH_JWT_SECRET: 'hunter2-short-secret' });
    expect(secret.message).not.toContain('hunter2');
    expect(secret.message).toContain('20 characters');
    const url = configError({ DATABASE_URL: 'mysql://app:hunter2@db.internal/bulk' });
    expect(url.message).not.toContain('hunter2');
    expect(url.message).toContain('mysql://app:***@db.internal/bulk');
  });

  it('never puts a rejected cursor secret or ACTIONS_HTTP_SECRETS in the message', () => {
    const cursor = configError({ CURSOR_SECRET: 'hunter2-short-secret' });
    expect(cursor.message).not.toContain('hunter2');
    for (const text of ['{"crm":"Bearer hunter2", "x": 1}', '{"crm":"Bearer hunter2"', '{"hunter2 x":"v"}']) {
      const err = configError({ ACTIONS_HTTP_SECRETS: text });
      expect(err.problems).toHaveLength(1);
      expect(err.problems[0]).toMatch(/^ACTIONS_HTTP_SECRETS: /);
      expect(err.message).not.toContain('hunter2');
      expect(err.message).toContain(`a value of ${text.length} characters`);
    }
  });

  it('accepts ACTIONS_HTTP_SECRETS as a JSON object of header values, and TRUST_PROXY as addresses and ranges', () => {
    const env = loadEnv({
      ACTIONS_HTTP_SECRETS: '{"crm-token":"Bearer abc","x.y_z":"k"}',
      TRUST_PROXY: ' 10.0.0.0/8, 192.168.1.7 ,::1, fd00::/8, loopback ',
    });
    expect(env.ACTIONS_HTTP_SECRETS).toBe('{"crm-token":"Bearer abc","x.y_z":"k"}');
    expect(trustedProxies(env)).toBe('10.0.0.0/8,192.168.1.7,::1,fd00::/8,loopback');
    expect(trustedProxies(loadEnv({}))).toBe(false);
  });

  it('refuses CURSOR_SECRET_PREVIOUS without CURSOR_SECRET', () => {
    const err = configError({ CURSOR_SECRET_PREVIOUS: SECRET });
    expect(err.problems).toEqual([
      expect.stringMatching(/^CURSOR_SECRET_PREVIOUS is set without CURSOR_SECRET/),
    ]);
    expect(err.message).not.toContain(SECRET);
  });

  it('refuses NODE_ENV=production without any token key', () => {
    for (const source of [{}, { AUTH_JWT_SECRET: '' }, { AUTH_JWT_SECRET: '', AUTH_JWKS_URL: '' }]) {
      const err = configError({ NODE_ENV: 'production', ...source });
      expect(err.message).toMatch(/AUTH_JWT_SECRET or AUTH_JWKS_URL/);
    }
  });

  it('starts in production with either kind of key', () => {
    expect(loadEnv({ NODE_ENV: 'production', AUTH_JWT_SECRET: SECRET }).NODE_ENV).toBe('production');
    expect(
      loadEnv({ NODE_ENV: 'production', AUTH_JWKS_URL: 'https://issuer.example/jwks.json' }).NODE_ENV,
    ).toBe('production');
  });
});
