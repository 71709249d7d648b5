import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { Client } from 'pg';
import type { DataSource } from 'typeorm';
import { createEnginePool } from '../../src/engine/engine-pool';
import { EngineStore } from '../../src/engine/engine-store';
import { bootTestApp, type BootOptions, type TestApp } from './app';
import { TEST_JWT_SECRET, testDatabaseUrl } from './test-env';
import { waitFor } from './wait';

/**
 * A database of its own for a spec that runs workers: workers claim every
 * job in their database, so they must not see the jobs of specs that run
 * beside them. Named after the run's test database, so the test-name guard
 * holds; dropped by drop().
 */
export interface EngineDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createEngineDatabase(): Promise<EngineDatabase> {
  const base = new URL(testDatabaseUrl());
  const name = `${base.pathname.slice(1)}_e${randomBytes(3).toString('hex')}`;
  await withClient(base.toString(), (c) => c.query(`CREATE DATABASE "${name}"`));
  const url = new URL(base.toString());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () =>
      withClient(base.toString(), (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(
        () => undefined,
      ),
  };
}

async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A worker process (src/worker.ts, compiled) with its output kept for assertions and diagnostics. */
export interface WorkerProcess {
  child: ChildProcess;
  /** The worker id it leases items under, once ready. */
  id: string;
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  ready: Promise<void>;
  alive(): boolean;
}

/** The compiled worker entry, next to this compiled helper. */
const WORKER_ENTRY = resolve(__dirname, '../../src/worker.js');

/** The compiled API entry (main.js, run with --no-worker). */
const API_ENTRY = resolve(__dirname, '../../src/main.js');

/**
 * `launch.prefix` runs it under another command (e.g. `ip netns exec <ns>`);
 * `launch.api` starts an API-only process instead (ready: see its output).
 */
export function startWorker(
  databaseUrl: string,
  env: Record<string, string> = {},
  launch: { prefix?: string[]; api?: boolean } = {},
): WorkerProcess {
  const entry = launch.api ? [API_ENTRY, '--no-worker'] : [WORKER_ENTRY];
  const [cmd, ...args] = [...(launch.prefix ?? []), process.execPath, '--enable-source-maps', ...entry];
  const child = spawn(cmd, args, {
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'test',
      NO_COLOR: '1',
      DATABASE_URL: databaseUrl,
      AUTH_JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: 'log',
      DATABASE_POOL_SIZE: '2',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  let exitedFlag = false;
  const proc: WorkerProcess = {
    child,
    id: '',
    output,
    exited: new Promise((res) =>
      child.on('exit', (code, signal) => {
        exitedFlag = true;
        res({ code, signal });
      }),
    ),
    ready: Promise.resolve(),
    alive: () => !exitedFlag,
  };
  proc.ready = new Promise<void>((res, rej) => {
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() === '') continue;
        output.push(line);
        const started = /worker (\S+) started/.exec(line);
        if (started) proc.id = started[1];
        if (line.includes('worker process ready') || (launch.api && line.includes('API listening on'))) res();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void proc.exited.then(({ code, signal }) =>
      rej(new Error(`worker exited (${code ?? signal}) before it was ready:\n${output.join('\n')}`)),
    );
  });
  return proc;
}

/** Kills what is still running, for `after` hooks: a failed test must not leave workers behind. */
export async function killAll(workers: WorkerProcess[]): Promise<void> {
  for (const w of workers) if (w.alive()) w.child.kill('SIGKILL');
  await Promise.all(workers.map((w) => w.exited));
}

export { waitFor } from './wait';

/**
 * The engine's store on `url`, with no worker around it: for specs that drive
 * claims and writes by hand, so that each happens exactly when they say.
 * Closed by its onApplicationShutdown().
 */
export function handDrivenStore(url: string): EngineStore {
  return new EngineStore(createEnginePool(url, 'main', 5000), createEnginePool(url, 'claim', 5000));
}

/**
 * The real AppModule on `databaseUrl`, set up like main.ts, optionally with
 * the in-process worker and extra modules of an embedding application.
 */
export function createEngineTestApp(
  databaseUrl: string,
  opts: Omit<BootOptions, 'databaseUrl' | 'logger'> = {},
): Promise<TestApp> {
  return bootTestApp({ ...opts, databaseUrl });
}

export interface JobCounters {
  status: string;
  total_items: number;
  succeeded_items: number;
  failed_items: number;
  skipped_items: number;
  running_items: number;
}

export async function jobCounters(db: DataSource, id: string): Promise<JobCounters> {
  const rows: JobCounters[] = await db.query(
    `SELECT status, total_items, succeeded_items, failed_items, skipped_items, running_items FROM bulk_jobs WHERE id = $1`,
    [id],
  );
  return rows[0];
}

/** How many of the job's items are in each status, counted from the items themselves. */
export async function itemStatusCounts(db: DataSource, id: string): Promise<Record<string, number>> {
  const rows: { status: string; n: number }[] = await db.query(
    `SELECT status, count(*)::int AS n FROM bulk_job_items WHERE job_id = $1 GROUP BY status`,
    [id],
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

/** Waits until the job is in one of `statuses`; returns its counters. */
export function waitForJob(
  db: DataSource,
  id: string,
  statuses: string[],
  timeoutMs = 60_000,
): Promise<JobCounters> {
  return waitFor(
    `job ${id} to be ${statuses.join(' or ')}`,
    async () => {
      const c = await jobCounters(db, id);
      return statuses.includes(c.status) ? c : undefined;
    },
    { timeoutMs, describeState: () => describeJob(db, id) },
  );
}

/** The job row and its item counts, for failure messages. */
export async function describeJob(db: DataSource, id: string): Promise<string> {
  const job: unknown[] = await db.query(
    `SELECT status, total_items, succeeded_items, failed_items, skipped_items, running_items, claimable_at,
            last_claimed_at, now() AS now
     FROM bulk_jobs WHERE id = $1`,
    [id],
  );
  return JSON.stringify({ job: job[0], items: await itemStatusCounts(db, id) });
}
