import { expect } from 'expect';
import { execFileSync, spawn } from 'node:child_process';
import {
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { clusterDir, DEFAULT_SYSTEM_DIR } from '../../src/database/embedded-cluster';
import { TEST_JWT_SECRET } from '../support/test-env';

/** The compiled entries, next to this compiled spec. */
const MAIN_ENTRY = resolve(__dirname, '../../src/main.js');
const WORKER_ENTRY = resolve(__dirname, '../../src/worker.js');

/** Where root's embedded PostgreSQL puts its binaries and data, as the entries will see it. */
const SYSTEM_DIR = process.env.EMBEDDED_PG_SYSTEM_DIR || DEFAULT_SYSTEM_DIR;
const SYSTEM_ENV: Record<string, string> = process.env.EMBEDDED_PG_SYSTEM_DIR
  ? { EMBEDDED_PG_SYSTEM_DIR: process.env.EMBEDDED_PG_SYSTEM_DIR }
  : {};
const asRoot = process.getuid?.() === 0;

/** Runs an entry to its exit; its status and what it wrote. */
function run(entry: string, env: Record<string, string>, timeoutMs = 90_000) {
  return new Promise<{ code: number | null; output: string }>((res, rej) => {
    const child = spawn(process.execPath, [entry], {
      env: {
        PATH: process.env.PATH ?? '',
        NO_COLOR: '1',
        AUTH_JWT_SECRET: TEST_JWT_SECRET,
        ...SYSTEM_ENV,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`${entry} did not exit within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      res({ code, output });
    });
  });
}

/** A port something listens on, and a free one. */
async function listening(): Promise<Server> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}
const portOf = (server: Server) => (server.address() as { port: number }).port;
async function freePort(): Promise<number> {
  const server = await listening();
  const port = portOf(server);
  await new Promise((r) => server.close(r));
  return port;
}

describe('start-up failures', () => {
  it('refuses a bad setting with exit code 1 and a message naming it, without a stack', async () => {
    for (const entry of [MAIN_ENTRY, WORKER_ENTRY]) {
      const { code, output } = await run(entry, {
        DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
        WORKER_CONCURRENCY: 'lots',
      });
      expect({ entry, code }).toEqual({ entry, code: 1 });
      expect(output).toContain('Invalid configuration');
      expect(output).toContain('WORKER_CONCURRENCY');
      expect(output).not.toMatch(/^\s+at /m);
    }
  });

  it('refuses unsafe production settings of the API with one line naming each setting, before it starts anything', async () => {
    const base = {
      NODE_ENV: 'production',
      // Unreachable: the check comes before the database, and nothing here gets that far.
      DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
      AUTH_JWT_SECRET: '',
      METRICS_TOKEN: 'a-metrics-token-of-enough-length',
      CURSOR_SECRET: 'a-cursor-secret-of-at-least-32-bytes-0123',
    };
    const jwks = {
      AUTH_JWKS_URL: 'https://issuer.example/.well-known/jwks.json',
      AUTH_JWT_ISSUER: 'https://issuer.example/',
      AUTH_JWT_AUDIENCE: 'bulk-jobs',
    };
    const cases: [string, Record<string, string>, RegExp][] = [
      ['no issuer', { ...jwks, AUTH_JWT_ISSUER: '' }, /AUTH_JWT_ISSUER must be set with AUTH_JWKS_URL/],
      [
        'no issuer nor audience',
        { ...jwks, AUTH_JWT_ISSUER: '', AUTH_JWT_AUDIENCE: '' },
        /AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE must be set/,
      ],
      [
        'http:// JWKS',
        { ...jwks, AUTH_JWKS_URL: 'http://issuer.example/jwks.json' },
        /AUTH_JWKS_URL must be an https:\/\/ URL/,
      ],
      [
        'metrics on the API port without a token',
        { ...jwks, METRICS_TOKEN: '' },
        /METRICS_TOKEN must be set, or METRICS_PORT/,
      ],
      ['JWKS alone, no cursor secret', { ...jwks, CURSOR_SECRET: '' }, /CURSOR_SECRET must be set/],
    ];
    for (const [name, env, named] of cases) {
      const { code, output } = await run(MAIN_ENTRY, { ...base, ...env });
      const lines = output
        .split('\n')
        .filter((l) => l.includes('Refusing to start with NODE_ENV=production'));
      expect({ name, code, lines: lines.length }).toEqual({ name, code: 1, lines: 1 });
      expect(lines[0]).toMatch(named);
      expect(output).not.toMatch(/^\s+at /m);
      expect(output).not.toContain(base.CURSOR_SECRET);
    }
    // Safe settings pass the check (and fail later, at the unreachable database).
    for (const env of [
      jwks,
      {
        AUTH_JWT_SECRET: TEST_JWT_SECRET,
        CURSOR_SECRET: '',
        METRICS_TOKEN: '',
        METRICS_PORT: String(await freePort()),
      },
    ]) {
      const { output } = await run(MAIN_ENTRY, { ...base, ...env });
      expect(output).not.toContain('Refusing to start');
    }
  });

  describe('after the embedded PostgreSQL started', () => {
    let dataDir: string;
    let taken: Server;
    before(async () => {
      // A 0700 folder, as mkdtemp makes it: the server's user (as root) cannot enter it.
      dataDir = mkdtempSync(join(tmpdir(), 'bulk-jobs-startup-'));
      taken = await listening();
    });
    after(async () => {
      await new Promise((r) => taken.close(r));
      rmSync(clusterDir(dataDir, 'postgres', SYSTEM_DIR), { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('stops it again when the API cannot listen, and exits 1', async () => {
      const pgPort = await freePort();
      const { code, output } = await run(MAIN_ENTRY, {
        DATA_DIR: dataDir,
        EMBEDDED_PG_PORT: String(pgPort),
        PORT: String(portOf(taken)),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'log',
      });
      expect(code).toBe(1);
      expect(output).toContain('EADDRINUSE');
      // It did start the database (and so had something to stop)...
      expect(output).toContain('embedded PostgreSQL');
      // ...and nothing of it is left: no server on its port, no postmaster.pid.
      const client = new Client({
        host: '127.0.0.1',
        port: pgPort,
        user: 'postgres',
        connectionTimeoutMillis: 2000,
      });
      await expect(client.connect()).rejects.toThrow(/ECONNREFUSED/);
      expect(existsSync(join(clusterDir(dataDir, 'postgres', SYSTEM_DIR), 'postmaster.pid'))).toBe(false);
    });
  });
});

/** The lines an entry wrote that report its failure: one line, no stack. */
function failureLines(output: string): string[] {
  return output.split('\n').filter((l) => l.includes('Cannot start the embedded PostgreSQL'));
}

describe('the embedded PostgreSQL cannot start', () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'bulk-jobs-no-start-'));
  });
  after(() => {
    rmSync(clusterDir(dataDir, 'postgres', SYSTEM_DIR), { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Runs both entries; each must print one line with the cause and the fix, and exit 1. */
  async function expectOneLine(env: Record<string, string>, cause: RegExp, fix: RegExp) {
    for (const entry of [MAIN_ENTRY, WORKER_ENTRY]) {
      const { code, output } = await run(entry, env);
      expect({ entry, code }).toEqual({ entry, code: 1 });
      const lines = failureLines(output);
      expect({ entry, lines: lines.length }).toEqual({ entry, lines: 1 });
      expect(lines[0]).toMatch(cause);
      expect(lines[0]).toMatch(fix);
      expect(lines[0]).toContain('or set DATABASE_URL');
      expect(output).not.toMatch(/^\s+at /m);
      expect(output).not.toContain("'error' event");
    }
  }

  it('names DATA_DIR when it cannot be created', async () => {
    await expectOneLine(
      { DATA_DIR: '/proc/bulk-jobs-data', EMBEDDED_PG_PORT: String(await freePort()) },
      /DATA_DIR \/proc\/bulk-jobs-data cannot be created \(ENOENT\)/,
      /Set DATA_DIR to a folder this user can write/,
    );
  });

  it('names EMBEDDED_PG_PORT when another program holds the port, and leaves no server running', async () => {
    // Something that is not PostgreSQL: it hangs up on every connection.
    const other = createServer((socket) => socket.destroy());
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    try {
      await expectOneLine(
        { DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(portOf(other)) },
        new RegExp(`port ${portOf(other)} is taken by another program`),
        /Set EMBEDDED_PG_PORT to a free port/,
      );
    } finally {
      await new Promise((r) => other.close(r));
    }
    // The cluster was made (so its server was started, and failed); nothing of it runs.
    const dir = clusterDir(dataDir, 'postgres', SYSTEM_DIR);
    expect(existsSync(join(dir, 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(dir, 'postmaster.pid'))).toBe(false);
  });

  if (asRoot) {
    it('as root, names EMBEDDED_PG_SYSTEM_DIR when its binaries cannot be placed there', async () => {
      await expectOneLine(
        {
          DATA_DIR: dataDir,
          EMBEDDED_PG_PORT: String(await freePort()),
          EMBEDDED_PG_SYSTEM_DIR: '/proc/bulk-jobs-system',
        },
        /its binaries cannot be copied to \/proc\/bulk-jobs-system\/binaries\/\S+ \(ENOENT\)/,
        /Set EMBEDDED_PG_SYSTEM_DIR to a folder root can write/,
      );
    });
  }
});

interface Person {
  name: string;
  uid?: number;
  gid?: number;
}

/**
 * Who starts the clone: root (the server then runs as the `postgres` user)
 * and an ordinary user (the server runs as that user); run by an ordinary
 * user, the suite can only be that user.
 */
function people(): Person[] {
  if (!asRoot) return [{ name: userInfo().username }];
  const id = (flag: string) => Number(execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }).trim());
  return [{ name: 'root' }, { name: 'nobody', uid: id('-u'), gid: id('-g') }];
}

/**
 * A clone as `npm install && npm run build` leaves it, in a new mkdtemp
 * folder (0700), owned by whoever starts it: package.json, dist/ (this run's
 * compiled src) and node_modules/. node_modules is hard-linked (a copy where
 * links cannot be made): its files' real paths then lie inside the 0700
 * folder, as in a real clone; a symbolic link would resolve to this tree.
 */
function makeClone(owner: Person): { home: string; clone: string } {
  const home = mkdtempSync(join(tmpdir(), 'bulk-jobs-clone-'));
  const clone = join(home, 'bulk-action-jobs');
  mkdirSync(clone);
  copyFileSync(join(process.cwd(), 'package.json'), join(clone, 'package.json'));
  cpSync(resolve(__dirname, '../../src'), join(clone, 'dist'), { recursive: true });
  const modules = join(process.cwd(), 'node_modules');
  try {
    execFileSync('cp', ['-al', modules, join(clone, 'node_modules')]);
  } catch {
    rmSync(join(clone, 'node_modules'), { recursive: true, force: true });
    execFileSync('cp', ['-a', modules, join(clone, 'node_modules')]);
  }
  if (owner.uid !== undefined) {
    chownSync(home, owner.uid, owner.gid!);
    chownSync(clone, owner.uid, owner.gid!);
  }
  return { home, clone };
}

/** An entry of the clone, started as the given person. */
interface Started {
  output(): string;
  /** Its exit code once it has exited. */
  exited(): number | null | undefined;
  exit: Promise<number | null>;
  stop(signal: NodeJS.Signals): Promise<number | null>;
}

function startEntry(entry: string, clone: string, person: Person, env: Record<string, string>): Started {
  const child = spawn(process.execPath, [entry], {
    cwd: clone,
    uid: person.uid,
    gid: person.gid,
    env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', LOG_FORMAT: 'json', ...SYSTEM_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  let code: number | null | undefined;
  const exit = new Promise<number | null>((r) =>
    child.once('exit', (c) => {
      code = c;
      r(c);
    }),
  );
  return {
    output: () => output,
    exited: () => code,
    exit,
    stop: async (signal) => {
      if (code === undefined) child.kill(signal);
      return exit;
    },
  };
}

/** Polls until check() holds; fails early with the entry's output if it exits. */
async function waitFor(what: string, started: Started, check: () => Promise<boolean>, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (started.exited() !== undefined) {
      throw new Error(`exited (${started.exited()}) before ${what}:\n${started.output()}`);
    }
    if (Date.now() > deadline) throw new Error(`not ${what} within ${timeoutMs} ms:\n${started.output()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const ready = (port: number) => () =>
  fetch(`http://127.0.0.1:${port}/health/ready`).then(
    (r) => r.status === 200,
    () => false,
  );

describe('npm start from a fresh clone under a 0700 folder, without DATABASE_URL', () => {
  for (const person of people()) {
    it(`as ${person.name}: reaches /health/ready with its folder kept closed, a worker process reuses its database, and SIGTERM stops both (exit 0)`, async () => {
      const { home, clone } = makeClone(person);
      const [port, pgPort] = [await freePort(), await freePort()];
      const env = { HOME: home, PORT: String(port), HOST: '127.0.0.1', EMBEDDED_PG_PORT: String(pgPort) };
      const started: Started[] = [];
      let dataIn: string | undefined;
      try {
        const api = startEntry('dist/main.js', clone, person, env);
        started.push(api);
        await waitFor('ready', api, ready(port));

        dataIn = /data in (\S+?)["\s]/.exec(api.output())?.[1];
        expect(dataIn).toBeDefined();
        const data = statSync(dataIn!);
        if (person.name === 'root') {
          // Outside the clone, owned by the unprivileged user the server runs as.
          expect(dataIn!.startsWith(join(SYSTEM_DIR, 'clusters') + '/')).toBe(true);
          expect(data.uid).toBe(Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()));
        } else {
          expect(dataIn).toBe(join(clone, '.data', 'postgres'));
          expect(data.uid).toBe(person.uid ?? process.getuid!());
        }
        // Nothing was opened up: the folders stay private, the secrets 0600.
        expect(statSync(home).mode & 0o777).toBe(0o700);
        expect(statSync(join(clone, '.data')).mode & 0o777).toBe(0o700);
        for (const secret of ['postgres-password', 'jwt-secret']) {
          const mode = statSync(join(clone, '.data', secret)).mode & 0o777;
          expect({ secret, mode }).toEqual({ secret, mode: 0o600 });
        }

        // A second process of the service finds the server running and uses it; stopping it leaves the server up.
        const worker = startEntry('dist/worker.js', clone, person, env);
        started.push(worker);
        await waitFor('ready', worker, async () => worker.output().includes('worker process ready'));
        expect(worker.output()).toContain(`data in ${dataIn} (already running)`);
        expect(await worker.stop('SIGTERM')).toBe(0);
        expect(await ready(port)()).toBe(true);

        expect(await api.stop('SIGTERM')).toBe(0);
        const client = new Client({
          host: '127.0.0.1',
          port: pgPort,
          user: 'postgres',
          connectionTimeoutMillis: 2000,
        });
        await expect(client.connect()).rejects.toThrow(/ECONNREFUSED/);
        expect(existsSync(join(dataIn!, 'postmaster.pid'))).toBe(false);
      } finally {
        // On a failure, what still runs is stopped the way that also stops its database.
        for (const entry of started.reverse()) await entry.stop('SIGTERM');
        if (dataIn?.startsWith(SYSTEM_DIR)) rmSync(dataIn, { recursive: true, force: true });
        rmSync(home, { recursive: true, force: true });
      }
    });
  }
});
