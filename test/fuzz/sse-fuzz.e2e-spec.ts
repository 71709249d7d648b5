import { expect } from 'expect';
import { randomInt } from 'node:crypto';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Response } from 'supertest';
import { JobEventsService } from '../../src/bulk-jobs/job-events.service';
import { Database } from '../../src/database/database';
import { JOBS } from '../support/api';
import { createTestApp, type TestApp } from '../support/app';
import { createEngineDatabase, type EngineDatabase } from '../support/engine';
import { insertJob } from '../support/factories';
import { claims, hmacToken, nowSeconds } from '../support/jwt';
import { expectProblem } from '../support/problem-matcher';
import { TEST_JWT_SECRET } from '../support/test-env';
import { tokenFor } from '../support/tokens';
import { sleep, waitFor } from '../support/wait';
import { Rng } from './generator';

/**
 * Event streams under generated requests: odd job ids and query strings,
 * every kind of Last-Event-ID, tokens that are wrong or run out mid-stream,
 * and clients that go away at any moment (before the answer, on its headers,
 * after the first event, or later), while the followed jobs change and one is
 * purged. No answer may be a 5xx, every refusal is a problem, every stream is
 * well-formed Server-Sent Events about the job it names, and once every client
 * is gone nothing is left behind: no subscriber, no slot under the caps, no
 * timer, no connection.
 */

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : randomInt(2 ** 31);
const CASES = 600;
const CONCURRENCY = 8;
const PER_OWNER = 4;
const OWNERS = ['sse-ann', 'sse-ben', 'sse-cat'] as const;
/** Each owner's seeded jobs: two running, pending, completed, cancelled, and a deleted one. */
const JOBS_PER_OWNER = 6;

interface Case {
  n: number;
  method: 'GET' | 'HEAD';
  path: string;
  headers: Record<string, string>;
  /** When the client goes away. */
  cut: 'before-answer' | 'on-headers' | 'after-first-event' | 'later';
  afterMs: number;
  note: string;
}

interface Outcome {
  status?: number;
  headers?: IncomingHttpHeaders;
  text: string;
}

const wire = (s: string) => Buffer.from(s, 'utf8').toString('latin1');

const ODD_IDS = [
  'not-a-uuid',
  '00000000-0000-0000-0000-000000000000',
  '%7Bid%7D',
  'ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ',
  '..%2F..%2Fetc%2Fpasswd',
  '%00',
  'a'.repeat(99),
  wire('💥'),
];

const QUERIES = [
  '',
  '?',
  '?lastEventId=abc',
  '?limit=-1',
  '?cursor=%zz',
  '?a=1&a=2&a[]=3',
  `?x=${'y'.repeat(4000)}`,
  `?q=${wire('日本語')}`,
  '?%E2%80%AE=1',
  '?status=running&status=done',
];

const EVENT_IDS = [
  'AAAAAAAAAAAAAAAA',
  '',
  ' ',
  '0',
  '-1',
  'null',
  'x'.repeat(8000),
  wire('ü💥'),
  '\t',
  'id: forged\n'.replace('\n', ' '),
  '../../',
  '%00',
];

