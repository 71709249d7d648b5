import { expect } from 'expect';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createAppLogger } from '../../src/logging/app-logger';
import { bootTestApp, type TestApp } from '../support/app';
import { captureLogs } from '../support/boot';
import { testEnv } from '../support/test-env';
import { ACTIONS, createJob, JOBS, jobBody } from '../support/api';
import { createEngineDatabase, waitForJob, type EngineDatabase } from '../support/engine';
import { expectProblem } from '../support/problem-matcher';
import { openSse } from '../support/sse-client';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const LITERAL = {
  Authorization: 'Bearer downstream-secret-1',
  Cookie: 'session=downstream-secret-2',
  'X-Api-Key': 'downstream-secret-3',
  'X-Trace': 'not-a-secret',
};

describe('hostile client: credentials sent in params.headers', () => {
  let t: TestApp;
  let base: string;
  const logs = captureLogs();
  before(async () => {
    const env = { ACTIONS_HTTP_ALLOWED_HOSTS: 'downstream.example', LOG_LEVEL: 'log', LOG_FORMAT: 'json' };
    t = await bootTestApp({ env, logger: createAppLogger(testEnv(env), logs) });
    await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
  });
  after(() => t.close());

  it('never echoes a literal credential header back: create, replay, GET, list, cancel, events', async () => {
    const owner = newOwner('hostile');
    const auth = bearer(tokenFor(owner));
    const body = {
      action: 'http',
      params: { url: 'https://downstream.example/users/{id}', headers: LITERAL },
      targets: ['u1'],
    };
    const created = await t.http().post(JOBS).set(auth).set('Idempotency-Key', 'k1').send(body);
    expect(created.status).toBe(202);
    const id = (created.body as { id: string }).id;
    const replay = await t.http().post(JOBS).set(auth).set('Idempotency-Key', 'k1').send(body);
    expect(replay.status).toBe(202);
    const got = await t.http().get(`${JOBS}/${id}`).set(auth);
    const listed = await t.http().get(JOBS).set(auth);
    const stream = await openSse(`${base}${JOBS}/${id}/events`, auth);
    const first = await stream.waitForEvent(() => true);
    stream.destroy();
    const cancelled = await t.http().post(`${JOBS}/${id}/cancel`).set(auth);
    const seen = {
      created: created.text,
      replay: replay.text,
      get: got.text,
      list: listed.text,
      event: first.data,
      cancel: cancelled.text,
    };
    const leaks = Object.entries(seen)
      .filter(([, text]) => /downstream-secret/.test(text))
      .map(([where]) => where);
    expect(leaks).toEqual([]);
    for (const [where, text] of Object.entries(seen))
      expect({ where, kept: text.includes('not-a-secret') }).toEqual({ where, kept: true });
    // Stored as sent, so that the job works.
    const [row]: { params: { headers: Record<string, string> } }[] = await t.db.query(
      'SELECT params FROM bulk_jobs WHERE id = $1',
      [id],
    );
    expect(row.params.headers).toEqual(LITERAL);
    // Nor in a log line.
    expect(logs.text()).not.toContain('downstream-secret');
  });

  it('writes no parameter of a failing statement to the console or the log (TypeORM logged them outside pino)', async () => {
    const printed: string[] = [];
    const originals = { log: console.log, error: console.error, warn: console.warn };
    const capture = (...args: unknown[]) => void printed.push(args.map(String).join(' '));
    console.log = console.error = console.warn = capture;
    try {
      await expect(
        t.db.query('SELECT $1::int AS n', ['Bearer leaked-by-a-failing-statement']),
      ).rejects.toThrow();
    } finally {
      Object.assign(console, originals);
    }
    expect(printed.join('\n')).not.toContain('leaked-by-a-failing-statement');
    // It is logged, through the service's logger, with its SQLSTATE and without the value.
    const line = logs.lines.find((l) => l.context === 'TypeORM');
    expect(line).toMatchObject({ level: 'error', msg: expect.stringContaining('database error 22P02') });
    expect(logs.text()).not.toContain('leaked-by-a-failing-statement');
  });
});

/** A downstream on loopback that records each request's path and headers, and redirects when asked. */
class Downstream {
  readonly seen: { path: string; headers: IncomingHttpHeaders }[] = [];
  private server: Server | undefined;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const path = req.url ?? '/';
      this.seen.push({ path, headers: req.headers });
      req.resume();
      // To the same server under another name: another origin, on the allow-list too.
      if (path.startsWith('/away/'))
        return void res.writeHead(307, { location: `http://localhost:${this.port}/landed` }).end();
      if (path.startsWith('/here/')) return void res.writeHead(307, { location: '/landed-here' }).end();
      res.writeHead(204).end();
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }
}

