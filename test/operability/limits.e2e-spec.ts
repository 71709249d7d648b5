import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { bootTestApp, createTestApp, type TestApp } from '../support/app';
import { JOBS, jobBody } from '../support/api';
import { ManualClock, useClock } from '../support/clock';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const NOOP = { action: 'noop', targets: ['a'] };

describe('rate limit per principal', () => {
  let t: TestApp;
  // The limiter's minutes are this clock's: it stands 30 s into a minute until a test moves it.
  const clock = new ManualClock();
  before(async () => {
    t = await bootTestApp({ env: { RATE_LIMIT_PER_MINUTE: '3' }, overrides: [useClock(clock)] });
  });
  after(() => t.close());

  it('answers the request over the limit with a 429 problem and a Retry-After that is honest', async () => {
    const auth = bearer(tokenFor(newOwner()));
    for (let i = 0; i < 3; i++) {
      const ok = await t.http().get(JOBS).set(auth);
      expect(ok.status).toBe(200);
      expect(ok.headers['x-ratelimit-limit']).toBe('3');
      expect(ok.headers['x-ratelimit-remaining']).toBe(String(2 - i));
      expect(ok.headers['x-ratelimit-reset']).toBe('30');
    }
    const res = await t.http().post(JOBS).set(auth).send(NOOP);
    // The window ends in 30 s; the three requests still weigh 3 the moment the next one starts.
    expectProblem(res, 429, {
      type: 'about:blank',
      title: 'Too Many Requests',
      detail: 'More than 3 requests in a minute. Retry after 31 seconds.',
    });
    expect(res.headers['retry-after']).toBe('31');
    expect(res.headers['x-ratelimit-remaining']).toBe('0');

    // A second before Retry-After, still refused; at it, let through.
    clock.advance(30_000);
    expectProblem(await t.http().get(JOBS).set(auth), 429);
    clock.advance(1_000);
    const allowed = await t.http().get(JOBS).set(auth);
    expect(allowed.status).toBe(200);
    expect(allowed.headers['x-ratelimit-remaining']).toBe('0');
  });

  it('counts each principal apart, though they share an address', async () => {
    const alice = bearer(tokenFor(newOwner('alice')));
    const bob = bearer(tokenFor(newOwner('bob')));
    for (let i = 0; i < 3; i++) expect((await t.http().get(JOBS).set(alice)).status).toBe(200);
    expectProblem(await t.http().get(JOBS).set(alice), 429);
    expect((await t.http().get(JOBS).set(bob)).status).toBe(200);
  });

  it('does not count the routes that need no token against a principal (they are limited per address)', async () => {
    const auth = bearer(tokenFor(newOwner()));
    for (let i = 0; i < 5; i++) {
      for (const path of ['/health/live', '/metrics']) {
        const res = await t.http().get(path).set(auth);
        expect({ path, status: res.status }).toEqual({ path, status: 200 });
        expect(res.headers['x-ratelimit-limit']).toBe('600');
      }
    }
    const res = await t.http().get(JOBS).set(auth);
    expect(res.status).toBe(200);
    expect(res.headers['x-ratelimit-remaining']).toBe('2');
  });

  it('does not count requests that fail authentication against anyone', async () => {
    const owner = newOwner();
    for (let i = 0; i < 5; i++) expectProblem(await t.http().get(JOBS).set(bearer('nonsense')), 401);
    expect(
      (
        await t
          .http()
          .get(JOBS)
          .set(bearer(tokenFor(owner)))
      ).status,
    ).toBe(200);
  });
});

