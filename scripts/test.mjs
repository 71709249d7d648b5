#!/usr/bin/env node
// The test command. It compiles the specs, gives the run a database of its own and runs them
// with node's test runner:
//  - with DATABASE_URL set, on that server (a new database, dropped at the end);
//  - without it, on an embedded PostgreSQL of its own (DATA_DIR's test-postgres, or as root
//    under EMBEDDED_PG_SYSTEM_DIR), removed at the end.
// Extra arguments filter the spec files by path, e.g. `npm test -- bulk-jobs/delete`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
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

/**
 * The suite's own cluster (DATA_DIR's `test-postgres`), started from the
 * compiled src/database/embedded-cluster.ts, the service's own start-up: as
 * root it runs where its user can reach it. Removed again at the end.
 */
async function startEmbedded() {
  const { embeddedCluster, ensureDataDir } = await import(
    pathToFileURL(join(BUILD_DIR, 'src/database/embedded-cluster.js')).href
  );
  const port = Number(process.env.EMBEDDED_PG_TEST_PORT || 54339);
  const password = 'test';
  const cluster = embeddedCluster({
    dataDir: await ensureDataDir(dataDir),
    name: 'test-postgres',
    port,
    portVariable: 'EMBEDDED_PG_TEST_PORT',
    password,
    settings: ['max_connections=300', 'fsync=off'],
    systemDir: process.env.EMBEDDED_PG_SYSTEM_DIR || undefined,
  });
  await cluster.start();
  const stop = async () => {
    await cluster.stop();
    rmSync(cluster.dir, { recursive: true, force: true });
  };
  // Interrupted, the run stops its server rather than leave it running.
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => void stop().finally(() => process.exit(1)));
  }
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, stop };
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

/**
 * Compiles src and test (type-checked) into BUILD_DIR, and builds the dashboard where the
 * compiled UI module serves it from (src/ui/static, as `npm run build` does under dist/);
 * the first failing exit code.
 */
async function compile(env) {
  rmSync(BUILD_DIR, { recursive: true, force: true });
  const built = await run('npx', ['tsc', '-p', 'tsconfig.test.json', '--outDir', BUILD_DIR], env);
  // Type errors fail the run, unless TEST_ALLOW_TYPE_ERRORS=1 (handy while a change is half done).
  if (built !== 0 && process.env.TEST_ALLOW_TYPE_ERRORS !== '1') return built;
  return run(
    process.execPath,
    ['scripts/build-ui.mjs', `--outdir=${join(BUILD_DIR, 'src', 'ui', 'static')}`, '--quiet'],
    env,
  );
}

/** Runs the compiled specs with node's test runner. */
async function runTests(env) {
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
let created = false;
let exitCode;
try {
  exitCode = await compile(process.env);
  if (exitCode === 0) {
    if (!serverUrl) {
      embedded = await startEmbedded();
      serverUrl = embedded.url;
      console.log(`tests: embedded PostgreSQL at 127.0.0.1:${new URL(serverUrl).port}`);
    }
    await withAdmin(serverUrl, (c) => c.query(`CREATE DATABASE "${dbName}"`));
    created = true;
    const testUrl = new URL(serverUrl);
    testUrl.pathname = `/${dbName}`;
    console.log(`tests: database ${dbName}`);
    exitCode = await runTests({
      ...process.env,
      NODE_ENV: 'test',
      TEST_DATABASE_URL: testUrl.toString(),
      TEST_DATA_DIR: dataDir,
    });
  }
} catch (err) {
  // A start-up failure of the embedded server is one line that says what to do; anything else keeps its stack.
  console.error(err?.name === 'EmbeddedPostgresError' ? err.message : err);
  exitCode = 1;
} finally {
  if (created) {
    await withAdmin(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`)).catch(
      (e) => console.error(`could not drop ${dbName}: ${e.message}`),
    );
  }
  await embedded?.stop();
  rmSync(BUILD_DIR, { recursive: true, force: true });
}
process.exit(exitCode);
