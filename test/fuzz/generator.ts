import { generateKeyPairSync } from 'node:crypto';
import { CursorCodec } from '../../src/common/pagination/cursor';
import jwt from 'jsonwebtoken';
import { JOB_STATUSES, ITEM_STATUSES } from '../../src/jobs/job-status';
import { JOBS } from '../support/api';
import { claims, hmacToken, nowSeconds, unsignedToken } from '../support/jwt';
import { TEST_JWT_SECRET } from '../support/test-env';
import { tokenFor } from '../support/tokens';

/** mulberry32: small, fast and the same on every machine, so that a seed replays a run. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /** One of the values, by weight: `[[weight, value], …]`. */
  weighted<T>(entries: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of entries) total += w;
    let r = this.next() * total;
    for (const [w, v] of entries) {
      r -= w;
      if (r < 0) return v;
    }
    return entries[entries.length - 1][1];
  }

  uuid(): string {
    const hex = Array.from({ length: 32 }, () => this.int(0, 15).toString(16)).join('');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${'89ab'[this.int(0, 3)]}${hex.slice(17, 20)}-${hex.slice(20)}`;
  }
}

export type RequestKind = 'create' | 'cancel' | 'delete' | 'restore' | 'other';

export interface FuzzRequest {
  n: number;
  method: string;
  /** As sent on the wire: latin1 characters, i.e. bytes. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  kind: RequestKind;
  /** The seeded job the path names (in any spelling): requests that may change it run one after another. */
  jobId?: string;
  /** The token's name in the token table, or undefined without an Authorization header. */
  token?: string;
  note: string;
}

export interface SeededJob {
  id: string;
  owner: string;
  status: string;
  deleted: boolean;
  purged: boolean;
}

export interface FuzzContext {
  jobs: SeededJob[];
  /** Jobs whose status can never change again: their event stream ends at once. */
  finishedJobs: SeededJob[];
  /** next_cursor values the server issued, to mutate. */
  cursors: string[];
  tokens: Record<string, string>;
  /** Tokens that are valid and allow POST and DELETE. */
  writingTokens: ReadonlySet<string>;
}

export const OWNERS = ['fuzz-alice', 'fuzz-bob', 'fuzz-carol'] as const;

/** The token table: valid ones with each scope, and every way a token can be wrong. */
export function buildTokens(): { tokens: Record<string, string>; writing: Set<string> } {
  const [alice, bob, carol] = OWNERS;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const hugeClaims = { pad: 'x'.repeat(20_000) };
  const tokens: Record<string, string> = {
    'rw-alice': tokenFor(alice),
    'rw-bob': tokenFor(bob),
    'rw-carol': tokenFor(carol),
    'w-alice': tokenFor(alice, { scope: 'bulk-jobs:write' }),
    admin: tokenFor('fuzz-admin', { scope: 'bulk-jobs:admin' }),
    'r-alice': tokenFor(alice, { scope: 'bulk-jobs:read' }),
    'r-bob': tokenFor(bob, { scope: 'bulk-jobs:read' }),
    'scope-array': tokenFor(alice, { claims: { scope: ['bulk-jobs:read'] } }),
    'no-scope': tokenFor(alice, { scope: '' }),
    'other-scope': tokenFor(alice, { scope: 'openid profile BULK-JOBS:WRITE' }),
    expired: tokenFor(alice, { expiresIn: -120 }),
    'wrong-secret': tokenFor(alice, { secret: 'not-the-secret-but-long-enough-0123456789' }),
    'alg-none': unsignedToken(claims(alice)),
    'no-exp': hmacToken({ sub: alice, scope: 'bulk-jobs:read bulk-jobs:write' }, TEST_JWT_SECRET),
    'nbf-future': tokenFor(alice, { claims: { nbf: nowSeconds() + 3600 } }),
    'no-sub': hmacToken({ scope: 'bulk-jobs:read', exp: nowSeconds() + 600 }, TEST_JWT_SECRET),
    'sub-number': hmacToken({ sub: 42, scope: 'bulk-jobs:read', exp: nowSeconds() + 600 }, TEST_JWT_SECRET),
    'sub-long': tokenFor('s'.repeat(300)),
    hs512: jwt.sign({ sub: alice, scope: 'bulk-jobs:read bulk-jobs:write' }, TEST_JWT_SECRET, {
      algorithm: 'HS512',
      expiresIn: 600,
    }),
    rs256: jwt.sign({ sub: alice, scope: 'bulk-jobs:read bulk-jobs:write' }, privateKey, {
      algorithm: 'RS256',
      expiresIn: 600,
    }),
    huge: tokenFor(alice, { claims: hugeClaims }),
    garbage: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl',
    'not-a-jwt': 'abc.def',
    'bad-base64': '!!!.###.$$$',
    empty: '',
  };
  return { tokens, writing: new Set(['rw-alice', 'rw-bob', 'rw-carol', 'w-alice', 'admin']) };
}

/** Unicode text as the bytes a client puts on the wire (node:http sends latin1 characters as bytes). */
const wire = (s: string) => Buffer.from(s, 'utf8').toString('latin1');
const enc = (s: string) => encodeURIComponent(s);

const WRONG_VALUES: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  1e308,
  '',
  'x',
  [],
  {},
  [[]],
  { a: {} },
  [null],
  '\u0000',
];
const ODD_STRINGS = [
  '',
  ' ',
  'x'.repeat(513),
  '\u0000',
  'a\u0000b',
  '\ud800',
  'a\udc00',
  '\udbff\udfff',
  '💥',
  '\u202e',
  '\ufeff',
  '\\',
  '"',
  '\n',
  '%00',
  '../../etc/passwd',
  '__proto__',
  'constructor',
];
const INVALID_IDS = [
  'not-a-uuid',
  '123',
  '0',
  '-1',
  'null',
  'undefined',
  'true',
  '{id}',
  ':id',
  '%7Bid%7D',
  '6f1c1f0e-0000-4000-8000-00000000000',
  '6f1c1f0e00004000800000000000000z',
  '6f1c1f0e-0000-4000-8000-0000000000000',
  '6f1c1f0e-0000-4000-8000-00000000000g',
  '1%27%20or%20%271%27=%271',
  '%20',
  '+',
  '*',
  '$',
  '~',
  '@',
  '!',
];
const BAD_PERCENT = [
  '%zz',
  '%',
  '%c0%af',
  '%00',
  '%ff',
  '%e0%a4%a',
  '%ed%a0%80',
  '%fe%ff',
  '%25',
  '%%',
  'a%2',
  '%0a',
  '%0d%0a',
];
const TRAVERSAL = [
  '..',
  '.',
  '%2e%2e',
  '%2e',
  '..%2f..%2fetc%2fpasswd',
  '..%5c..%5c',
  '....//',
  '%2e%2e%2f',
  '..;',
];
const UNICODE = ['ü', '💥', '\u202e', '日本語', '\u0085', 'ａ', 'İ'];
const UNKNOWN_PATHS = [
  '/',
  '/api',
  '/api/',
  '/api/actions',
  '/api/actions/bulk',
  '/api/actions/bulk/',
  '/api/actions/bulk/jobs/',
  '/api/actions/bulk/jobs//cancel',
  '/api/actions/bulk/jobs/cancel',
  '/API/ACTIONS/BULK/JOBS',
  '/api/actions/bulk/JOBS',
  '/api//actions/bulk/jobs',
  '/api/actions/bulk/jobs/../jobs',
  '/api/actions/bulk/jobs/%2e%2e/jobs',
  '/api/actions/bulk/jobs%2f',
  '/api/actions/bulk/jobs;x=1',
  '/api/actions/bulk/jobs.json',
  '/api/actions/bulk/actions/noop',
  '/api/actions/bulk/actions/',
  '/../../../etc/passwd',
  '/%2e%2e/%2e%2e/etc/passwd',
  '/.env',
  '/.git/config',
  '/admin',
  '/favicon.ico',
  '/robots.txt',
  '/health',
  '/%00',
  '/%zz',
  '/a%',
  '//',
  '///',
  '/\\',
  '/*',
  '/docs/does-not-exist.js',
  '/docs/../package.json',
  '/docs/%2e%2e/package.json',
  '/docs/%2e%2e%2fpackage.json',
  '/docs/static/index.html',
  '/docs-json/x',
  '/docs-yaml',
];
const DOCS_PATHS = [
  '/docs',
  '/docs/',
  '/docs-json',
  '/docs/swagger-ui.css',
  '/docs/swagger-ui-init.js',
  '/docs/index.html',
];
const CONTENT_TYPES: [number, string | undefined][] = [
  [60, 'application/json'],
  [6, 'application/json; charset=utf-8'],
  [2, 'application/json; charset=latin1'],
  [2, 'application/json; charset=utf-16'],
  [2, 'application/json; charset="UTF-8"'],
  [2, 'APPLICATION/JSON'],
  [2, 'application/json;'],
  [2, 'application/vnd.api+json'],
  [2, 'application/problem+json'],
  [4, 'text/plain'],
  [4, 'application/x-www-form-urlencoded'],
  [4, 'application/x-ndjson'],
  [2, 'application/x-ndjson; charset=utf-8'],
  [2, 'multipart/form-data; boundary=xyz'],
  [2, 'application/json, text/plain'],
  [2, 'application/octet-stream'],
  [1, ''],
  [1, ';'],
  [1, 'garbage'],
  [5, undefined],
];
const REQUEST_IDS = [
  'fuzz-1',
  'a'.repeat(128),
  'a'.repeat(129),
  'a b',
  wire('é'),
  '\t',
  '../../',
  '${jndi:ldap://x/a}',
  '<script>',
  '"',
  '',
  ';;',
  'trace:01HZ.42@edge',
];
const IDEMPOTENCY_KEYS = [
  'fuzz-key-1',
  'fuzz-key-2',
  'fuzz-key-3',
  '',
  ' ',
  'k'.repeat(255),
  'k'.repeat(256),
  'with space',
  wire('ключ'),
  '\t',
];
const AUTH_SCHEMES: [number, (t: string) => string][] = [
  [80, (t) => `Bearer ${t}`],
  [3, (t) => `bearer ${t}`],
  [2, (t) => `BEARER ${t}`],
  [2, (t) => `Bearer  ${t}`],
  [2, (t) => `Bearer ${t} `],
  [2, () => `Basic ${Buffer.from('fuzz:fuzz').toString('base64')}`],
  [2, (t) => t],
  [2, (t) => `Bearer ${t}, Bearer ${t}`],
  [2, (t) => `Bearer ${t}${wire('é')}`],
  [2, () => 'Bearer'],
  [1, (t) => `Token ${t}`],
];

/**
 * A deterministic stream of requests: the same seed gives the same requests
 * in the same order. `allowWriting` false leaves out every token that could
 * change anything, for the phase whose every request must be refused or read.
 */
export class RequestGenerator {
  private n = 0;
  private readonly tokenNames: string[];

  constructor(
    private readonly rng: Rng,
    private readonly ctx: FuzzContext,
    private readonly allowWriting: boolean,
  ) {
    this.tokenNames = Object.keys(ctx.tokens).filter((name) => allowWriting || !ctx.writingTokens.has(name));
  }

  next(): FuzzRequest {
    const r = this.rng;
    const route = r.weighted<string>([
      [28, 'create'],
      [11, 'list'],
      [9, 'get'],
      [7, 'items'],
      [10, 'cancel'],
      [10, 'delete'],
      [7, 'restore'],
      [4, 'events'],
      [3, 'actions'],
      [3, 'docs'],
      [8, 'unknown'],
    ]);
    const notes: string[] = [route];
    let method = { create: 'POST', cancel: 'POST', restore: 'POST', delete: 'DELETE' }[route] ?? 'GET';
    if (r.chance(0.15)) {
      method = r.pick(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD']);
      notes.push(`method ${method}`);
    }

    let path: string;
    let jobId: string | undefined;
    let pathKind: 'collection' | 'job' | 'cancel' | 'restore' | 'other' = 'other';
    if (route === 'create' || route === 'list') {
      path = JOBS;
      pathKind = 'collection';
    } else if (route === 'actions') {
      path = '/api/actions/bulk/actions';
    } else if (route === 'docs') {
      path = r.pick(DOCS_PATHS);
    } else if (route === 'unknown') {
      path = r.pick(UNKNOWN_PATHS);
      if (r.chance(0.2)) path += `/${wire(r.pick(UNICODE))}`;
    } else {
      const id = this.jobIdVariant(route === 'events');
      jobId = id.jobId;
      notes.push(`id ${id.note}`);
      const suffix = {
        get: '',
        delete: '',
        items: '/items',
        cancel: '/cancel',
        restore: '/restore',
        events: '/events',
      }[route];
      path = `${JOBS}/${id.text}${suffix ?? ''}`;
      pathKind =
        route === 'get' || route === 'delete'
          ? 'job'
          : route === 'cancel'
            ? 'cancel'
            : route === 'restore'
              ? 'restore'
              : 'other';
      if (id.text === '' || /[/?#]|^\.\.?$|%2f/i.test(id.text)) pathKind = 'other';
    }
    if (route === 'list' || route === 'items' || r.chance(0.05)) {
      const query = this.query();
      if (query) path += `?${query}`;
    }

    const headers: Record<string, string> = {};
    let token: string | undefined;
    if (!r.chance(0.06)) {
      // Half the time a token that may write (when allowed), so that many requests get past authentication.
      token =
        this.allowWriting && r.chance(0.5) ? r.pick([...this.ctx.writingTokens]) : r.pick(this.tokenNames);
      const scheme = r.weighted(AUTH_SCHEMES);
      headers.authorization = scheme(this.ctx.tokens[token]);
      notes.push(`token ${token}`);
    }
    if (r.chance(0.25)) headers['x-request-id'] = r.pick(REQUEST_IDS);
    if (r.chance(0.1))
      headers.accept = r.pick([
        'text/event-stream',
        'application/xml',
        '*/*',
        'application/problem+json',
        'text/html',
        '',
      ]);
    if (r.chance(0.03)) headers['content-encoding'] = r.pick(['gzip', 'br', 'identity', 'x']);
    if (r.chance(0.02)) headers['x-forwarded-for'] = r.pick(['1.2.3.4', 'garbage', '::1, 10.0.0.1', '']);
    // node:http sends the head of an Expect: 100-continue request as UTF-8, not as the bytes given.
    if (r.chance(0.02) && /^[\x21-\x7e]*$/.test(path)) headers.expect = '100-continue';

    let body: Buffer | undefined;
    if (route === 'create' && r.chance(0.3)) headers['idempotency-key'] = r.pick(IDEMPOTENCY_KEYS);
    if (method === 'POST' || method === 'PUT' || method === 'PATCH' || r.chance(0.08)) {
      const made = route === 'create' ? this.createBody() : this.otherBody();
      body = made.body;
      if (made.contentType !== undefined) headers['content-type'] = made.contentType;
      notes.push(made.note);
    }
    if (body === undefined && r.chance(0.03))
      headers['content-type'] = r.weighted(CONTENT_TYPES) ?? 'application/json';

    const kind: RequestKind =
      method === 'POST' && pathKind === 'collection'
        ? 'create'
        : method === 'POST' && pathKind === 'cancel'
          ? 'cancel'
          : method === 'POST' && pathKind === 'restore'
            ? 'restore'
            : method === 'DELETE' && pathKind === 'job'
              ? 'delete'
              : 'other';
    return { n: this.n++, method, path, headers, body, kind, jobId, token, note: notes.join(', ') };
  }

  /** A job id in some spelling: a seeded job (as is, in capitals, percent-encoded) or anything but. */
  private jobIdVariant(forEvents: boolean): { text: string; jobId?: string; note: string } {
    const r = this.rng;
    const pool = forEvents ? this.ctx.finishedJobs : this.ctx.jobs;
    const kind = r.weighted<string>([
      [50, 'seeded'],
      [7, 'upper'],
      [5, 'percent'],
      [8, 'random'],
      [2, 'nil'],
      [10, 'invalid'],
      [3, 'huge'],
      [4, 'unicode'],
      [4, 'bad-percent'],
      [4, 'traversal'],
      [3, 'empty'],
    ]);
    const job = r.pick(pool);
    switch (kind) {
      case 'seeded':
        return {
          text: job.id,
          jobId: job.id,
          note: `${job.status}${job.deleted ? ' deleted' : ''}${job.purged ? ' purged' : ''} of ${job.owner}`,
        };
      case 'upper':
        return { text: job.id.toUpperCase(), jobId: job.id, note: 'seeded in capitals' };
      case 'percent':
        return {
          text: [...job.id].map((c) => `%${c.charCodeAt(0).toString(16)}`).join(''),
          jobId: job.id,
          note: 'seeded percent-encoded',
        };
      case 'random':
        return { text: r.uuid(), note: 'unknown uuid' };
      case 'nil':
        return { text: '00000000-0000-0000-0000-000000000000', note: 'nil uuid' };
      case 'invalid':
        return { text: r.pick(INVALID_IDS), note: 'invalid' };
      case 'huge':
        return { text: 'a'.repeat(r.pick([600, 5000, 17_000, 70_000])), note: 'huge' };
      case 'unicode': {
        const u = r.pick(UNICODE);
        return r.chance(0.5)
          ? { text: wire(u), note: 'raw unicode' }
          : { text: enc(u), note: 'encoded unicode' };
      }
      case 'bad-percent':
        return { text: r.pick(BAD_PERCENT), note: 'bad percent-encoding' };
      case 'traversal':
        return { text: r.pick(TRAVERSAL), note: 'traversal' };
      default:
        return { text: '', note: 'empty' };
    }
  }

  private query(): string {
    const r = this.rng;
    const parts: string[] = [];
    for (let i = r.int(0, 3); i > 0; i--) {
      parts.push(
        r.weighted<() => string>([
          [
            5,
            () =>
              `limit=${r.pick(['', '0', '-1', '1', '2', '50', '500', '501', '1.5', '1e3', 'abc', '99999999999999999999999', '%205', '5%20', '0x10', 'NaN', 'Infinity', '%2B5', '05', '%00', wire('١')])}`,
          ],
          [4, () => `cursor=${this.cursor()}`],
          [
            4,
            () =>
              `status=${r.pick([...JOB_STATUSES, ...ITEM_STATUSES, 'PENDING', 'nope', '', 'pending,running', '%00', enc('💥')])}`,
          ],
          [2, () => `show_deleted=${r.pick(['true', 'false', '1', '0', 'yes', '', 'TRUE', 'null'])}`],
          [
            2,
            () =>
              r.pick([
                'foo=bar',
                '__proto__=1',
                '__proto__[x]=1',
                'constructor=1',
                'constructor[prototype][x]=1',
                'hasOwnProperty=1',
                'toString=1',
                'limit[]=1',
                'limit[a]=1',
              ]),
          ],
          [2, () => r.pick(['limit=1&limit=2', 'status=pending&status=running', 'cursor=a&cursor=b'])],
          [2, () => r.pick(['&&&', '=', '=x', 'limit', 'limit=', '%zz=1', 'a=%zz', '%=%', '+=+', '#frag'])],
        ])(),
      );
    }
    return parts.join('&');
  }

  private cursor(): string {
    const r = this.rng;
    const real = this.ctx.cursors.length > 0 ? r.pick(this.ctx.cursors) : 'eyJ9';
    return r.weighted<() => string>([
      [4, () => real],
      [2, () => real.slice(0, -2)],
      [2, () => real.slice(0, r.int(0, real.length - 1))],
      [2, () => `${real}A`],
      [2, () => real.replace(/[A-Za-z]/, (c) => (c === 'A' ? 'B' : 'A'))],
      [3, () => this.randomBytes(r.int(1, 400)).toString('base64url')],
      [3, () => this.editedCursor(real)],
      [3, () => this.resignedCursor()],
      [1, () => ''],
      [1, () => 'x'],
      [1, () => 'a'.repeat(1025)],
      [1, () => '%ff%fe'],
      [1, () => '=='],
      [1, () => Buffer.from('{"k":"jobs","p":[]}').toString('base64url')],
      [1, () => Buffer.from('[1,2,3]').toString('base64url')],
      [1, () => Buffer.from('\u0000\u0001').toString('base64url')],
    ])();
  }

  private randomBytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.rng.int(0, 255)));
  }

  /** Positions a cursor could carry: real-looking ones and every kind that is out of range. */
  private position(): unknown[] {
    const r = this.rng;
    const seq = () =>
      r.pick<unknown>([0, 1, 2147483647, 2147483648, -1, 1.5, 1e300, -0, '3', null, Number.MAX_SAFE_INTEGER]);
    const at = () =>
      r.pick<unknown>([
        new Date().toISOString(),
        '0000-01-01T00:00:00.000Z',
        '9999-12-31T23:59:59.999Z',
        '2025-02-30T00:00:00.000Z',
        '+275760-09-13T00:00:00.000Z',
        '2025-01-01',
        '',
        0,
      ]);
    const id = () => r.pick<unknown>([r.uuid(), 'not-a-uuid', "' OR 1=1 --", null]);
    return r.weighted<() => unknown[]>([
      [3, () => [seq()]],
      [3, () => [at(), id()]],
      [1, () => []],
      [1, () => [seq(), seq()]],
      [1, () => [at(), id(), 'extra']],
    ])();
  }

  /** A real cursor whose position (or another member) was edited and re-encoded: its signature no longer fits. */
  private editedCursor(real: string): string {
    let envelope: Record<string, unknown>;
    try {
      envelope = JSON.parse(Buffer.from(real, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      return real;
    }
    const r = this.rng;
    const edited = r.weighted<Record<string, unknown>>([
      [5, { ...envelope, p: this.position() }],
      [1, { ...envelope, k: r.pick(['jobs', 'items', 'other']) }],
      [1, { ...envelope, v: r.pick([1, 3, '2']) }],
      [1, { ...envelope, s: this.randomBytes(32).toString('base64url') }],
    ]);
    return Buffer.from(JSON.stringify(edited)).toString('base64url');
  }

  /** A well-formed cursor signed with a key that is not the server's. */
  private resignedCursor(): string {
    const codec = new CursorCodec({ current: this.randomBytes(32) });
    const kind = this.rng.pick(['jobs', 'items']);
    const filters = { status: undefined, show_deleted: false, owner: this.rng.pick(OWNERS) };
    return codec.encode(kind, filters, this.position());
  }

  /** A create body: a valid job, a mutated one, NDJSON, or something that is no job at all. */
  private createBody(): { body: Buffer | undefined; contentType: string | undefined; note: string } {
    const r = this.rng;
    const form = r.weighted<string>([
      [45, 'json'],
      [30, 'mutated'],
      [10, 'ndjson'],
      [7, 'special'],
      [8, 'other'],
    ]);
    if (form === 'ndjson') {
      return {
        body: this.ndjson(),
        contentType: r.chance(0.9) ? 'application/x-ndjson' : r.weighted(CONTENT_TYPES),
        note: 'ndjson',
      };
    }
    const contentType = r.chance(0.8) ? 'application/json' : r.weighted(CONTENT_TYPES);
    if (form === 'json' || form === 'mutated') {
      const job = this.validJob();
      if (form === 'mutated') for (let i = r.int(1, 3); i > 0; i--) this.mutate(job);
      return {
        body: Buffer.from(JSON.stringify(job)),
        contentType,
        note: `${form} job, ${contentType ?? 'no content type'}`,
      };
    }
    if (form === 'special') {
      const special = this.specialJson();
      return {
        body: special.body,
        contentType,
        note: `${special.note}, ${contentType ?? 'no content type'}`,
      };
    }
    return { ...this.notJson(), note: 'not json' };
  }

  private validJob(): Record<string, unknown> {
    const r = this.rng;
    const count = r.weighted<number>([
      [72, r.int(1, 5)],
      [24, r.int(6, 60)],
      [3, r.int(200, 1000)],
      [1, r.int(1001, 1200)],
    ]);
    const targets: unknown[] = Array.from({ length: count }, (_, i) =>
      r.chance(0.8)
        ? `t-${i}`
        : { id: `t-${i}`, ...(r.chance(0.5) ? { data: { n: i, tags: ['a', 'b'] } } : {}) },
    );
    const job: Record<string, unknown> = { action: r.pick(['noop', 'noop', 'simulate']), targets };
    if (job.action === 'simulate') job.params = { delay_ms: r.int(0, 10), fail_targets: ['t-0'] };
    else if (r.chance(0.3)) job.params = {};
    if (r.chance(0.3)) {
      job.options = {
        ...(r.chance(0.5) ? { max_attempts: r.int(1, 25) } : {}),
        ...(r.chance(0.3) ? { concurrency: r.int(1, 10_000) } : {}),
        ...(r.chance(0.3) ? { rate_limit_per_second: r.pick([0.01, 1, 50.5, 100_000]) } : {}),
      };
    }
    return job;
  }

  private mutate(job: Record<string, unknown>): void {
    const r = this.rng;
    const targets = Array.isArray(job.targets) ? (job.targets as unknown[]) : undefined;
    switch (r.int(0, 10)) {
      case 0:
        delete job[r.pick(['action', 'targets'])];
        return;
      case 1:
        job[r.pick(['action', 'targets', 'params', 'options'])] = r.pick(WRONG_VALUES);
        return;
      case 2:
        job[r.pick(['foo', 'id', 'status', 'owner', 'Action', '', ' action'])] = r.pick(WRONG_VALUES);
        return;
      case 3:
        job.options = {
          ...(job.options as object),
          [r.pick(['max_attempts', 'concurrency', 'rate_limit_per_second', 'foo'])]: r.pick([
            0,
            26,
            1.5,
            '3',
            null,
            -1,
            1e20,
            true,
            0.001,
            1e6,
            [],
            {},
            10_001,
          ]),
        };
        return;
      case 4:
        if (targets?.length)
          targets[r.int(0, targets.length - 1)] = r.pick([...WRONG_VALUES, ...ODD_STRINGS]);
        return;
      case 5:
        if (targets?.length) {
          targets[r.int(0, targets.length - 1)] = r.pick<unknown>([
            { id: 1 },
            { id: 'a', data: [] },
            { id: 'a', data: 'x' },
            { id: 'a', extra: 1 },
            {},
            { id: '' },
            { id: '\u0000' },
            { id: '\ud800' },
            { id: 'a', data: { '\u0000': 1 } },
            { id: 'a', data: { k: '\ud800' } },
            { id: 'a', data: { k: 'a\u0000b' } },
            { id: 'a', data: null },
            { id: 'x'.repeat(513) },
            ['a'],
          ]);
        }
        return;
      case 6:
        job.action = r.pick([
          'nope',
          'NOOP',
          '',
          'a'.repeat(65),
          'noop\u0000',
          'http',
          'simulate',
          'constructor',
          '__proto__',
          'noop ',
          'no op',
        ]);
        return;
      case 7:
        job.params = r.pick<unknown>([
          { x: 1 },
          { delay_ms: -1 },
          { delay_ms: 60_001 },
          { delay_ms: 'x' },
          { delay_ms: 1.5 },
          { fail_targets: 'x' },
          { fail_targets: [1] },
          { url: 'http://127.0.0.1:1/{id}' },
          { url: 'http://user:pw@example.com/' },
          { url: 'not a url' },
          { '\u0000': 1 },
          { k: '\ud800' },
          [],
          null,
        ]);
        return;
      case 8:
        job.targets = r.pick<unknown>([[], 'a', {}, null, [[]], new Array(r.int(1, 5)).fill(null)]);
        return;
      case 9:
        job.params = nest(r.pick([5, 50, 500, 1000]), 'object');
        return;
      default:
        if (targets?.length)
          targets[0] = { id: 'deep', data: nest(r.pick([10, 100, 1000]), 'object') as object };
    }
  }

  /** JSON text that JSON.stringify would not write: syntax errors, depth, duplicates, prototypes, numbers. */
  private specialJson(): { body: Buffer; note: string } {
    const r = this.rng;
    const depth = r.pick([100, 1000, 10_000, 60_000]);
    const choices: [string, () => string | Buffer][] = [
      ['empty', () => ''],
      ['open brace', () => '{'],
      ['close brace', () => '}'],
      ['array', () => '[]'],
      ['null', () => 'null'],
      ['string', () => '"x"'],
      ['number', () => '1'],
      ['true', () => 'true'],
      ['trailing comma', () => '{"action":"noop","targets":["a"],}'],
      ['trailing garbage', () => '{"action":"noop","targets":["a"]}garbage'],
      ['two documents', () => '{"action":"noop","targets":["a"]}{"action":"noop","targets":["b"]}'],
      ['duplicate keys', () => '{"action":"noop","action":"nope","targets":["a"],"targets":[1]}'],
      ['__proto__', () => '{"__proto__":{"x":1},"action":"noop","targets":["a"]}'],
      ['nested __proto__', () => '{"action":"noop","targets":["a"],"params":{"__proto__":{"x":1}}}'],
      [
        'constructor.prototype',
        () => '{"constructor":{"prototype":{"x":1}},"action":"noop","targets":["a"]}',
      ],
      ['huge number', () => '{"action":"noop","targets":["a"],"options":{"max_attempts":1e400}}'],
      ['negative zero', () => '{"action":"noop","targets":["a"],"options":{"max_attempts":-0}}'],
      ['deep array', () => `${'['.repeat(depth)}${']'.repeat(depth)}`],
      ['deep params', () => `{"action":"noop","targets":["a"],"params":${deepJson(depth)}}`],
      ['deep target data', () => `{"action":"noop","targets":[{"id":"a","data":${deepJson(depth)}}]}`],
      ['deep targets', () => `{"action":"noop","targets":${'['.repeat(depth)}${']'.repeat(depth)}}`],
      ['escaped NUL', () => '{"action":"noop","targets":["a\\u0000b"]}'],
      ['lone surrogate', () => '{"action":"noop","targets":["\\ud800"]}'],
      ['lone surrogate key', () => '{"action":"noop","targets":[{"id":"a","data":{"\\udc00":1}}]}'],
      ['raw control characters', () => '{"action":"noop","targets":["a\u0001\u001f"]}'],
      [
        'invalid UTF-8',
        () =>
          Buffer.concat([
            Buffer.from('{"action":"noop","targets":["'),
            Buffer.from([0xff, 0xfe, 0xc0, 0xaf]),
            Buffer.from('"]}'),
          ]),
      ],
      [
        'UTF-8 surrogate bytes',
        () =>
          Buffer.concat([
            Buffer.from('{"action":"noop","targets":["'),
            Buffer.from([0xed, 0xa0, 0x80]),
            Buffer.from('"]}'),
          ]),
      ],
      [
        'truncated UTF-8',
        () => Buffer.concat([Buffer.from('{"action":"noop","targets":["a'), Buffer.from([0xe2, 0x82])]),
      ],
      ['UTF-16', () => Buffer.from('{"action":"noop","targets":["a"]}', 'utf16le')],
      ['BOM', () => `\ufeff{"action":"noop","targets":["a"]}`],
      [
        'big body',
        () => JSON.stringify({ action: 'noop', targets: new Array(12_000).fill('target-with-a-long-name') }),
      ],
      [
        'many keys',
        () =>
          JSON.stringify({
            action: 'noop',
            targets: ['a'],
            params: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i])),
          }),
      ],
      ['long string', () => JSON.stringify({ action: 'noop', targets: ['a'.repeat(100_000)] })],
    ];
    const [note, make] = r.pick(choices);
    const made = make();
    return { body: typeof made === 'string' ? Buffer.from(made) : made, note };
  }

  private ndjson(): Buffer {
    const r = this.rng;
    const lines: (string | Buffer)[] = [];
    const spec = r.weighted<string>([
      [70, JSON.stringify({ action: 'noop' })],
      [5, JSON.stringify({ action: 'simulate', params: { delay_ms: 1 } })],
      [5, JSON.stringify({ action: 'nope' })],
      [3, JSON.stringify({ action: 'noop', targets: ['a'] })],
      [3, '"just a string"'],
      [3, '{'],
      [3, ''],
      [2, JSON.stringify({ action: 'noop', params: { x: 1 } })],
      [2, JSON.stringify({ action: 'noop', options: { max_attempts: 0 } })],
      [2, '\ufeff{"action":"noop"}'],
      [2, `{"action":"noop","params":${deepJson(3000)}}`],
    ]);
    lines.push(spec);
    const count = r.weighted<number>([
      [85, r.int(0, 20)],
      [13, r.int(21, 300)],
      [2, r.int(1990, 2010)],
    ]);
    for (let i = 0; i < count; i++) {
      if (r.chance(0.93)) {
        lines.push(r.chance(0.8) ? JSON.stringify(`t-${i}`) : JSON.stringify({ id: `t-${i}`, data: { i } }));
        continue;
      }
      if (r.chance(0.6)) {
        lines.push(this.generatedTargetLine(i));
        continue;
      }
      lines.push(
        r.pick<string | Buffer>([
          '',
          '   ',
          'not json',
          '{',
          '1',
          'null',
          '[]',
          '{}',
          '""',
          JSON.stringify('x'.repeat(513)),
          '"a\\u0000b"',
          '"\\ud800"',
          '{"id":"a","extra":1}',
          '{"id":"a","data":[]}',
          '{"id":"a","data":{"\\u0000":1}}',
          Buffer.from([0x22, 0xff, 0xfe, 0x22]),
          `{"id":"deep","data":${deepJson(20_000)}}`,
        ]),
      );
    }
    const eol = r.pick(['\n', '\n', '\r\n', '\r']);
    const parts: Buffer[] = [];
    lines.forEach((line, i) => {
      parts.push(typeof line === 'string' ? Buffer.from(line) : line);
      if (i < lines.length - 1 || r.chance(0.8)) parts.push(Buffer.from(eol));
    });
    return Buffer.concat(parts);
  }

  /** Text of a random length, from every part of Unicode, with what JSON must escape. */
  private unicode(max: number): string {
    const r = this.rng;
    const pieces = [
      () => String.fromCharCode(r.int(0x20, 0x7e)),
      () => String.fromCharCode(r.int(0, 0x1f)),
      () => String.fromCharCode(r.int(0x80, 0x7ff)),
      () => String.fromCharCode(r.int(0x800, 0xd7ff)),
      () => String.fromCodePoint(r.int(0x10000, 0x10ffff)),
      () => r.pick(['\u0301', '\u202e', '\ufeff', '\u2028', '"', '\\', '€', '💥']),
    ];
    let text = '';
    for (let n = r.int(0, max); n > 0; n--) text += r.pick(pieces)();
    return text;
  }

  /** A JSON value nested `depth` levels, with random keys and scalars. */
  private nested(depth: number): unknown {
    const r = this.rng;
    let value: unknown = r.pick<unknown>([1, 'x', true, null, this.unicode(8)]);
    for (let i = 0; i < depth; i++)
      value = r.chance(0.5) ? { [this.unicode(6)]: value } : [value, r.int(0, 9)];
    return value;
  }

  /**
   * A target line of random size, depth and characters: ids of 0 to 600 characters, data nested up to
   * past the depth limit, data up to past BULK_JOBS_MAX_TARGET_DATA_BYTES, and lines up to past the
   * longest line the stream takes. All of them are answered with a 202 or a 400 that names the line.
   */
  private generatedTargetLine(i: number): string {
    const r = this.rng;
    return r.weighted<() => string>([
      [3, () => JSON.stringify(this.unicode(r.pick([5, 100, 520])) || `u-${i}`)],
      [3, () => JSON.stringify({ id: `n-${i}`, data: { v: this.nested(r.int(1, 70)) } })],
      [
        2,
        () =>
          JSON.stringify({
            id: `s-${i}`,
            data: { s: 'd'.repeat(r.pick([100, 16_000, 16_377, 16_378, 40_000])) },
          }),
      ],
      [2, () => JSON.stringify({ id: `w-${i}`, data: { s: '€'.repeat(r.int(5_000, 6_000)) } })],
      [1, () => JSON.stringify({ id: `h-${i}`, data: { s: 'h'.repeat(r.pick([200_000, 1_100_000])) } })],
      [
        1,
        () =>
          JSON.stringify({
            id: this.unicode(40) || `x-${i}`,
            data: { [this.unicode(20)]: this.unicode(200) },
          }),
      ],
    ])();
  }

  private notJson(): { body: Buffer | undefined; contentType: string | undefined } {
    const r = this.rng;
    return r.pick<{ body: Buffer | undefined; contentType: string | undefined }>([
      {
        body: Buffer.from('action=noop&targets=a&targets=b'),
        contentType: 'application/x-www-form-urlencoded',
      },
      { body: Buffer.from('hello'), contentType: 'text/plain' },
      { body: Buffer.from('{"action":"noop","targets":["a"]}'), contentType: 'text/plain' },
      { body: undefined, contentType: 'application/json' },
      { body: Buffer.alloc(0), contentType: 'application/json' },
      { body: Buffer.from([0xff, 0xfe, 0xfd, 0x00, 0x01]), contentType: 'application/json' },
      {
        body: Buffer.from('--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--xyz--\r\n'),
        contentType: 'multipart/form-data; boundary=xyz',
      },
      { body: Buffer.from('<job/>'), contentType: 'application/xml' },
      { body: Buffer.from('{"action":"noop","targets":["a"]}'), contentType: undefined },
    ]);
  }

  /** Bodies for requests that take none (cancel, restore, and the wrong methods). */
  private otherBody(): { body: Buffer | undefined; contentType: string | undefined; note: string } {
    const r = this.rng;
    if (r.chance(0.5)) return { body: undefined, contentType: undefined, note: 'no body' };
    const text = r.pick([
      '{}',
      '',
      'null',
      '[]',
      '{"force":true}',
      '"x"',
      '1',
      '{',
      'a=b',
      '{"status":"completed"}',
      `${'['.repeat(5000)}${']'.repeat(5000)}`,
    ]);
    const contentType = r.weighted(CONTENT_TYPES);
    return {
      body: Buffer.from(text),
      contentType,
      note: `body ${text.slice(0, 20)} as ${contentType ?? 'no content type'}`,
    };
  }
}

/** `{"a":{"a":…1}}` as text, deeper than JSON.stringify could write. */
function deepJson(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** `{"a":{"a":…1}}` (or arrays) `depth` levels deep, built without recursion. */
function nest(depth: number, shape: 'object' | 'array'): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = shape === 'object' ? { a: value } : [value];
  return value;
}