function generate(rng: Rng, jobs: string[], seenIds: string[], n: number): Case {
  const notes: string[] = [];
  let id: string;
  const kind = rng.weighted<string>([
    [12, 'job'],
    [2, 'upper'],
    [2, 'random'],
    [2, 'odd'],
  ]);
  const seeded = rng.int(0, jobs.length - 1);
  if (kind === 'job') id = jobs[seeded];
  else if (kind === 'upper') id = jobs[seeded].toUpperCase();
  else if (kind === 'random') id = rng.uuid();
  else id = rng.pick(ODD_IDS);
  notes.push(`id ${kind}`);
  const query = rng.chance(0.3) ? rng.pick(QUERIES) : '';
  const headers: Record<string, string> = {};
  // Mostly the job's owner (the jobs are seeded owner by owner, JOBS_PER_OWNER each), else anyone.
  const owner = rng.chance(0.8) ? OWNERS[Math.floor(seeded / JOBS_PER_OWNER)] : rng.pick(OWNERS);
  const token = rng.weighted<string>([
    [10, 'owner'],
    [2, 'expiring'],
    [1, 'expired'],
    [1, 'write-only'],
    [1, 'admin'],
    [1, 'garbage'],
    [1, 'none'],
  ]);
  notes.push(`token ${token}`);
  if (token === 'owner') headers.authorization = `Bearer ${tokenFor(owner)}`;
  // Expired 4 s ago, inside the 5 s of clock tolerance: accepted now, cut off within a second.
  else if (token === 'expiring')
    headers.authorization = `Bearer ${hmacToken(claims(owner, { exp: nowSeconds() - 4 }), TEST_JWT_SECRET)}`;
  else if (token === 'expired') headers.authorization = `Bearer ${tokenFor(owner, { expiresIn: -120 })}`;
  else if (token === 'write-only')
    headers.authorization = `Bearer ${tokenFor(owner, { scope: 'bulk-jobs:write' })}`;
  else if (token === 'admin')
    headers.authorization = `Bearer ${tokenFor('sse-admin', { scope: 'bulk-jobs:read bulk-jobs:admin' })}`;
  else if (token === 'garbage') headers.authorization = 'Bearer abc.def.ghi';
  if (rng.chance(0.5)) {
    headers['last-event-id'] =
      seenIds.length > 0 && rng.chance(0.4) ? rng.pick(seenIds) : rng.pick(EVENT_IDS);
    notes.push('last-event-id');
  }
  if (rng.chance(0.7)) headers.accept = rng.pick(['text/event-stream', '*/*', 'application/json', '']);
  // A stream whose token runs out is mostly kept until it has.
  const cut =
    token === 'expiring' && rng.chance(0.8)
      ? 'later'
      : rng.weighted<Case['cut']>([
          [2, 'before-answer'],
          [2, 'on-headers'],
          [3, 'after-first-event'],
          [5, 'later'],
        ]);
  notes.push(`cut ${cut}`);
  return {
    n,
    method: rng.chance(0.1) ? 'HEAD' : 'GET',
    path: `${JOBS}/${id}/events${query}`,
    headers,
    cut,
    afterMs: token === 'expiring' || rng.chance(0.3) ? rng.int(600, 2500) : rng.int(0, 600),
    note: notes.join(', '),
  };
}

/** Runs one case on the wire and returns what arrived before either side closed. */
function run(port: number, agent: Agent, c: Case): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { text: '' };
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      resolve(out);
    };
    const req = request({
      host: '127.0.0.1',
      port,
      method: c.method,
      path: c.path,
      headers: c.headers,
      agent,
    });
    req.on('error', done);
    req.on('close', done);
    req.on('response', (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      res.setEncoding('latin1');
      if (c.cut === 'on-headers' && res.statusCode === 200) {
        req.destroy();
        return;
      }
      res.on('data', (chunk: string) => {
        out.text += chunk;
        if (c.cut === 'after-first-event' && out.text.includes('\n\n')) req.destroy();
      });
      res.on('error', done);
      res.on('end', done);
      // A stream that does not end by itself is cut some time after its headers; at most 2.5 s.
      timer = setTimeout(() => req.destroy(), c.cut === 'later' ? c.afterMs : 2_500);
    });
    if (c.cut === 'before-answer') timer = setTimeout(() => req.destroy(), c.afterMs % 20);
    req.end();
  });
}

/** Complete SSE messages (ended by a blank line) as { event, id, data } records. */
function messages(text: string): { event?: string; id?: string; data: string[] }[] {
  const blocks = text.split(/\n\n/);
  blocks.pop(); // the last block is incomplete, or empty
  return blocks
    .map((block) => {
      const m: { event?: string; id?: string; data: string[] } = { data: [] };
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 2);
        if (field === 'event') m.event = value;
        else if (field === 'id') m.id = value;
        else if (field === 'data') m.data.push(value);
        else m.data.push(`unexpected field ${JSON.stringify(field)}`);
      }
      return m;
    })
    .filter((m) => m.event !== undefined || m.data.length > 0);
}

