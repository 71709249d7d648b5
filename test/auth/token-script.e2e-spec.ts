import { expect } from 'expect';
import jwt from 'jsonwebtoken';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { JOBS } from '../support/api';
import { createTestApp, type TestApp } from '../support/app';
import { expectProblem } from '../support/problem-matcher';
import { TEST_JWT_SECRET } from '../support/test-env';
import { bearer, newOwner } from '../support/tokens';

// `npm test` runs from the repository root.
const ROOT = process.cwd();

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `npm run -s token -- ...args` with only the given auth settings in its environment. */
function runTokenScript(args: string[], env: Record<string, string>): Promise<RunResult> {
  const base = { ...process.env };
  for (const key of Object.keys(base)) if (key.startsWith('AUTH_')) delete base[key];
  return new Promise((resolve) => {
    execFile(
      'npm',
      ['run', '-s', 'token', '--', ...args],
      { cwd: ROOT, env: { ...base, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The token the script printed: one line, nothing else. */
function printedToken(run: RunResult): string {
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  const lines = run.stdout.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  return lines[0];
}

describe('npm run token', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'token-script-'));
    dirs.push(dir);
    return dir;
  };
  let t: TestApp;
  before(async () => {
    expect(existsSync(join(ROOT, 'scripts', 'token.ts'))).toBe(true);
    t = await createTestApp();
  });
  after(async () => {
    await t.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('prints a read-write token for --sub that the API accepts', async () => {
    const sub = newOwner('alice');
    const token = printedToken(
      await runTokenScript(['--sub', sub], { AUTH_JWT_SECRET: TEST_JWT_SECRET, DATA_DIR: tempDir() }),
    );

    const payload = jwt.verify(token, TEST_JWT_SECRET, { algorithms: ['HS256'] }) as jwt.JwtPayload;
    expect(payload).toMatchObject({ sub, scope: 'bulk-jobs:read bulk-jobs:write' });
    expect(payload.exp! - payload.iat!).toBe(3600);

    expect((await t.http().get(JOBS).set(bearer(token))).status).toBe(200);
    const created = await t
      .http()
      .post(JOBS)
      .set(bearer(token))
      .send({ action: 'noop', targets: ['a'] });
    expect(created.status).toBe(202);
    expect((created.body as { owner: string }).owner).toBe(sub);
  });

  it('honours --scope: a read-only token reads but gets 403 on POST', async () => {
    const token = printedToken(
      await runTokenScript(['--sub', newOwner('alice'), '--scope', 'bulk-jobs:read'], {
        AUTH_JWT_SECRET: TEST_JWT_SECRET,
        DATA_DIR: tempDir(),
      }),
    );
    expect((await t.http().get(JOBS).set(bearer(token))).status).toBe(200);
    const res = await t
      .http()
      .post(JOBS)
      .set(bearer(token))
      .send({ action: 'noop', targets: ['a'] });
    expectProblem(res, 403, { required_scope: 'bulk-jobs:write' });
  });

  it('honours --ttl', async () => {
    const token = printedToken(
      await runTokenScript(['--sub', 'alice', '--ttl', '120'], {
        AUTH_JWT_SECRET: TEST_JWT_SECRET,
        DATA_DIR: tempDir(),
      }),
    );
    const payload = jwt.decode(token) as jwt.JwtPayload;
    expect(payload.exp! - payload.iat!).toBe(120);
  });

  it('signs with the configured issuer and audience', async () => {
    const token = printedToken(
      await runTokenScript(['--sub', 'alice'], {
        AUTH_JWT_SECRET: TEST_JWT_SECRET,
        AUTH_JWT_ISSUER: 'https://issuer.test',
        AUTH_JWT_AUDIENCE: 'bulk-jobs',
        DATA_DIR: tempDir(),
      }),
    );
    expect(jwt.decode(token)).toMatchObject({ iss: 'https://issuer.test', aud: 'bulk-jobs' });
  });

  const misuse: [string, string[], RegExp][] = [
    ['without --sub', [], /usage: npm run token -- --sub NAME/],
    ['with an empty --sub', ['--sub', ''], /usage: npm run token -- --sub NAME/],
    ['with an unknown option', ['--sub', 'alice', '--admin'], /usage: npm run token/],
    ['with a bad --ttl', ['--sub', 'alice', '--ttl', 'soon'], /--ttl must be a positive/],
  ];
  for (const [name, args, message] of misuse) {
    it(`exits non-zero with a message, printing no token, ${name}`, async () => {
      const run = await runTokenScript(args, { AUTH_JWT_SECRET: TEST_JWT_SECRET, DATA_DIR: tempDir() });
      expect(run.code).not.toBe(0);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(message);
      expect(run.stderr).not.toMatch(/\bat .+:\d+:\d+/);
    });
  }

  it('refuses a too-short AUTH_JWT_SECRET without printing it', async () => {
    const run = await runTokenScript(['--sub', 'alice'], {
      AUTH_JWT_SECRET: 'short-hunter2',
      DATA_DIR: tempDir(),
    });
    expect(run.code).not.toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/AUTH_JWT_SECRET/);
    expect(run.stderr).not.toContain('hunter2');
  });

  it('refuses to make up a secret in production', async () => {
    const dir = tempDir();
    const run = await runTokenScript(['--sub', 'alice'], { NODE_ENV: 'production', DATA_DIR: dir });
    expect(run.code).not.toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/AUTH_JWT_SECRET/);
    expect(existsSync(join(dir, 'jwt-secret'))).toBe(false);
  });
});

describe('npm run token in development, without AUTH_JWT_SECRET', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'token-dev-'));
    dirs.push(dir);
    return dir;
  };
  const apps: TestApp[] = [];
  const devApp = async (dataDir: string) => {
    const app = await createTestApp({ NODE_ENV: 'development', AUTH_JWT_SECRET: '', DATA_DIR: dataDir });
    apps.push(app);
    return app;
  };
  const devToken = async (dataDir: string, sub: string) =>
    printedToken(await runTokenScript(['--sub', sub], { NODE_ENV: 'development', DATA_DIR: dataDir }));

  let other: TestApp;
  before(async () => {
    other = await createTestApp();
  });
  after(async () => {
    for (const app of [other, ...apps]) await app.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('signs with the secret that a server started first created under DATA_DIR', async () => {
    const dir = tempDir();
    const app = await devApp(dir);
    const secretFile = join(dir, 'jwt-secret');
    expect(statSync(secretFile).mode & 0o777).toBe(0o600);

    const token = await devToken(dir, newOwner('dev'));
    expect((await app.http().get(JOBS).set(bearer(token))).status).toBe(200);
    // It is the development secret, not the test one.
    expectProblem(await other.http().get(JOBS).set(bearer(token)), 401);
  });

  it('creates the secret that a server started later uses', async () => {
    const dir = tempDir();
    const token = await devToken(dir, newOwner('dev'));
    expect(statSync(join(dir, 'jwt-secret')).mode & 0o777).toBe(0o600);

    const app = await devApp(dir);
    expect((await app.http().get(JOBS).set(bearer(token))).status).toBe(200);
  });

  it('gives another DATA_DIR another secret', async () => {
    const token = await devToken(tempDir(), newOwner('dev'));
    const app = await devApp(tempDir());
    expectProblem(await app.http().get(JOBS).set(bearer(token)), 401);
  });
});