describe('rate limit per client address, on the routes that need no token', () => {
  const clock = new ManualClock();
  let t: TestApp;
  let proxied: TestApp;
  before(async () => {
    const env = { RATE_LIMIT_PUBLIC_PER_MINUTE: '3', RATE_LIMIT_PER_MINUTE: '0' };
    t = await bootTestApp({ env, overrides: [useClock(clock)] });
    // Behind a proxy on loopback, whose X-Forwarded-For is believed.
    proxied = await bootTestApp({ env: { ...env, TRUST_PROXY: '127.0.0.1' }, overrides: [useClock(clock)] });
  });
  after(async () => {
    await t.close();
    await proxied.close();
  });

  it('counts health, metrics, the OpenAPI document and unknown paths together per address; 429 past it', async () => {
    // Past the windows of the document the boot itself fetched.
    clock.advance(120_000);
    const paths = ['/health/live', '/metrics', '/docs-json'];
    for (let i = 0; i < paths.length; i++) {
      const res = await t.http().get(paths[i]);
      expect({ path: paths[i], status: res.status }).toEqual({ path: paths[i], status: 200 });
      expect(res.headers['x-ratelimit-remaining']).toBe(String(2 - i));
    }
    for (const path of ['/health/ready', '/docs', '/no-such-route', '/api/actions/bulk/nope']) {
      const res = await t.http().get(path);
      expectProblem(res, 429, {
        type: 'about:blank',
        detail: 'More than 3 requests in a minute. Retry after 31 seconds.',
      });
      expect(res.headers['retry-after']).toBe('31');
      // The security headers are on a refusal too.
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    }
    // The API's own routes are not counted here (their limit is per principal, here off).
    const auth = bearer(tokenFor(newOwner()));
    expect((await t.http().get(JOBS).set(auth)).status).toBe(200);
    clock.advance(31_000);
    expect((await t.http().get('/health/live')).status).toBe(200);
  });

  it("takes the socket's address unless TRUST_PROXY names the proxy; then X-Forwarded-For's", async () => {
    clock.advance(120_000);
    // Not trusted: every forwarded address is the socket's, 127.0.0.1, and shares its budget.
    for (let i = 0; i < 3; i++)
      expect((await t.http().get('/health/live').set('X-Forwarded-For', `203.0.113.${i}`)).status).toBe(200);
    expectProblem(await t.http().get('/health/live').set('X-Forwarded-For', '203.0.113.99'), 429);
    // Trusted: each forwarded client has its own.
    for (let i = 0; i < 3; i++)
      expect((await proxied.http().get('/health/live').set('X-Forwarded-For', '203.0.113.7')).status).toBe(
        200,
      );
    expectProblem(await proxied.http().get('/health/live').set('X-Forwarded-For', '203.0.113.7'), 429);
    const other = await proxied.http().get('/health/live').set('X-Forwarded-For', '203.0.113.8');
    expect(other.status).toBe(200);
    expect(other.headers['x-ratelimit-remaining']).toBe('2');
  });
});