/** What is wrong with this outcome, if anything; counts the events it saw in `events`. */
function fault(c: Case, o: Outcome, seenIds: Set<string>, events: Map<string, number>): string | undefined {
  if (o.status === undefined) return c.cut === 'before-answer' ? undefined : 'no answer';
  if (o.status >= 500) return `answered ${o.status}`;
  if (o.status >= 400) {
    if (!/^application\/problem\+json/.test(String(o.headers?.['content-type'])))
      return `answered ${o.status} as ${String(o.headers?.['content-type'])}`;
    if (c.method === 'HEAD' || o.text === '') return undefined;
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(o.text, 'latin1').toString('utf8'));
    } catch {
      return `answered ${o.status} with a body that is not JSON (cut short?)`;
    }
    try {
      expectProblem(
        { status: o.status, headers: o.headers, body, req: { path: c.path } } as unknown as Response,
        o.status,
      );
    } catch (err) {
      return `answered ${o.status} with a problem the matcher refuses: ${(err as Error).message.split('\n').slice(0, 4).join(' ')}`;
    }
    return undefined;
  }
  if (o.status !== 200) return `answered ${o.status}`;
  if (o.headers?.['content-type'] !== 'text/event-stream; charset=utf-8')
    return `a 200 as ${String(o.headers?.['content-type'])}`;
  for (const m of messages(o.text)) {
    if (!['progress', 'end', 'problem'].includes(m.event ?? '')) return `an event ${JSON.stringify(m.event)}`;
    if (m.data.length !== 1) return `an event with ${m.data.length} data lines`;
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(Buffer.from(m.data[0], 'latin1').toString('utf8')) as Record<string, unknown>;
    } catch {
      return 'an event whose data is not JSON';
    }
    const name = m.event === 'problem' ? `problem ${String(data.status)}` : m.event!;
    events.set(name, (events.get(name) ?? 0) + 1);
    if (m.event === 'problem') {
      if (data.status !== 404 && data.status !== 401)
        return `a problem event with status ${String(data.status)}`;
      if (data.instance !== c.path.split('?')[0]) return 'a problem event with another instance';
      continue;
    }
    if (!m.id || !/^[\w-]{16}$/.test(m.id)) return `an event id ${JSON.stringify(m.id)}`;
    const jobId = c.path.slice(JOBS.length + 1, c.path.indexOf('/events')).toLowerCase();
    if (data.id !== jobId) return `an event about job ${String(data.id)}`;
    seenIds.add(m.id);
  }
  return undefined;
}

