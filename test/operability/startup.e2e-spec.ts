import { expect } from 'expect';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { TEST_JWT_SECRET } from '../support/test-env';

/** The compiled entries, next to this compiled spec. */
const MAIN_ENTRY = resolve(__dirname, '../../src/main.js');
const WORKER_ENTRY = resolve(__dirname, '../../src/worker.js');

/** Runs an entry to its exit; its status and what it wrote. */
function run(entry: string, env: Record<string, string>, timeoutMs = 90_000) {
  return new Promise<{ code: number | null; output: string }>((res, rej) => {
    const child = spawn(process.execPath, [entry], {
      env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', AUTH_JWT_SECRET: TEST_JWT_SECRET, ...env },
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

  describe('after the embedded PostgreSQL started', () => {
    let dataDir: string;
    let taken: Server;
    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'bulk-jobs-startup-'));
      // Run as root, the embedded server runs as a user of its own, which must reach its directory.
      chmodSync(dataDir, 0o755);
      taken = await listening();
    });
    after(async () => {
      await new Promise((r) => taken.close(r));
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
      expect(existsSync(join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
    });
  });
});
