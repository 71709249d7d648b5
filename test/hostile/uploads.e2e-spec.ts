import { expect } from 'expect';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Pool } from 'pg';
import type { Response } from 'supertest';
import { BulkJobsIngestService } from '../../src/bulk-jobs/bulk-jobs-ingest.service';
import { Database } from '../../src/database/database';
import { JOBS } from '../support/api';
import { createTestApp, type TestApp } from '../support/app';
import { createEngineDatabase, type EngineDatabase } from '../support/engine';
import { countJobs, insertJob } from '../support/factories';
import {
  connectionsInUse,
  latencyBound,
  PoliteClient,
  summary,
  tally,
  type Timed,
} from '../support/polite-client';
import { expectProblem } from '../support/problem-matcher';
import { activeCopies } from '../support/sessions';
import { bearer, newOwner, tokenFor } from '../support/tokens';
import { sleep, waitFor, within } from '../support/wait';

/**
 * A hostile client with one valid token, against streaming creates and slow
 * bodies: uploads that stop sending, more of them than the pool has
 * connections, and clients that read their answers a byte at a time. Each
 * attack runs beside a polite client whose latency is compared with its own,
 * measured in the same test before the attack.
 */

const NDJSON = 'application/x-ndjson';
const POOL_SIZE = 10;
/** Half the pool: the default cap of concurrent uploads per process. */
const UPLOADS_PER_PROCESS = POOL_SIZE / 2;
const IDLE_MS = 5_000;
const SPEC_LINE = '{"action":"noop"}\n';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A request whose body the client starts and then stops sending, as a stalled uploader does. */
interface StalledRequest {
  /** The answer, once it has been read entirely. */
  answer: () => Answer | undefined;
  answered: Promise<Answer>;
  /** When the connection closed; undefined while it is open. */
  closedAt: () => number | undefined;
  /** True if the server closed the connection (the client never does, but for destroy()). */
  closedByServer: () => boolean;
  /** Sends more of the body. */
  write: (more: string) => void;
  /** Sends the rest of the body and ends it. */
  finish: (rest: string) => void;
  destroy: () => void;
}

function stalledRequest(
  port: number,
  headers: Record<string, string>,
  firstBytes: string,
  declaredLength?: number,
): StalledRequest {
  const agent = new Agent({ keepAlive: false });
  const req = request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: JOBS,
    headers: declaredLength === undefined ? headers : { ...headers, 'content-length': declaredLength },
    agent,
  });
  let answer: Answer | undefined;
  let closedAt: number | undefined;
  let destroyed = false;
  const answered = new Promise<Answer>((resolve) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        answer = { status: res.statusCode ?? 0, headers: res.headers, body };
        resolve(answer);
      });
      res.on('error', () => undefined);
    });
  });
  req.on('socket', (socket: Socket) => socket.on('close', () => (closedAt ??= performance.now())));
  // A write racing the server's close fails with EPIPE or ECONNRESET: expected here.
  req.on('error', () => undefined);
  req.write(firstBytes);
  return {
    answer: () => answer,
    answered,
    closedAt: () => closedAt,
    closedByServer: () => closedAt !== undefined && !destroyed,
    write: (more) => req.write(more),
    finish: (rest) => req.end(rest),
    destroy: () => {
      if (closedAt === undefined) destroyed = true;
      req.destroy();
      agent.destroy();
    },
  };
}

/** An answer read off the wire, in the shape the shared problem matcher reads. */
const asResponse = (a: Answer, path = JOBS) =>
  ({
    status: a.status,
    headers: a.headers,
    body: JSON.parse(a.body) as unknown,
    req: { path },
  }) as unknown as Response;