describe('http action: credentials by reference to server-side secrets', () => {
  const SECRET = 'Bearer value-only-the-server-knows';
  let db: EngineDatabase;
  let t: TestApp;
  const downstream = new Downstream();
  const logs = captureLogs();
  const owner = newOwner('secrets');
  const auth = bearer(tokenFor(owner));

  before(async () => {
    await downstream.start();
    db = await createEngineDatabase();
    const env = {
      ACTIONS_HTTP_ALLOWED_HOSTS: `127.0.0.1:${downstream.port},localhost:${downstream.port}`,
      ACTIONS_HTTP_SECRETS: JSON.stringify({ 'crm-token': SECRET }),
      WORKER_POLL_INTERVAL_MS: '50',
      LOG_LEVEL: 'log',
      LOG_FORMAT: 'json',
    };
    t = await bootTestApp({
      databaseUrl: db.url,
      worker: true,
      env,
      logger: createAppLogger(testEnv(env), logs),
    });
  });

  after(async () => {
    await t?.close();
    await db?.drop();
    await downstream.stop();
  });

  const headers = { Authorization: { $secret: 'crm-token' }, 'X-Api-Key': 'literal-key', 'X-Trace': 't-1' };

  it('sends the secret, shows the reference, and keeps the value out of every response and log line', async () => {
    const base = `http://127.0.0.1:${downstream.port}`;
    const job = await createJob(t, owner, {
      action: 'http',
      params: { url: `${base}/ok/{id}`, method: 'GET', headers },
      targets: ['u1'],
    });
    expect(job.params.headers).toEqual({
      Authorization: { $secret: 'crm-token' },
      'X-Api-Key': '[REDACTED]',
      'X-Trace': 't-1',
    });
    expect((await waitForJob(t.db, job.id, ['completed', 'failed'])).status).toBe('completed');
    const [sent] = downstream.seen.filter((s) => s.path === '/ok/u1');
    expect(sent.headers).toMatchObject({
      authorization: SECRET,
      'x-api-key': 'literal-key',
      'x-trace': 't-1',
    });
    const got = await t.http().get(`${JOBS}/${job.id}`).set(auth);
    expect(jobBody(got).params).toEqual(job.params);
    expect(got.text).not.toContain('value-only-the-server-knows');
    expect(logs.text()).not.toContain('value-only-the-server-knows');
    expect(logs.text()).not.toContain('literal-key');
  });

  it('does not take credentials along a redirect to another origin, and does along one to the same', async () => {
    const base = `http://127.0.0.1:${downstream.port}`;
    for (const path of ['away', 'here']) {
      const job = await createJob(t, owner, {
        action: 'http',
        params: { url: `${base}/${path}/{id}`, method: 'GET', headers },
        targets: ['r1'],
      });
      expect((await waitForJob(t.db, job.id, ['completed', 'failed'])).status).toBe('completed');
    }
    const landed = downstream.seen.find((s) => s.path === '/landed')!;
    expect(landed.headers.authorization).toBeUndefined();
    expect(landed.headers['x-api-key']).toBeUndefined();
    expect(landed.headers['x-trace']).toBe('t-1');
    const stayed = downstream.seen.find((s) => s.path === '/landed-here')!;
    expect(stayed.headers).toMatchObject({ authorization: SECRET, 'x-api-key': 'literal-key' });
  });

  it('refuses a reference to a secret the server does not have, naming the header', async () => {
    const res = await t
      .http()
      .post(JOBS)
      .set(auth)
      .send({
        action: 'http',
        params: {
          url: `http://127.0.0.1:${downstream.port}/ok/{id}`,
          headers: { 'X-Key': { $secret: 'nope' } },
        },
        targets: ['a'],
      });
    expectProblem(res, 400, {
      type: '/problems/validation-error',
      details: { 'params.headers.X-Key': expect.stringContaining('"nope"') },
    });
    const malformed = await t
      .http()
      .post(JOBS)
      .set(auth)
      .send({
        action: 'http',
        params: {
          url: `http://127.0.0.1:${downstream.port}/ok/{id}`,
          headers: { 'X-Key': { $secret: 'crm-token', also: 'x' } },
        },
        targets: ['a'],
      });
    expectProblem(malformed, 400, { details: { 'params.headers.X-Key': expect.any(String) } });
  });

  it('shows the reference form in the params schema of GET /actions', async () => {
    const res = await t.http().get(ACTIONS).set(auth);
    const http = (
      res.body as { items: { name: string; params_schema: Record<string, unknown> }[] }
    ).items.find((a) => a.name === 'http')!;
    expect(http.params_schema).toMatchObject({
      properties: {
        headers: {
          additionalProperties: {
            oneOf: [
              { type: 'string' },
              { required: ['$secret'], properties: { $secret: { type: 'string' } } },
            ],
          },
        },
      },
    });
  });
});