describe('active jobs per owner', () => {
  let t: TestApp;
  before(async () => {
    // No worker here: created jobs stay pending.
    t = await createTestApp({ BULK_JOBS_MAX_ACTIVE_PER_OWNER: '2' });
  });
  after(() => t.close());

  it('refuses a job past the cap with a 429 /problems/too-many-active-jobs, for that owner only', async () => {
    const owner = newOwner();
    const auth = bearer(tokenFor(owner));
    const first = await t.http().post(JOBS).set(auth).send(NOOP);
    expect(first.status).toBe(202);
    expect((await t.http().post(JOBS).set(auth).send(NOOP)).status).toBe(202);
    const refused = await t.http().post(JOBS).set(auth).send(NOOP);
    expectProblem(refused, 429, {
      type: '/problems/too-many-active-jobs',
      title: 'Too many active jobs.',
      max_active_jobs: 2,
    });
    // Nothing of the refused job was kept.
    const rows = await t.db.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM bulk_jobs WHERE owner = $1`,
      [owner],
    );
    expect(rows[0].n).toBe(2);
    // Streamed creates are capped too.
    const streamed = await t
      .http()
      .post(JOBS)
      .set(auth)
      .set('Content-Type', 'application/x-ndjson')
      .send('{"action":"noop"}\n"a"\n');
    expectProblem(streamed, 429, { type: '/problems/too-many-active-jobs' });
    expect(
      (
        await t
          .http()
          .post(JOBS)
          .set(bearer(tokenFor(newOwner())))
          .send(NOOP)
      ).status,
    ).toBe(202);

    // A finished (here: cancelled) job frees its place.
    const id = jobBody(first).id;
    expect((await t.http().post(`${JOBS}/${id}/cancel`).set(auth)).status).toBe(200);
    expect((await t.http().post(JOBS).set(auth).send(NOOP)).status).toBe(202);
  });

  it('replays an Idempotency-Key at the cap instead of refusing it', async () => {
    const auth = bearer(tokenFor(newOwner()));
    const first = await t.http().post(JOBS).set(auth).set('Idempotency-Key', 'k-1').send(NOOP);
    expect(first.status).toBe(202);
    expect((await t.http().post(JOBS).set(auth).send(NOOP)).status).toBe(202);
    const again = await t.http().post(JOBS).set(auth).set('Idempotency-Key', 'k-1').send(NOOP);
    expect(again.status).toBe(202);
    expect(jobBody(again).id).toBe(jobBody(first).id);
    expect(again.headers['idempotent-replayed']).toBe('true');
  });

  it('refuses a streamed create at the cap inside its transaction, where no precheck runs (a new Idempotency-Key)', async () => {
    const owner = newOwner();
    const auth = bearer(tokenFor(owner));
    for (let i = 0; i < 2; i++) expect((await t.http().post(JOBS).set(auth).send(NOOP)).status).toBe(202);
    const streamed = await t
      .http()
      .post(JOBS)
      .set(auth)
      .set('Idempotency-Key', 'stream-at-cap')
      .set('Content-Type', 'application/x-ndjson')
      .send('{"action":"noop"}\n"a"\n"b"\n');
    expectProblem(streamed, 429, { type: '/problems/too-many-active-jobs', max_active_jobs: 2 });
    // The transaction was rolled back: no third job, no items of it, and the key is still free.
    const [{ jobs, items, keys }] = await t.db.query<{ jobs: number; items: number; keys: number }[]>(
      `SELECT (SELECT count(*)::int FROM bulk_jobs WHERE owner = $1) AS jobs,
              (SELECT count(*)::int FROM bulk_job_items i JOIN bulk_jobs j ON j.id = i.job_id WHERE j.owner = $1) AS items,
              (SELECT count(*)::int FROM bulk_job_idempotency_keys WHERE owner = $1) AS keys`,
      [owner],
    );
    expect({ jobs, items, keys }).toEqual({ jobs: 2, items: 2, keys: 0 });
  });

  it('lets concurrent creates of one owner through up to the cap, never past it', async () => {
    const owner = newOwner();
    const auth = bearer(tokenFor(owner));
    const responses = await Promise.all(
      Array.from({ length: 8 }, () => t.http().post(JOBS).set(auth).send(NOOP)),
    );
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([202, 202, 429, 429, 429, 429, 429, 429]);
    for (const r of responses.filter((x) => x.status === 429)) {
      expectProblem(r, 429, { type: '/problems/too-many-active-jobs' });
    }
    const rows = await t.db.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM bulk_jobs WHERE owner = $1`,
      [owner],
    );
    expect(rows[0].n).toBe(2);
  });
});

describe('no active-jobs cap and no rate limit when set to 0', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ BULK_JOBS_MAX_ACTIVE_PER_OWNER: '0', RATE_LIMIT_PER_MINUTE: '0' });
  });
  after(() => t.close());

  it('accepts any number of active jobs and requests', async () => {
    const auth = bearer(tokenFor(newOwner()));
    for (let i = 0; i < 8; i++) expect((await t.http().post(JOBS).set(auth).send(NOOP)).status).toBe(202);
    const res = await t.http().get(JOBS).set(auth);
    expect(res.status).toBe(200);
    expect(res.headers['x-ratelimit-limit']).toBeUndefined();
  });
});

describe('request bodies', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());
  const auth = () => bearer(tokenFor(newOwner()));

  it('answers a form body with a 415 problem, never a job', async () => {
    const owner = newOwner();
    const res = await t
      .http()
      .post(JOBS)
      .set(bearer(tokenFor(owner)))
      .type('form')
      .send('action=noop&targets=a');
    expectProblem(res, 415, { type: 'about:blank', title: 'Unsupported Media Type' });
    const rows = await t.db.query<{ n: number }[]>(
      `SELECT count(*)::int AS n FROM bulk_jobs WHERE owner = $1`,
      [owner],
    );
    expect(rows[0].n).toBe(0);
  });

  it('answers a Content-Encoding other than identity with a 415 problem and Accept-Encoding', async () => {
    for (const encoding of ['gzip', 'br', 'deflate, gzip']) {
      const res = await t
        .http()
        .post(JOBS)
        .set(auth())
        .set('Content-Type', 'application/json')
        .set('Content-Encoding', encoding)
        .send(gzipSync(JSON.stringify(NOOP)));
      expectProblem(res, 415, {
        type: 'about:blank',
        detail: 'Content-Encoding is not supported: send the request body uncompressed (identity).',
      });
      expect(res.headers['accept-encoding']).toBe('identity');
    }
    const plain = await t.http().post(JOBS).set(auth()).set('Content-Encoding', 'identity').send(NOOP);
    expect(plain.status).toBe(202);
  });

  it('still answers malformed JSON with 400 and an oversized body with 413', async () => {
    const bad = await t
      .http()
      .post(JOBS)
      .set(auth())
      .set('Content-Type', 'application/json')
      .send('{"action":');
    expectProblem(bad, 400, { type: 'about:blank', detail: 'The request body is not valid JSON.' });
    const small = await createTestApp({ BODY_LIMIT_BYTES: '2048' });
    try {
      const big = await small
        .http()
        .post(JOBS)
        .set(auth())
        .send({ action: 'noop', targets: Array.from({ length: 500 }, (_, i) => `target-${i}`) });
      expectProblem(big, 413, { type: 'about:blank' });
    } finally {
      await small.close();
    }
  });
});