describe('fuzz: event streams', () => {
  let database: EngineDatabase;
  let t: TestApp;
  let port: number;
  let hub: JobEventsService;
  const jobs: string[] = [];
  let running: string[] = [];

  before(async () => {
    database = await createEngineDatabase();
    t = await createTestApp({
      DATABASE_URL: database.url,
      SSE_PROGRESS_INTERVAL_MS: '100',
      SSE_HEARTBEAT_MS: '300',
      SSE_MAX_STREAMS_PER_OWNER: String(PER_OWNER),
      RATE_LIMIT_PER_MINUTE: '0',
    });
    await t.app.listen(0, '127.0.0.1');
    port = (t.app.getHttpServer().address() as AddressInfo).port;
    hub = t.app.get(JobEventsService);
    for (const owner of OWNERS) {
      for (const status of ['running', 'running', 'pending', 'completed', 'cancelled'] as const) {
        const id = await insertJob(t.db, { owner, status, items: 50 });
        jobs.push(id);
        if (status === 'running') running.push(id);
      }
      const day = 86_400_000;
      jobs.push(
        await insertJob(t.db, {
          owner,
          status: 'failed',
          deletedAt: new Date(),
          purgeAt: new Date(Date.now() + day),
        }),
      );
    }
  });
  after(async () => {
    await t?.close();
    await database?.drop();
  });

  it(`opens and drops ${CASES} generated streams: no 5xx, refusals are problems, streams are well-formed, and nothing is left behind`, async (tc) => {
    const rng = new Rng(SEED);
    tc.diagnostic(`fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED})`);
    const agent = new Agent({ keepAlive: false, maxSockets: CONCURRENCY });
    const seen = new Set<string>();
    const faults: string[] = [];
    const statuses = new Map<string, number>();
    const events = new Map<string, number>();
    let sent = 0;
    let purged = false;
    // The followed jobs change meanwhile, and one is purged halfway.
    let moving = true;
    const mover = (async () => {
      let k = 0;
      while (moving) {
        k++;
        await t.db.query(
          `UPDATE bulk_jobs SET succeeded_items = LEAST(total_items, succeeded_items + 1), updated_at = now()
           WHERE id = ANY($1)`,
          [running],
        );
        if (!purged && sent >= CASES / 2) {
          purged = true;
          await t.db.query(`DELETE FROM bulk_jobs WHERE id = $1`, [running[0]]);
          running = running.slice(1);
        }
        if (k % 25 === 0) {
          // A job finishes now and then: its streams get `end`.
          const [finishing] = running;
          if (finishing && running.length > 3) {
            await t.db.query(`UPDATE bulk_jobs SET status = 'completed', finished_at = now() WHERE id = $1`, [
              finishing,
            ]);
            running = running.slice(1);
          }
        }
        await sleep(50);
      }
    })();
    try {
      const worker = async () => {
        while (sent < CASES) {
          const c = generate(rng, jobs, [...seen], sent++);
          const o = await run(port, agent, c);
          const key = o.status === undefined ? 'none' : String(o.status);
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
          const problem = fault(c, o, seen, events);
          if (problem)
            faults.push(
              `#${c.n} ${problem}\n  ${c.method} ${c.path.slice(0, 200)} (${c.note})\n  got: ${JSON.stringify(o.text.slice(0, 300))}`,
            );
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      moving = false;
      await mover;
      agent.destroy();
    }
    const histogram = [...statuses]
      .sort()
      .map(([s, n]) => `${s}×${n}`)
      .join(' ');
    tc.diagnostic(
      `statuses: ${histogram}; events: ${JSON.stringify(Object.fromEntries(events))}; distinct event ids seen: ${seen.size}`,
    );
    if (faults.length > 0)
      throw new Error(`${faults.length} bad answers (seed ${SEED}):\n${faults.slice(0, 15).join('\n')}`);
    // Enough of every kind happened for the run to mean something.
    expect(statuses.get('200') ?? 0).toBeGreaterThan(CASES / 4);
    expect(statuses.get('429') ?? 0).toBeGreaterThan(0);
    expect(seen.size).toBeGreaterThan(10);
    expect(events.get('end') ?? 0).toBeGreaterThan(0);
    expect(events.get('problem 401') ?? 0).toBeGreaterThan(0);

    await waitFor(
      'every stream to be released',
      () => hub.subscriberCount() === 0 && hub.openStreams() === 0 && !hub.stats().active,
      { describeState: async () => JSON.stringify({ ...hub.stats(), slots: hub.openStreams() }) },
    );
    const pool = t.app.get(Database).pool;
    expect(pool.totalCount - pool.idleCount).toBe(0);
    const server = t.app.getHttpServer();
    await waitFor('every connection to be closed', async () => {
      const open = await new Promise<number>((resolve, reject) =>
        server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
      );
      return open === 0;
    });
    // And each owner can follow a job again (its pending one, which nothing above purges or finishes).
    for (const owner of OWNERS) {
      const id = jobs[OWNERS.indexOf(owner) * JOBS_PER_OWNER + 2];
      const res = await new Promise<number>((resolve, reject) => {
        const req = request({
          host: '127.0.0.1',
          port,
          path: `${JOBS}/${id}/events`,
          headers: { authorization: `Bearer ${tokenFor(owner)}` },
        });
        req.on('response', (r) => {
          resolve(r.statusCode ?? 0);
          req.destroy();
        });
        req.on('error', reject);
        req.end();
      });
      expect({ owner, status: res }).toEqual({ owner, status: 200 });
    }
  });
});
