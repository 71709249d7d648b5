import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from 'pg';
import { embeddedCluster, EmbeddedPostgresError, ensureDataDir, SUPERUSER } from './embedded-cluster';

export interface EmbeddedDatabase {
  /** Connection URL of the application database. */
  url: string;
  /** Where the cluster's data lives. */
  dir: string;
  /** True when the server was already running (started by another process of the service). */
  reused: boolean;
  /** Stops the server if this process started it. */
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  port: number;
  /** Run as root: where the binaries and the data go (EMBEDDED_PG_SYSTEM_DIR). */
  systemDir?: string;
  database?: string;
  log?: (line: string) => void;
}

const CONNECT_TIMEOUT_MS = 5000;

/** The superuser's password, created once under DATA_DIR (mode 0600). */
async function readOrCreatePassword(dir: string): Promise<string> {
  const file = join(dir, 'postgres-password');
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  const password = randomBytes(24).toString('base64url');
  await writeFile(file, `${password}\n`, { mode: 0o600 });
  return password;
}

function adminClient(port: number, password: string): Client {
  return new Client({
    host: '127.0.0.1',
    port,
    user: SUPERUSER,
    password,
    database: 'postgres',
    // Something else may hold the port and never answer.
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  });
}

async function canConnect(port: number, password: string): Promise<boolean> {
  const client = adminClient(port, password);
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function ensureDatabase(port: number, password: string, database: string): Promise<void> {
  const client = adminClient(port, password);
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
    }
  } catch (err) {
    // Another process may have created it between the check and the CREATE.
    if ((err as { code?: string }).code !== '42P04') throw err;
  } finally {
    await client.end();
  }
}

/**
 * The service's embedded PostgreSQL (see embedded-cluster.ts for where it
 * runs). A second process of the service that finds the server already
 * running on the same port, with the password kept in DATA_DIR, uses it
 * instead of starting another one. Any failure is an EmbeddedPostgresError,
 * after whatever this call started has been stopped again.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const dataDir = await ensureDataDir(opts.dataDir);
  const password = await readOrCreatePassword(dataDir).catch((err: Error) => {
    throw new EmbeddedPostgresError(
      `its password in ${dataDir}/postgres-password cannot be read or written (${err.message})`,
      'Check the permissions of DATA_DIR',
    );
  });
  const database = opts.database ?? 'bulk_jobs';
  const url = `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${opts.port}/${database}`;
  const cluster = embeddedCluster({
    dataDir,
    name: 'postgres',
    port: opts.port,
    portVariable: 'EMBEDDED_PG_PORT',
    password,
    settings: ['max_connections=200'],
    systemDir: opts.systemDir,
    log: opts.log,
  });
  const createDatabase = () =>
    ensureDatabase(opts.port, password, database).catch((err: Error & { code?: string }) => {
      if (err.code === '28P01') {
        throw new EmbeddedPostgresError(
          `the password in ${dataDir}/postgres-password is not the one of the server on port ${opts.port} (its data: ${cluster.dir})`,
          'Put the right password back, or move that data folder away to start with an empty database',
        );
      }
      throw new EmbeddedPostgresError(
        `the database ${database} cannot be created (${err.message})`,
        `Check the server's data in ${cluster.dir}`,
      );
    });
  const reuse = async (): Promise<EmbeddedDatabase> => {
    await createDatabase();
    return { url, dir: cluster.dir, reused: true, stop: async () => undefined };
  };

  if (await canConnect(opts.port, password)) return reuse();
  try {
    await cluster.start();
  } catch (err) {
    // Another process of the service may have started it in the meantime.
    if (await canConnect(opts.port, password)) return reuse();
    throw err;
  }
  try {
    await createDatabase();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return { url, dir: cluster.dir, reused: false, stop: () => cluster.stop() };
}