describe('security headers and CORS', () => {
  let t: TestApp;
  let cors: TestApp;
  before(async () => {
    t = await createTestApp();
    cors = await createTestApp({ CORS_ORIGINS: 'https://app.example, http://localhost:5173' });
  });
  after(async () => {
    await t.close();
    await cors.close();
  });

  it('sends the security headers on successes and problems alike', async () => {
    for (const res of [
      await t
        .http()
        .get(JOBS)
        .set(bearer(tokenFor(newOwner()))),
      await t.http().get('/nope'),
    ]) {
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['strict-transport-security']).toMatch(/max-age=\d+/);
      expect(res.headers['content-security-policy']).toBe("default-src 'none'; frame-ancestors 'none'");
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['x-powered-by']).toBeUndefined();
      // The headers for HTML documents are Swagger UI's alone.
      expect(res.headers['cross-origin-opener-policy']).toBeUndefined();
    }
  });

  it("sends helmet's headers on Swagger UI's pages and the OpenAPI document", async () => {
    for (const path of ['/docs', '/docs-json']) {
      const res = await t.http().get(path);
      expect(res.status).toBe(200);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['cross-origin-opener-policy']).toBe('same-origin');
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
  });

  it('serves Swagger UI with scripts and styles that its Content-Security-Policy allows', async () => {
    const page = await t.http().get('/docs');
    expect(page.status).toBe(200);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toMatch(/style-src 'self' 'unsafe-inline'/);
    expect(csp).not.toContain('upgrade-insecure-requests');
    // Every script and stylesheet is on this origin (no inline script), and loads.
    expect(page.text).not.toMatch(/<script>(?!\s*<\/script>)/);
    const assets = [...page.text.matchAll(/(?:src|href)=["']([^"']+\.(?:js|css))["']/g)].map((m) => m[1]);
    expect(assets.length).toBeGreaterThanOrEqual(3);
    for (const asset of assets) {
      expect(asset).not.toMatch(/^(https?:)?\/\//);
      const res = await t.http().get(new URL(asset, 'http://x/docs').pathname);
      expect({ asset, status: res.status }).toEqual({ asset, status: 200 });
      expect(res.headers['content-type']).toMatch(asset.endsWith('.js') ? /javascript/ : /text\/css/);
    }
  });

  it('sends no CORS headers when CORS_ORIGINS is empty', async () => {
    const res = await t
      .http()
      .get(JOBS)
      .set('Origin', 'https://app.example')
      .set(bearer(tokenFor(newOwner())));
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('allows the configured origins, preflight included, and no others', async () => {
    const preflight = await cors
      .http()
      .options(JOBS)
      .set('Origin', 'https://app.example')
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'authorization, content-type, idempotency-key');
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(preflight.headers['access-control-allow-methods']).toContain('POST');
    expect(preflight.headers['access-control-allow-headers']).toMatch(/authorization/i);

    const res = await cors
      .http()
      .get(JOBS)
      .set('Origin', 'http://localhost:5173')
      .set(bearer(tokenFor(newOwner())));
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    expect(String(res.headers['access-control-expose-headers'])).toMatch(/X-Request-Id/i);

    const other = await cors
      .http()
      .get(JOBS)
      .set('Origin', 'https://evil.example')
      .set(bearer(tokenFor(newOwner())));
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });
});
