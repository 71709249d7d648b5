import { expect } from 'expect';
import { randomInt } from 'node:crypto';
import { Agent, request, STATUS_CODES, type IncomingHttpHeaders } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { DataSource } from 'typeorm';
import type { Response } from 'supertest';
import { JOB_VIEW, toJobResponse, type JobView } from '../../src/bulk-jobs/bulk-job.mapper';
import { selectList } from '../../src/database/sql';
import { BulkJob } from '../../src/jobs/bulk-job.entity';
import type { BulkJobResponseDto } from '../../src/bulk-jobs/dto/bulk-job-response.dto';
import { JOBS } from '../support/api';
import { createTestApp, type TestApp } from '../support/app';
import { createEngineDatabase, type EngineDatabase } from '../support/engine';
import { insertJob } from '../support/factories';
import { expectProblem, LEAKS } from '../support/problem-matcher';
import { tokenFor } from '../support/tokens';
import {
  buildTokens,
  OWNERS,
  RequestGenerator,
  Rng,
  type FuzzContext,
  type FuzzRequest,
  type SeededJob,
} from './generator';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : randomInt(2 ** 31);
/** Requests whose tokens cannot change anything: the database must come out of them untouched. */
const REFUSED_PHASE = 2_000;
const MIXED_PHASE = 8_000;
const CONCURRENCY = 8;
const REQUEST_TIMEOUT_MS = 20_000;
const MAX_REPORTED = 15;

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface Violation {
  req: FuzzRequest;
  problem: string;
  answer?: Answer;
}

const preview = (b: Buffer | string | undefined, max = 300) => {
  if (b === undefined) return '(none)';
  const s = typeof b === 'string' ? b : b.toString('latin1');
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}… (${s.length} bytes)` : s);
};

function describeViolation(v: Violation): string {
  const { req, answer } = v;
  const headers = Object.entries(req.headers)
    .map(([k, val]) => `${k}: ${preview(val, 80)}`)
    .join('; ');
  return [
    `#${req.n} ${v.problem}`,
    `  request: ${req.method} ${preview(req.path, 200)} (${req.note})`,
    `  headers: ${headers}`,
    `  body: ${preview(req.body)}`,
    answer
      ? `  answer: ${answer.status} ${String(answer.headers['content-type'])} ${preview(answer.body)}`
      : '  answer: none',
  ].join('\n');
}

/** Sends one request on the wire as generated: raw path, headers and body bytes. */
function send(port: number, agent: Agent, req: FuzzRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...req.headers };
    if (req.body !== undefined) headers['content-length'] = String(req.body.length);
    const r = request(
      { host: '127.0.0.1', port, method: req.method, path: req.path, headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    r.setTimeout(REQUEST_TIMEOUT_MS, () => r.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    r.on('error', reject);
    r.end(req.body);
  });
}

/**
 * The shared matcher's rules as a plain predicate: `expect` builds an error
 * with a stack trace for every assertion, which for thousands of answers costs
 * more than the requests. The first answers of each status, and any answer
 * this refuses, still go through the matcher itself.
 */
function envelopeFault(
  body: unknown,
  status: number,
  path: string | undefined,
  requestIdHeader: unknown,
): string | undefined {
  if (typeof body !== 'object' || body === null) return 'not an object';
  const p = body as Record<string, unknown>;
  if (typeof p.type !== 'string' || typeof p.title !== 'string') return 'type or title';
  if (p.status !== status) return 'status';
  if (typeof p.detail !== 'string' || p.detail.length === 0 || p.error !== p.detail) return 'detail or error';
  if (p.instance !== path?.split('?')[0]) return 'instance';
  if (typeof p.requestId !== 'string' || p.requestId !== requestIdHeader) return 'requestId';
  if (p.type === 'about:blank' ? p.title !== STATUS_CODES[status] : !/^\/problems\/[a-z0-9-]+$/.test(p.type))
    return 'type';
  if ('details' in p) {
    if (typeof p.details !== 'object' || p.details === null) return 'details';
    if (Object.values(p.details).some((v) => typeof v !== 'string')) return 'details';
  }
  const text = JSON.stringify(body);
  if (LEAKS.some((leak) => leak.test(text))) return 'leak';
  return undefined;
}

