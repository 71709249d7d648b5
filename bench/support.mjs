// Shared plumbing of the benchmarks: the build, the database of a run, the service
// processes, tokens, and small statistics helpers.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import jwt from 'jsonwebtoken';
import pg from 'pg';

export const ROOT = resolve(import.meta.dirname, '..');
/** The compiled service, built by this run (not dist/, which other builds may clear meanwhile). */
export const BUILD_DIR = join(ROOT, '.bench-build');
export const JWT_SECRET = randomBytes(32).toString('hex');
/** Production refuses a public /metrics: the bench's API has a token on it, which nothing here uses. */
const METRICS_TOKEN = randomBytes(16).toString('hex');
export const JOBS_PATH = '/api/actions/bulk/jobs';

export function run(cmd, args, opts = {}) {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { stdio: 'inherit', cwd: ROOT, ...opts });
    child.on('error', rej);
    child.on('close', (code) =>
      code === 0 ? res() : rej(new Error(`${cmd} ${args.join(' ')} exited ${code}`)),
    );
  });
}

/** Compiles src exactly as `npm run build` does (same tsconfig), into BUILD_DIR. */
export async function build() {
  rmSync(BUILD_DIR, { recursive: true, force: true });
  // Type errors are the type check's business (npm run typecheck); --noCheck halves the build.
  await run('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', BUILD_DIR, '--noCheck']);
}

/**
 * Settings of the embedded bench server. The same server runs both sides of
 * every comparison. Durable enough for a benchmark (crash safe, may lose the
 * last commits on a crash), sized for a 24 GiB machine, and without
 * checkpoints in the middle of a run.
 */
export const EMBEDDED_FLAGS = [
  'listen_addresses=127.0.0.1',
  'max_connections=300',
  'shared_buffers=2GB',
  'synchronous_commit=off',
  'max_wal_size=16GB',
  'checkpoint_timeout=30min',
  'maintenance_work_mem=512MB',
  // For --statements: where the database's time goes, per statement (negligible cost, both sides alike).
  'shared_preload_libraries=pg_stat_statements',
];

async function withClient(url, fn) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * The run's database: with DATABASE_URL, a new database on that server
 * (dropped by drop()); else an embedded PostgreSQL of its own (`bench-postgres`), removed by drop().
 */
export async function openDatabase(log) {
  let serverUrl = process.env.DATABASE_URL;
  let embedded;
  if (!serverUrl) {
    // The service's own start-up (compiled by build()): as root, the server runs where its user can reach it.
    const { embeddedCluster, ensureDataDir } = await import(
      pathToFileURL(join(BUILD_DIR, 'database/embedded-cluster.js')).href
    );
    const port = Number(process.env.EMBEDDED_PG_BENCH_PORT || 54349);
    const password = 'bench';
    embedded = embeddedCluster({
      dataDir: await ensureDataDir(resolve(process.env.DATA_DIR || '.data')),
      name: 'bench-postgres',
      port,
      portVariable: 'EMBEDDED_PG_BENCH_PORT',
      password,
      settings: EMBEDDED_FLAGS,
      systemDir: process.env.EMBEDDED_PG_SYSTEM_DIR || undefined,
    });
    await embedded.start();
    for (const signal of ['SIGINT', 'SIGTERM']) {
      process.once(signal, () => void embedded.stop().finally(() => process.exit(1)));
    }
    serverUrl = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
    log(`embedded PostgreSQL at 127.0.0.1:${port} (${embedded.dir})`);
  }
  const name = `bulk_jobs_bench_${Date.now()}_${randomBytes(3).toString('hex')}`;
  if (!/bench/.test(name)) throw new Error('refusing a bench database without "bench" in its name');
  const admin = new URL(serverUrl);
  admin.pathname = '/postgres';
  await withClient(admin.toString(), (c) => c.query(`CREATE DATABASE "${name}"`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const version = await withClient(
    url.toString(),
    async (c) => (await c.query('SHOW server_version')).rows[0].server_version,
  );
  log(`database ${name} (PostgreSQL ${version})`);
  return {
    url: url.toString(),
    name,
    version,
    embedded: Boolean(embedded),
    async drop() {
      await withClient(admin.toString(), (c) =>
        c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
      ).catch((e) => console.error(`could not drop ${name}: ${e.message}`));
      if (embedded) {
        // A run's server: nothing in it is kept.
        await embedded.stop();
        rmSync(embedded.dir, { recursive: true, force: true });
      }
    },
  };
}

export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
    srv.on('error', rej);
  });
}