describe('hostile clients: uploads and slow bodies', () => {
  let t: TestApp;
  let port: number;
  let base: string;
  let pool: Pool;
  const open: StalledRequest[] = [];
  const stall = (owner: string, bytes = SPEC_LINE) => {
    const s = stalledRequest(port, { ...bearer(tokenFor(owner)), 'content-type': NDJSON }, bytes);
    open.push(s);
    return s;
  };

  let database: EngineDatabase;

  before(async () => {
    // A database of its own: specs beside this one count and end the COPY sessions of theirs.
    database = await createEngineDatabase();
    t = await createTestApp({
      DATABASE_URL: database.url,
      // The production default, as the attack was first seen with.
      DATABASE_POOL_SIZE: String(POOL_SIZE),
      BODY_IDLE_TIMEOUT_MS: String(IDLE_MS),
      // The load below creates more jobs than an owner may have active by default.
      BULK_JOBS_MAX_ACTIVE_PER_OWNER: '0',
    });
    await t.app.listen(0, '127.0.0.1');
    port = (t.app.getHttpServer().address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
    pool = t.app.get(Database).pool;
  });
  /** Drops every request a test left open (a failed one leaves them all), and waits for their connections. */
  const abandonAll = async () => {
    for (const s of open.splice(0)) s.destroy();
    await waitFor(
      'the abandoned requests to give their connections back',
      () => connectionsInUse(pool) === 0,
    );
  };
  after(async () => {
    for (const s of open) s.destroy();
    await t?.close();
    await database?.drop();
  });

  it('14 uploads from 14 owners that stall after the spec line: the polite client keeps its latency, readiness stays green, the uploads past the cap get a 429, and the others a 408 once idle, with nothing stored and every connection closed', async (tc) => {
    const politeOwner = newOwner('polite');
    for (let i = 0; i < 3; i++) await insertJob(t.db, { owner: politeOwner, status: 'completed' });
    const polite = new PoliteClient(base, bearer(tokenFor(politeOwner)));
    const owners = Array.from({ length: 14 }, () => newOwner('stall'));
    try {
      const p50 = await polite.baseline(`${JOBS}?limit=10`);
      const bound = latencyBound(p50);

      const uploads = owners.map((owner) => stall(owner));
      // In place once every upload holds a connection (its COPY runs) or has been answered. Counted on
      // the server: the pool is shared with short statements, such as each new owner's rate-limit reservation.
      const answered = () => uploads.filter((u) => u.answer()).length;
      await waitFor(
        'every upload to hold a connection or be answered',
        async () => (await activeCopies(t.db)) + answered() >= uploads.length,
        { timeoutMs: 15_000, intervalMs: 20 },
      );
      const held = await activeCopies(t.db);
      const during = await polite.series(`${JOBS}?limit=10`, 10);
      const ready = await polite.get('/health/ready');
      const stillHeld = await activeCopies(t.db);
      const early = tally(uploads.map((u) => u.answer()?.status));
      tc.diagnostic(
        `polite GET /jobs: baseline p50 ${p50.toFixed(1)} ms (bound ${bound.toFixed(0)} ms); during the attack ` +
          `${summary(during)}, statuses ${JSON.stringify(tally(during.map((r) => r.status)))}; ` +
          `/health/ready ${ready.status}; uploads holding a connection ${held}, then ${stillHeld}; ` +
          `uploads answered at once ${JSON.stringify(early)}`,
      );

      expect({
        polite: during.map((r) => r.status),
        slow: during.filter((r) => r.ms >= bound).map((r) => Math.round(r.ms)),
        ready: ready.status,
      }).toEqual({ polite: new Array(10).fill(200), slow: [], ready: 200 });
      // The attack was in place all along: the uploads under the cap each held a connection.
      expect({ held, stillHeld, early }).toEqual({
        held: UPLOADS_PER_PROCESS,
        stillHeld: UPLOADS_PER_PROCESS,
        early: { '429': 14 - UPLOADS_PER_PROCESS, none: UPLOADS_PER_PROCESS },
      });
      for (const refused of uploads.filter((u) => u.answer())) {
        const answer = refused.answer()!;
        expectProblem(asResponse(answer), 429, {
          type: '/problems/too-many-uploads',
          max_uploads: UPLOADS_PER_PROCESS,
          per: 'server',
        });
        expect(Number(answer.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      }

      // Idle for BODY_IDLE_TIMEOUT_MS: a 408 the client can read, the create rolled back, the connection closed.
      const admitted = uploads.filter((u) => !u.answer());
      const answers = await within(
        Promise.all(admitted.map((u) => u.answered)),
        IDLE_MS + 15_000,
        'a 408 for every upload admitted',
      );
      for (const answer of answers) {
        expectProblem(asResponse(answer), 408, { type: 'about:blank', title: 'Request Timeout' });
        expect(answer.headers.connection).toBe('close');
      }
      await waitFor('the server to close every upload connection', () =>
        uploads.every((u) => u.closedByServer()),
      );
      expect(connectionsInUse(pool)).toBe(0);
      expect(t.app.get(BulkJobsIngestService).uploadsInProgress()).toBe(0);
      for (const owner of owners)
        expect({ owner, jobs: await countJobs(t.db, owner) }).toEqual({ owner, jobs: 0 });
      // And the service takes uploads again.
      const after = stall(newOwner('after'), `${SPEC_LINE}"a"\n`);
      after.finish('"b"\n');
      expect((await within(after.answered, 10_000, 'an upload after the attack')).status).toBe(202);
    } finally {
      polite.close();
      await abandonAll();
    }
  });

  it('caps concurrent uploads per owner at 2 with a 429 that says so, leaves other owners alone, and frees the slot when an upload ends', async () => {
    const owner = newOwner('greedy');
    try {
      const first = stall(owner);
      const second = stall(owner);
      await waitFor('both uploads to hold a connection', async () => (await activeCopies(t.db)) >= 2, {
        intervalMs: 20,
      });
      const third = stall(owner);
      const refused = await within(third.answered, 10_000, 'an answer to the third upload');
      expectProblem(asResponse(refused), 429, {
        type: '/problems/too-many-uploads',
        max_uploads: 2,
        per: 'owner',
      });
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);

      const other = stall(newOwner('other'), `${SPEC_LINE}"a"\n`);
      other.finish('"b"\n');
      expect((await within(other.answered, 10_000, "the other owner's upload")).status).toBe(202);

      first.finish('"a"\n"b"\n');
      expect((await within(first.answered, 10_000, 'the first upload')).status).toBe(202);
      const again = stall(owner, `${SPEC_LINE}"c"\n`);
      again.finish('');
      expect((await within(again.answered, 10_000, 'the next upload')).status).toBe(202);

      second.destroy();
      third.destroy();
      await waitFor('the aborted upload to give its connection back', () => connectionsInUse(pool) === 0);
      expect(await countJobs(t.db, owner)).toBe(2);
    } finally {
      await abandonAll();
    }
  });

  it('ends a JSON body that stops arriving with a 408 and closes the connection; meanwhile it holds no database connection', async () => {
    const owner = newOwner('slow-json');
    const polite = new PoliteClient(base, bearer(tokenFor(newOwner('polite'))));
    try {
      const body = '{"action":"noop","targets":["a","b"]}';
      const slow = stalledRequest(
        port,
        { ...bearer(tokenFor(owner)), 'content-type': 'application/json' },
        body.slice(0, 10),
        Buffer.byteLength(body),
      );
      open.push(slow);
      await sleep(300);
      expect(connectionsInUse(pool)).toBe(0);
      expect((await polite.get(JOBS)).status).toBe(200);
      const answer = await within(slow.answered, IDLE_MS + 15_000, 'an answer to the stalled JSON body');
      expectProblem(asResponse(answer), 408, { type: 'about:blank', title: 'Request Timeout' });
      expect(answer.headers.connection).toBe('close');
      await waitFor('the server to close the connection', () => slow.closedByServer());
      expect(await countJobs(t.db, owner)).toBe(0);
    } finally {
      polite.close();
      await abandonAll();
    }
  });

  it('lets a client read a 30 MB page at one byte a second without holding a database connection', async (tc) => {
    const reader = newOwner('slow-reader');
    // 500 jobs with 60 KB of params each: more than the kernel's socket buffers hold on loopback.
    await t.db.query(
      `INSERT INTO bulk_jobs (id, owner, action, params, status, created_at, updated_at)
       SELECT gen_random_uuid(), $1, 'noop', jsonb_build_object('blob', repeat('x', 60000)), 'completed', t, t
       FROM (SELECT now() - g * interval '1 millisecond' AS t FROM generate_series(1, 500) AS g) s`,
      [reader],
    );
    const server = t.app.getHttpServer();
    const serverSockets: Socket[] = [];
    const track = (s: Socket) => serverSockets.push(s);
    server.on('connection', track);
    const polite = new PoliteClient(base, bearer(tokenFor(newOwner('polite'))));
    const p50 = await polite.baseline(`${JOBS}?limit=10`);
    const slow = connect(port, '127.0.0.1');
    try {
      await new Promise<void>((resolve, reject) => {
        slow.once('connect', resolve);
        slow.once('error', reject);
      });
      slow.write(
        `GET ${JOBS}?limit=500 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${tokenFor(reader)}\r\n\r\n`,
      );
      // Paused: the client takes one byte a second out of its buffer; the rest waits in the kernel and the server.
      let read = 0;
      const reading = setInterval(() => {
        if (slow.read(1)) read++;
      }, 1000);
      try {
        const mine = await waitFor(
          'the server to have more to write than the client takes, and the client to read two bytes',
          () =>
            read >= 2 && serverSockets.find((s) => s.remotePort === slow.localPort && s.writableLength > 0),
          { intervalMs: 50, timeoutMs: 20_000 },
        );
        const during: Timed[] = await polite.series(`${JOBS}?limit=10`, 10);
        tc.diagnostic(
          `slow reader: ${read} bytes read, ${mine.writableLength} bytes still queued in the server; ` +
            `connections held ${connectionsInUse(pool)}; polite GET ${summary(during)} (p50 before ${p50.toFixed(1)} ms)`,
        );
        expect(mine.writableLength).toBeGreaterThan(1_000_000);
        expect(connectionsInUse(pool)).toBe(0);
        expect(during.map((r) => r.status)).toEqual(new Array(10).fill(200));
        expect(during.filter((r) => r.ms >= latencyBound(p50)).map((r) => Math.round(r.ms))).toEqual([]);
      } finally {
        clearInterval(reading);
      }
    } finally {
      server.off('connection', track);
      slow.destroy();
      polite.close();
    }
  });

  /**
   * Uploads at the cap hold half the pool. A load of reads and inline creates
   * with the whole pool (what a pool of their own for uploads would leave
   * them) against the same load with half of it: if the second is not
   * measurably worse, the cap is isolation enough.
   */
  it('measures a load of reads and inline creates with and without uploads holding their cap of connections', async (tc) => {
    const owner = newOwner('load');
    await insertJob(t.db, { owner, status: 'completed' });
    const token = tokenFor(owner);
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    const CONCURRENCY = 8;
    const PER_LOOP = 40;
    const call = (i: number) =>
      new Promise<Timed>((resolve, reject) => {
        const create = i % 2 === 1;
        const started = performance.now();
        const req = request(
          {
            host: '127.0.0.1',
            port,
            method: create ? 'POST' : 'GET',
            path: create ? JOBS : `${JOBS}?limit=10`,
            headers: { ...bearer(token), ...(create ? { 'content-type': 'application/json' } : {}) },
            agent,
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
          },
        );
        req.setTimeout(20_000, () => req.destroy(new Error('no answer in 20 s')));
        req.on('error', reject);
        req.end(create ? JSON.stringify({ action: 'noop', targets: ['a', 'b', 'c'] }) : undefined);
      });
    const load = async () => {
      const started = performance.now();
      const runs = (
        await Promise.all(
          Array.from({ length: CONCURRENCY }, async () => {
            const out: Timed[] = [];
            for (let i = 0; i < PER_LOOP; i++) out.push(await call(i));
            return out;
          }),
        )
      ).flat();
      return { runs, seconds: (performance.now() - started) / 1000 };
    };
    let waiting = 0;
    const sampler = setInterval(() => (waiting = Math.max(waiting, pool.waitingCount)), 5);
    /** One load, and the most requests that waited for a connection during it. */
    const measured = async () => {
      waiting = 0;
      const l = await load();
      return { ...l, waited: waiting };
    };
    try {
      await load(); // warm-up
      // Whole pool, half the pool, whole pool again: the two loads with the whole pool bracket any drift.
      const before = await measured();
      const uploads = Array.from({ length: UPLOADS_PER_PROCESS }, () => stall(newOwner('holder')));
      await waitFor(
        'the uploads to hold their connections',
        async () => (await activeCopies(t.db)) >= UPLOADS_PER_PROCESS,
        {
          intervalMs: 20,
        },
      );
      const capped = await measured();
      const stillHeld = uploads.every((u) => !u.answer());
      for (const u of uploads) u.destroy();
      await waitFor('the uploads to give their connections back', () => connectionsInUse(pool) === 0);
      const after = await measured();
      type Load = { runs: Timed[]; seconds: number; waited: number };
      const rate = (l: Load) => l.runs.length / l.seconds;
      const p50 = (l: Load) => [...l.runs.map((r) => r.ms)].sort((a, b) => a - b)[l.runs.length >> 1];
      const show = (l: Load) =>
        `${rate(l).toFixed(0)} req/s, ${summary(l.runs)}, at most ${l.waited} waiting`;
      const freeRate = (rate(before) + rate(after)) / 2;
      const freeP50 = (p50(before) + p50(after)) / 2;
      tc.diagnostic(
        `${CONCURRENCY}×${PER_LOOP} GET /jobs and JSON creates, pool ${POOL_SIZE}: whole pool ${show(before)}; ` +
          `${UPLOADS_PER_PROCESS} uploads holding connections ${show(capped)}; whole pool again ${show(after)}; ` +
          `half the pool / whole pool: ${(rate(capped) / freeRate).toFixed(3)} req/s, ` +
          `${(p50(capped) / freeP50).toFixed(3)} p50`,
      );
      const bound = latencyBound(freeP50);
      expect(stillHeld).toBe(true);
      expect(tally(capped.runs.map((r) => r.status))).toEqual({
        '200': (CONCURRENCY * PER_LOOP) / 2,
        '202': (CONCURRENCY * PER_LOOP) / 2,
      });
      expect(capped.runs.filter((r) => r.ms >= bound).map((r) => Math.round(r.ms))).toEqual([]);
    } finally {
      clearInterval(sampler);
      agent.destroy();
      await abandonAll();
    }
  });

  describe('with BODY_IDLE_TIMEOUT_MS=1000', () => {
    const SHORT_MS = 1000;
    let quick: TestApp;
    let quickPort: number;
    before(async () => {
      quick = await createTestApp({
        DATABASE_URL: database.url,
        BODY_IDLE_TIMEOUT_MS: String(SHORT_MS),
        BODY_LIMIT_BYTES: '2048',
      });
      await quick.app.listen(0, '127.0.0.1');
      quickPort = (quick.app.getHttpServer().address() as AddressInfo).port;
    });
    after(() => quick.close());

    const send = (owner: string, contentType: string, first: string) => {
      const s = stalledRequest(quickPort, { ...bearer(tokenFor(owner)), 'content-type': contentType }, first);
      open.push(s);
      return s;
    };
    /** Writes the pieces `gapMs` apart, then ends the body: slow, but never idle for long. */
    const trickle = async (s: StalledRequest, pieces: string[], gapMs: number) => {
      for (const piece of pieces) {
        await sleep(gapMs);
        s.write(piece);
      }
      s.finish('');
    };

    it('accepts a stream that is slow but never idle that long, though it takes longer in all', async () => {
      const owner = newOwner('steady');
      const s = send(owner, NDJSON, SPEC_LINE);
      await trickle(s, ['"a"\n', '"b"\n', '"c', '"\n', '"d"\n', '"e"\n'], SHORT_MS * 0.4);
      const answer = await within(s.answered, 10_000, 'the answer to a steady stream');
      expect(answer.status).toBe(202);
      expect(JSON.parse(answer.body)).toMatchObject({ total_items: 5 });
    });

    it('accepts a JSON body that is slow but never idle that long', async () => {
      const owner = newOwner('steady-json');
      const body = JSON.stringify({ action: 'noop', targets: ['a', 'b', 'c'] });
      const s = stalledRequest(
        quickPort,
        {
          ...bearer(tokenFor(owner)),
          'content-type': 'application/json',
          'content-length': String(body.length),
        },
        body.slice(0, 8),
      );
      open.push(s);
      await trickle(s, [body.slice(8, 16), body.slice(16, 30), body.slice(30)], SHORT_MS * 0.4);
      expect((await within(s.answered, 10_000, 'the answer to a steady JSON body')).status).toBe(202);
    });

    for (const [where, first] of [
      ['in the middle of the spec line', '{"action":"no'],
      ['after 3,000 targets, in the middle of a line', `${SPEC_LINE}${'"t"\n'.repeat(3000)}"hal`],
    ] as const) {
      it(`ends a stream that stops ${where} with a 408, stores nothing, closes the connection and frees its slot`, async () => {
        const owner = newOwner('stall');
        const s = send(owner, NDJSON, first);
        const answer = await within(s.answered, SHORT_MS + 10_000, 'the 408');
        expectProblem(asResponse(answer), 408, { type: 'about:blank', title: 'Request Timeout' });
        expect(answer.headers.connection).toBe('close');
        await waitFor('the server to close the connection', () => s.closedByServer());
        expect(await countJobs(quick.db, owner)).toBe(0);
        expect(quick.app.get(BulkJobsIngestService).uploadsInProgress()).toBe(0);
        expect(connectionsInUse(quick.app.get(Database).pool)).toBe(0);
      });
    }

    it('answers a JSON body it does not read (over the size limit) at once, and keeps serving once the body would have been idle too long', async () => {
      const owner = newOwner('large');
      const s = stalledRequest(
        quickPort,
        { ...bearer(tokenFor(owner)), 'content-type': 'application/json', 'content-length': '100000' },
        '{"action":"noop","targets":[',
      );
      open.push(s);
      expect((await within(s.answered, 10_000, 'the 413')).status).toBe(413);
      await sleep(SHORT_MS * 2);
      const res = await quick
        .http()
        .get(JOBS)
        .set(bearer(tokenFor(owner)));
      expect(res.status).toBe(200);
      s.destroy();
    });

    it('forgets a JSON body whose client goes away halfway, and keeps serving after the idle timeout', async () => {
      const owner = newOwner('gone');
      const body = JSON.stringify({ action: 'noop', targets: ['a', 'b'] });
      const s = stalledRequest(
        quickPort,
        {
          ...bearer(tokenFor(owner)),
          'content-type': 'application/json',
          'content-length': String(body.length),
        },
        body.slice(0, 12),
      );
      await sleep(100);
      s.destroy();
      await sleep(SHORT_MS * 2);
      expect(
        (
          await quick
            .http()
            .get(JOBS)
            .set(bearer(tokenFor(owner)))
        ).status,
      ).toBe(200);
      expect(await countJobs(quick.db, owner)).toBe(0);
    });

    it('closes the connection of an upload refused for its cap that then stops sending', async () => {
      const owner = newOwner('refused');
      const held = [send(owner, NDJSON, SPEC_LINE), send(owner, NDJSON, SPEC_LINE)];
      await waitFor(
        'both uploads to be in progress',
        () => quick.app.get(BulkJobsIngestService).uploadsInProgress(owner) === 2,
      );
      const refused = send(owner, NDJSON, SPEC_LINE);
      expect((await within(refused.answered, 10_000, 'the 429')).status).toBe(429);
      // Answered before its body was read; the server waits for the rest as long as it keeps coming.
      await waitFor('the server to close the refused connection', () => refused.closedByServer(), {
        timeoutMs: SHORT_MS + 10_000,
      });
      for (const h of held) expect((await within(h.answered, SHORT_MS + 10_000, 'the 408')).status).toBe(408);
    });
  });

  it('sets the server timeouts that bound slow clients: a whole request in REQUEST_TIMEOUT_MS, headers in 60 s, idle keep-alive 72 s', () => {
    const server = t.app.getHttpServer();
    expect({
      requestTimeout: server.requestTimeout,
      headersTimeout: server.headersTimeout,
      keepAliveTimeout: server.keepAliveTimeout,
    }).toEqual({ requestTimeout: 300_000, headersTimeout: 60_000, keepAliveTimeout: 72_000 });
  });
});