const matcherRuns = new Map<number, number>();

/** What a refused request must look like: a problem+json envelope the shared matcher accepts. */
function checkAnswer(req: FuzzRequest, answer: Answer): string | undefined {
  if (answer.status >= 500) return `answered ${answer.status}`;
  if (answer.status < 400) return undefined;
  const type = String(answer.headers['content-type'] ?? '');
  if (!/^application\/problem\+json/.test(type)) return `answered ${answer.status} with Content-Type ${type}`;
  if (req.method === 'HEAD') return undefined;
  let body: unknown;
  try {
    body = JSON.parse(answer.body.toString('utf8'));
  } catch {
    return `answered ${answer.status} with a body that is not JSON`;
  }
  // Node's parser hands the server only the packet it failed on: when the request line came in an
  // earlier one (a long line, or a slow or loaded connection), the path is unknown there and the
  // parser's problem has no `instance`. Anything else must name the request's path.
  const parserError = answer.headers.connection === 'close' && [400, 408, 431].includes(answer.status);
  const unknownPath = parserError && !('instance' in ((body as object | null) ?? {}));
  const path = unknownPath ? undefined : req.path;
  const runs = matcherRuns.get(answer.status) ?? 0;
  const fault = envelopeFault(body, answer.status, path, answer.headers['x-request-id']);
  if (!fault && runs >= 50) return undefined;
  matcherRuns.set(answer.status, runs + 1);
  // The matcher reads a supertest response; this is the part of one it looks at.
  const res = { status: answer.status, headers: answer.headers, body, req: { path } } as unknown as Response;
  try {
    expectProblem(res, answer.status);
  } catch (err) {
    const message = (err as Error).message.split('\n').slice(0, 6).join(' ');
    return `answered ${answer.status} with a problem the matcher refuses: ${preview(message, 400)}`;
  }
  return fault && `answered ${answer.status} with a problem whose ${fault} is wrong`;
}

/** Row count and checksum of every table but the migrations' own. */
async function snapshotAll(db: DataSource): Promise<Record<string, { n: number; sum: string }>> {
  const tables: { name: string }[] = await db.query(
    `SELECT table_name AS name FROM information_schema.tables
     WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'migrations' ORDER BY 1`,
  );
  const out: Record<string, { n: number; sum: string }> = {};
  for (const { name } of tables) {
    const rows: { n: number; sum: string }[] = await db.query(
      `SELECT count(*)::int AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS sum FROM "${name}" t`,
    );
    out[name] = rows[0];
  }
  return out;
}

interface JobSnapshot {
  row: JobView;
  rowSum: string;
  items: Record<string, unknown>[];
  itemSum: string;
}

async function snapshotJobs(db: DataSource): Promise<Map<string, JobSnapshot>> {
  const jobs: (JobView & { row_sum: string })[] = await db.query(
    `SELECT ${selectList(db.getMetadata(BulkJob), JOB_VIEW)}, md5(j::text) AS row_sum FROM bulk_jobs j`,
  );
  const items: { job_id: string; items: Record<string, unknown>[]; sum: string }[] = await db.query(
    `SELECT job_id, json_agg(to_jsonb(i) - 'job_id' ORDER BY seq) AS items,
            md5(string_agg(i::text, '|' ORDER BY seq)) AS sum
     FROM bulk_job_items i GROUP BY job_id`,
  );
  const byJob = new Map(items.map((i) => [i.job_id, i]));
  return new Map(
    jobs.map((j) => [
      j.id,
      { row: j, rowSum: j.row_sum, items: byJob.get(j.id)?.items ?? [], itemSum: byJob.get(j.id)?.sum ?? '' },
    ]),
  );
}

/** What the accepted requests did to one seeded job, in the order they were answered. */
interface Expected {
  job: BulkJobResponseDto;
  deleted: boolean;
  cancelled: boolean;
}