export function tokenFor(sub, scope = 'bulk-jobs:read bulk-jobs:write') {
  return jwt.sign({ sub, scope }, JWT_SECRET, { algorithm: 'HS256', expiresIn: '2h' });
}

function serviceEnv(url, extra = {}) {
  return {
    ...process.env,
    DATABASE_URL: url,
    NODE_ENV: 'production',
    AUTH_JWT_SECRET: JWT_SECRET,
    METRICS_TOKEN,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL || 'warn',
    ...extra,
  };
}

/** Node flags for the service processes: --cpu-prof writes profiles to bench/results/. */
export const profileFlags = (profile, name) =>
  profile
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${join(ROOT, 'bench', 'results')}`,
        `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`,
      ]
    : [];

/**
 * The server and worker processes a benchmark started and has not seen exit:
 * killed when the benchmark's process exits, however it ends, so that a
 * benchmark that fails leaves nothing running behind it.
 */
const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Tracks a child process until it exits (see children). */
export function tracked(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** A child process whose output is kept (and shown if it fails). */
function startProcess(args, env, label) {
  const child = tracked(spawn(process.execPath, args, { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  const output = [];
  const keep = (d) => {
    output.push(d.toString());
    if (output.length > 200) output.shift();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  return {
    child,
    label,
    output,
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const res = await Promise.race([exited, sleep(30_000).then(() => null)]);
      if (!res) {
        child.kill('SIGKILL');
        await exited;
      }
    },
    fail(msg) {
      return new Error(`${msg}\n--- ${label} output ---\n${output.join('').slice(-4000)}`);
    },
  };
}

/** The API process (dist/main.js --no-worker) on a free port, once it answers. */
export async function startApi(url, { profile = false, env = {} } = {}) {
  const port = await freePort();
  const proc = startProcess(
    [...profileFlags(profile, 'api'), join(BUILD_DIR, 'main.js'), '--no-worker'],
    serviceEnv(url, { PORT: String(port), HOST: '127.0.0.1', ...env }),
    'api',
  );
  const base = `http://127.0.0.1:${port}`;
  const token = tokenFor('bench-probe');
  for (let i = 0; ; i++) {
    if (!proc.alive()) throw proc.fail('the API process exited during start-up');
    try {
      const res = await globalThis.fetch(`${base}/api/actions/bulk/actions`, {
        headers: { authorization: `Bearer ${token}` },
      });
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (i > 600) throw proc.fail('the API process did not start within 60 s');
    await sleep(100);
  }
  return { ...proc, base, port, pid: proc.child.pid };
}

/** Worker processes (dist/worker.js). */
export function startWorkers(url, count, { profile = false, env = {} } = {}) {
  const procs = [];
  for (let i = 0; i < count; i++) {
    procs.push(
      startProcess(
        [...profileFlags(profile, `worker${i}`), join(BUILD_DIR, 'worker.js')],
        serviceEnv(url, env),
        `worker ${i}`,
      ),
    );
  }
  return procs;
}

/** Peak and current resident set size of a process, in bytes (Linux). */
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { peak: kb('VmHWM'), current: kb('VmRSS') };
}

/** CPU time (user + system) a process has used, in ms (Linux). */
export function cpuMsOf(pid) {
  const { userMs, systemMs } = cpuSplitOf(pid);
  return userMs + systemMs;
}

/** CPU time a process has used in user space and in the kernel, in ms (Linux, 100 ticks a second). */
export function cpuSplitOf(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { userMs: Number(fields[11]) * 10, systemMs: Number(fields[12]) * 10 };
}

/**
 * The whole machine's CPU time since boot, in ms summed over its cores (Linux): busy (every
 * process, the kernel's interrupts included) and idle (waiting for I/O included).
 */
export function machineCpuMs() {
  const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
    .slice(0, 200)
    .split('\n')[0]
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return { busyMs: (user + nice + system + irq + softirq + steal) * 10, idleMs: (idle + iowait) * 10 };
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export const round = (x, digits = 0) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export { withClient, sleep };