/** The job without updated_at, and without the delete timestamps when a delete set them (at a time unknown here). */
const comparable = (job: BulkJobResponseDto, deleted: boolean) => {
  const { updated_at: _u, deleted_at, purge_at, ...rest } = job;
  return deleted ? rest : { ...rest, deleted_at, purge_at };
};
const isDeleted = (job: BulkJobResponseDto) => job.deleted_at !== null && job.purge_at !== null;

describe('fuzz: generated requests against the running app', () => {
  let database: EngineDatabase;
  let t: TestApp;
  let port: number;
  let ctx: FuzzContext;
  /** Every request that named a seeded job, per job, for the message of a failed ledger check. */
  const history = new Map<string, string[]>();

  before(async () => {
    // A database of its own: the checksums cover whole tables, which other specs would change.
    database = await createEngineDatabase();
    t = await createTestApp({
      DATABASE_URL: database.url,
      BODY_LIMIT_BYTES: String(256 * 1024),
      BULK_JOBS_MAX_INLINE_TARGETS: '1000',
      BULK_JOBS_MAX_TARGETS: '2000',
      // The fuzz sends thousands of requests under few tokens and from one address; the limiters
      // would answer most of them.
      RATE_LIMIT_PER_MINUTE: '0',
      RATE_LIMIT_PUBLIC_PER_MINUTE: '0',
    });
    await t.app.listen(0, '127.0.0.1');
    port = (t.app.getHttpServer().address() as AddressInfo).port;

    const jobs: SeededJob[] = [];
    const day = 86_400_000;
    for (const owner of OWNERS.slice(0, 2)) {
      for (const status of [
        'pending',
        'pending',
        'running',
        'cancelling',
        'completed',
        'completed',
        'failed',
        'cancelled',
      ] as const) {
        jobs.push({
          id: await insertJob(t.db, { owner, status, items: 4 }),
          owner,
          status,
          deleted: false,
          purged: false,
        });
      }
      for (const status of ['completed', 'cancelled'] as const) {
        const id = await insertJob(t.db, {
          owner,
          status,
          deletedAt: new Date(),
          purgeAt: new Date(Date.now() + day),
        });
        jobs.push({ id, owner, status, deleted: true, purged: false });
      }
      const purged = await insertJob(t.db, {
        owner,
        status: 'failed',
        deletedAt: new Date(Date.now() - 2 * day),
        purgeAt: new Date(Date.now() - day),
      });
      jobs.push({ id: purged, owner, status: 'failed', deleted: true, purged: true });
    }
    const { tokens, writing } = buildTokens();
    const cursors: string[] = [];
    for (const [owner, query] of [
      ['fuzz-alice', 'limit=1'],
      ['fuzz-bob', 'limit=1&status=pending'],
    ]) {
      const res = await t
        .http()
        .get(`${JOBS}?${query}`)
        .set('Authorization', `Bearer ${tokens[owner === 'fuzz-alice' ? 'rw-alice' : 'rw-bob']}`);
      cursors.push((res.body as { next_cursor: string }).next_cursor);
    }
    const items = await t
      .http()
      .get(`${JOBS}/${jobs[0].id}/items?limit=1`)
      .set('Authorization', `Bearer ${tokens['rw-alice']}`);
    cursors.push((items.body as { next_cursor: string }).next_cursor);
    expect(cursors.every((c) => typeof c === 'string')).toBe(true);
    ctx = {
      jobs,
      finishedJobs: jobs.filter((j) => ['completed', 'failed', 'cancelled'].includes(j.status)),
      cursors,
      tokens,
      writingTokens: writing,
    };
  });

  after(async () => {
    await t?.close();
    await database?.drop();
  });

  /**
   * Sends `count` generated requests, CONCURRENCY at a time. Requests that may
   * change a seeded job run one after another for that job, so the order in
   * which they were answered is the order in which they took effect.
   */
  async function run(
    gen: RequestGenerator,
    count: number,
    onAnswer: (req: FuzzRequest, answer: Answer) => void,
  ): Promise<{ violations: Violation[]; statuses: Map<number, number> }> {
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const violations: Violation[] = [];
    const statuses = new Map<number, number>();
    const perJob = new Map<string, Promise<unknown>>();
    let sent = 0;
    const worker = async () => {
      while (sent < count) {
        sent++;
        const req = gen.next();
        const exclusive = req.jobId !== undefined && req.method !== 'GET' && req.method !== 'HEAD';
        const previous = exclusive ? (perJob.get(req.jobId!) ?? Promise.resolve()) : Promise.resolve();
        const attempt = previous.then(() => send(port, agent, req));
        if (exclusive)
          perJob.set(
            req.jobId!,
            attempt.catch(() => undefined),
          );
        let answer: Answer;
        try {
          answer = await attempt;
        } catch (err) {
          violations.push({ req, problem: `no answer: ${(err as Error).message}` });
          continue;
        }
        if (req.jobId) {
          const seen = history.get(req.jobId) ?? [];
          seen.push(
            `#${req.n} ${req.method} ${req.path.slice(JOBS.length, JOBS.length + 60)} (${req.kind}) -> ${answer.status}`,
          );
          history.set(req.jobId, seen);
        }
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        const problem = checkAnswer(req, answer);
        if (problem) violations.push({ req, problem, answer });
        onAnswer(req, answer);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    agent.destroy();
    return { violations, statuses };
  }

  function report(
    phase: string,
    violations: Violation[],
    statuses: Map<number, number>,
    diagnostic: (m: string) => void,
  ) {
    const histogram = [...statuses]
      .sort(([a], [b]) => a - b)
      .map(([s, n]) => `${s}×${n}`)
      .join(' ');
    diagnostic(`${phase}: ${histogram}`);
    if (violations.length > 0) {
      const shown = violations.slice(0, MAX_REPORTED).map(describeViolation).join('\n');
      throw new Error(
        `${violations.length} bad answers in ${phase} (seed ${SEED}; replay with FUZZ_SEED=${SEED}):\n${shown}`,
      );
    }
  }

  it(`sends ${REFUSED_PHASE + MIXED_PHASE} generated requests: no 5xx, every 4xx a problem, refused requests change nothing`, async (tc) => {
    const rng = new Rng(SEED);
    tc.diagnostic(`fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED})`);
    console.log(`fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED})`);
    const started = performance.now();
    const cpu = process.cpuUsage();

    // Phase 1: no token that may write. Reads may succeed; nothing may change, in any table.
    const before1 = await snapshotAll(t.db);
    const phase1 = await run(new RequestGenerator(rng, ctx, false), REFUSED_PHASE, () => undefined);
    report('refused phase', phase1.violations, phase1.statuses, (m) => tc.diagnostic(m));
    expect(await snapshotAll(t.db)).toEqual(before1);

    // Phase 2: every token. A ledger of the accepted changes must explain the end state exactly.
    const initial = await snapshotJobs(t.db);
    const expected = new Map<string, Expected>();
    const created = new Map<string, { job: BulkJobResponseDto; key?: string }>();
    const acceptedKeys = new Map<string, string>();
    const phase2 = await run(new RequestGenerator(rng, ctx, true), MIXED_PHASE, (req, answer) => {
      if (answer.status < 200 || answer.status >= 300 || req.kind === 'other') return;
      const body = JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>;
      if (req.kind === 'create') {
        const job = body as unknown as BulkJobResponseDto;
        const key = req.headers['idempotency-key'];
        if (!created.has(job.id)) created.set(job.id, { job, key });
        if (key !== undefined) acceptedKeys.set(`${job.owner}\u0000${key}`, job.id);
        return;
      }
      const id = req.jobId ?? (body.id as string | undefined) ?? (body.job_id as string);
      const previous = expected.get(id) ?? {
        job: toJobResponse(initial.get(id)!.row),
        deleted: initial.get(id)!.row.deletedAt !== null,
        cancelled: false,
      };
      if (req.kind === 'delete') {
        expected.set(id, {
          ...previous,
          job: { ...previous.job, status: body.status as BulkJobResponseDto['status'] },
          deleted: true,
        });
      } else {
        const job = body as unknown as BulkJobResponseDto;
        expected.set(id, {
          job,
          deleted: job.deleted_at !== null,
          cancelled: previous.cancelled || req.kind === 'cancel',
        });
      }
    });
    report('mixed phase', phase2.violations, phase2.statuses, (m) => tc.diagnostic(m));

    const final = await snapshotJobs(t.db);
    // No job appeared or vanished but those the ledger knows.
    expect([...final.keys()].sort()).toEqual([...new Set([...initial.keys(), ...created.keys()])].sort());
    for (const [id, before] of initial) {
      const after = final.get(id)!;
      const change = expected.get(id);
      if (!change) {
        expect({ id, row: after.rowSum, items: after.itemSum }).toEqual({
          id,
          row: before.rowSum,
          items: before.itemSum,
        });
        continue;
      }
      const actual = toJobResponse(after.row);
      expect({
        id,
        job: comparable(actual, change.deleted),
        deleted: isDeleted(actual),
        history: history.get(id),
      }).toEqual({
        id,
        job: comparable(change.job, change.deleted),
        deleted: change.deleted,
        history: history.get(id),
      });
      // Cancel skips the pending items and touches no other.
      const expectedItems = before.items.map((item) =>
        change.cancelled && item.status === 'pending'
          ? { ...item, status: 'skipped', finished_at: expect.any(String) }
          : item,
      );
      expect({ id, items: after.items }).toEqual({ id, items: expectedItems });
    }
    for (const [id, { job }] of created) {
      const after = final.get(id)!;
      expect({ id, job: comparable(toJobResponse(after.row), false) }).toEqual({
        id,
        job: comparable(job, false),
      });
      expect({ id, items: after.items.length }).toEqual({ id, items: job.total_items });
    }
    const keys: { owner: string; key: string; job_id: string }[] = await t.db.query(
      `SELECT owner, key, job_id FROM bulk_job_idempotency_keys`,
    );
    expect(new Map(keys.map((k) => [`${k.owner}\u0000${k.key}`, k.job_id]))).toEqual(acceptedKeys);

    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    tc.diagnostic(
      `${REFUSED_PHASE + MIXED_PHASE} requests in ${seconds.toFixed(1)} s (${((used.user + used.system) / 1e6).toFixed(1)} s of CPU ` +
        `for the app and the client); accepted: ${created.size} creates, ` +
        `${expected.size} seeded jobs changed`,
    );
  });

  /** What the fuzz found once, pinned so that it stays fixed whatever the seed. */
  describe('findings, pinned', () => {
    const agent = new Agent({ keepAlive: false });
    after(() => agent.destroy());
    let n = -1;
    const ask = async (method: string, path: string, headers: Record<string, string> = {}, body?: string) => {
      const req: FuzzRequest = {
        n: n--,
        method,
        path,
        // An owner of its own: the fuzz may have filled the others' quota of active jobs.
        headers: { authorization: `Bearer ${tokenFor('fuzz-pinned')}`, ...headers },
        body: body === undefined ? undefined : Buffer.from(body),
        kind: 'other',
        note: 'pinned',
      };
      const answer = await send(port, agent, req);
      return {
        answer,
        fault: checkAnswer(req, answer),
        body: JSON.parse(answer.body.toString() || 'null') as Record<string, unknown>,
      };
    };
    /** Writes bytes on a fresh connection and returns everything the server sends until it closes. */
    const raw = (bytes: Buffer) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
        const chunks: Buffer[] = [];
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.on('error', reject);
        socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
      });
    const deep = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

    it("a malformed percent-encoding in the path is a 400 problem (it was Fastify's application/json)", async () => {
      const { answer, fault, body } = await ask('GET', `${JOBS}/%zz/items`);
      expect({ status: answer.status, fault }).toEqual({ status: 400, fault: undefined });
      expect(body).toMatchObject({ type: 'about:blank', instance: `${JOBS}/%zz/items` });
    });

    it('an over-long path parameter is a 414 problem', async () => {
      const { answer, fault } = await ask('DELETE', `${JOBS}/${'a'.repeat(600)}`);
      expect({ status: answer.status, fault }).toEqual({ status: 414, fault: undefined });
    });

    it('headers larger than the server reads are a 431 problem, and the connection is closed', async () => {
      const { answer, fault } = await ask('GET', JOBS, { authorization: `Bearer ${ctx.tokens.huge}` });
      expect({ status: answer.status, fault }).toEqual({ status: 431, fault: undefined });
      expect(answer.headers.connection).toBe('close');
    });

    it('headers too large after a request line sent apart are a 431 problem without an instance, not a wrong one', async () => {
      // The request line in one packet, the oversized headers later: the parser fails on the later packet.
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.write(`GET ${JOBS}?limit=1 HTTP/1.1\r\nHost: x\r\n`);
          setTimeout(() => socket.end(`X-Big: ${'a'.repeat(40_000)}\r\n\r\n`), 100);
        });
        const chunks: Buffer[] = [];
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.on('error', reject);
        socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
      });
      expect(answer).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
      const problem = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
      expect(problem).toMatchObject({
        type: 'about:blank',
        status: 431,
        title: 'Request Header Fields Too Large',
      });
      expect(problem).not.toHaveProperty('instance');
    });

    it('a request that is not valid HTTP is a 400 problem naming its path; a HEAD one gets no body', async () => {
      const path = `${JOBS}/\u00e2\u0080\u00ae`;
      const get = await raw(Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, 'latin1'));
      expect(get).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(get).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/);
      const problem = JSON.parse(
        Buffer.from(get.slice(get.indexOf('\r\n\r\n') + 4), 'latin1').toString('utf8'),
      ) as Record<string, unknown>;
      expect(problem).toMatchObject({
        type: 'about:blank',
        status: 400,
        title: 'Bad Request',
        instance: path,
      });
      expect(get).toContain(`\r\nX-Request-Id: ${String(problem.requestId)}\r\n`);

      const head = await raw(Buffer.from(`HEAD ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, 'latin1'));
      expect(head).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(head.endsWith('\r\n\r\n')).toBe(true);
    });

    it('JSON nested deeper than 64 levels is a 400, not a 500 (class-transformer ran out of stack)', async () => {
      const json = await ask(
        'POST',
        JOBS,
        { 'content-type': 'application/json' },
        `{"action":"noop","targets":["a"],"params":${deep(5000)}}`,
      );
      expect({ status: json.answer.status, fault: json.fault, details: json.body.details }).toEqual({
        status: 400,
        fault: undefined,
        details: { body: 'nests objects and arrays more than 64 levels deep' },
      });
      const spec = await ask(
        'POST',
        JOBS,
        { 'content-type': 'application/x-ndjson' },
        `{"action":"noop","params":${deep(3000)}}\n"a"\n`,
      );
      expect({ status: spec.answer.status, fault: spec.fault, details: spec.body.details }).toEqual({
        status: 400,
        fault: undefined,
        details: { 'line 1': 'nests objects and arrays more than 64 levels deep' },
      });
      const target = await ask(
        'POST',
        JOBS,
        { 'content-type': 'application/x-ndjson' },
        `{"action":"noop"}\n"a"\n{"id":"b","data":${deep(20_000)}}\n`,
      );
      expect({ status: target.answer.status, fault: target.fault, details: target.body.details }).toEqual({
        status: 400,
        fault: undefined,
        details: { 'line 3': 'nests objects and arrays more than 64 levels deep' },
      });
      // Up to the limit is fine: the body, targets, a target and 61 levels of data.
      const ok = await ask(
        'POST',
        JOBS,
        { 'content-type': 'application/json' },
        `{"action":"noop","targets":[{"id":"a","data":${deep(61)}}]}`,
      );
      expect(ok.answer.status).toBe(202);
    });

    it("a Content-Encoding on Swagger UI's routes is a 415 problem (it was Fastify's application/json)", async () => {
      for (const path of ['/docs', '/docs-json']) {
        const { answer, fault } = await ask('GET', path, { 'content-encoding': 'gzip' });
        expect({ path, status: answer.status, fault }).toEqual({ path, status: 415, fault: undefined });
        expect(answer.headers['accept-encoding']).toBe('identity');
      }
    });
  });
});
