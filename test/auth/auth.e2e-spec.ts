import { expect } from 'expect';
import jwt from 'jsonwebtoken';
import { after, before, describe, it } from 'node:test';
import type { Response } from 'supertest';
import type { BulkJobResponseDto } from '../../src/bulk-jobs/dto/bulk-job-response.dto';
import { ACTIONS, itemListBody, JOBS, jobListBody, listAll } from '../support/api';
import { createTestApp, type TestApp } from '../support/app';
import { insertJob, jobRow } from '../support/factories';
import { claims, hmacToken, nowSeconds, unsignedToken } from '../support/jwt';
import { expectProblem } from '../support/problem-matcher';
import { TEST_JWT_SECRET } from '../support/test-env';
import { bearer, newOwner, tokenFor } from '../support/tokens';

const READ = 'bulk-jobs:read';
const WRITE = 'bulk-jobs:write';
const ADMIN = 'bulk-jobs:admin';
const NEW_JOB = { action: 'noop', targets: ['a', 'b'] };

const hs256 = (payload: Record<string, unknown>, secret = TEST_JWT_SECRET) =>
  jwt.sign(payload, secret, { algorithm: 'HS256' });

/** A 401 problem with a Bearer challenge, and nothing of the token in the body. */
function expectUnauthenticated(res: Response, token?: string): void {
  expectProblem(res, 401, { type: 'about:blank' });
  expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="[^"]+"/);
  // RFC 6750: a token that was sent and refused is `invalid_token`; no token, no error code.
  if (token) {
    expect(res.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    expectNoTokenIn(JSON.stringify(res.body), token);
  } else {
    expect(res.headers['www-authenticate']).not.toMatch(/error=/);
  }
}

function expectNoTokenIn(text: string, token: string): void {
  expect(text).not.toContain(token);
  for (const part of token.split('.')) if (part.length >= 8) expect(text).not.toContain(part);
}

/** The ids a 200 list answer holds. */
function listedIds(res: Response): string[] {
  expect(res.status).toBe(200);
  return jobListBody(res).items.map((j) => j.id);
}

function expectForbidden(res: Response, scope: string): void {
  expectProblem(res, 403, { type: 'about:blank', required_scope: scope });
  expect(res.headers['www-authenticate']).toMatch(/error="insufficient_scope"/);
}

describe('bearer authentication with HS256', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  it('answers a request without an Authorization header with 401 and a Bearer challenge', async () => {
    expectUnauthenticated(await t.http().get(JOBS));
  });

  it('accepts a valid token, with the scheme name in any case, as its sub', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const token = tokenFor(owner);
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const res = await t.http().get(JOBS).set('Authorization', `${scheme} ${token}`);
      expect({ scheme, ids: listedIds(res) }).toEqual({ scheme, ids: [id] });
    }
  });

  it('does not enforce iss or aud when they are not configured', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const token = hs256(claims(owner, { iss: 'https://anyone.test', aud: 'anything' }));
    expect(listedIds(await t.http().get(JOBS).set(bearer(token)))).toEqual([id]);
  });

  const otherSecret = 'another-secret-of-the-right-length-0123456789';
  const rejected: [string, () => string][] = [
    ['another auth scheme', () => `Basic ${Buffer.from('alice:pw').toString('base64')}`],
    ['an empty bearer token', () => 'Bearer '],
    ['a garbage token', () => 'Bearer not-a-jwt'],
    ['three garbage segments', () => 'Bearer aaaa.bbbb.cccc'],
    ['a token signed with another secret', () => `Bearer ${hs256(claims('alice'), otherSecret)}`],
    [
      'a token with a tampered payload',
      () => {
        const [h, , s] = hs256(claims('alice')).split('.');
        return `Bearer ${h}.${Buffer.from(JSON.stringify(claims('mallory'))).toString('base64url')}.${s}`;
      },
    ],
    ['an expired token', () => `Bearer ${hs256(claims('alice', { exp: nowSeconds() - 60 }))}`],
    [
      'a token without exp',
      () => {
        const { exp: _exp, ...rest } = claims('alice');
        return `Bearer ${hs256(rest)}`;
      },
    ],
    [
      'a token whose nbf is in the future',
      () => `Bearer ${hs256(claims('alice', { nbf: nowSeconds() + 3600, exp: nowSeconds() + 7200 }))}`,
    ],
    ['an alg:none token', () => `Bearer ${unsignedToken(claims('alice'))}`],
    ['an alg:none token with a signature', () => `Bearer ${unsignedToken(claims('alice'))}c2lnbmF0dXJl`],
    ['an alg:"None" token', () => `Bearer ${unsignedToken(claims('alice'), { alg: 'None' })}`],
    [
      'an HS512 token signed with the right secret',
      () => `Bearer ${jwt.sign(claims('alice'), TEST_JWT_SECRET, { algorithm: 'HS512' })}`,
    ],
    [
      'a token without sub',
      () => {
        const { sub: _sub, ...rest } = claims('alice');
        return `Bearer ${hs256(rest)}`;
      },
    ],
    ['a token with an empty sub', () => `Bearer ${hs256(claims(''))}`],
    ['a token with a numeric sub', () => `Bearer ${hmacToken({ ...claims('x'), sub: 42 }, TEST_JWT_SECRET)}`],
    ['a token with a 257-character sub', () => `Bearer ${hs256(claims('a'.repeat(257)))}`],
    // PostgreSQL's text cannot hold a NUL: such a sub could never own, list or be counted.
    ['a token whose sub holds a NUL character', () => `Bearer ${hs256(claims('al\u0000ice'))}`],
    ['a token whose payload is not an object', () => `Bearer ${jwt.sign('just a string', TEST_JWT_SECRET)}`],
  ];
  for (const [name, header] of rejected) {
    it(`answers ${name} with 401`, async () => {
      const value = header();
      const res = await t.http().get(JOBS).set('Authorization', value);
      // Only a Bearer credential is a token; another scheme counts as no token.
      expectUnauthenticated(res, /^Bearer\s/.test(value) ? value.replace(/^\S+\s*/, '') : undefined);
    });
  }

  it('refuses a token it accepted before once the token has expired', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    // Past its exp, but within the 5 s clock tolerance for 3 to 4 s more.
    const exp = nowSeconds() - 1;
    const token = hs256(claims(owner, { exp }));
    expect(listedIds(await t.http().get(JOBS).set(bearer(token)))).toEqual([id]);
    expect(listedIds(await t.http().get(JOBS).set(bearer(token)))).toEqual([id]);
    await new Promise((resolve) => setTimeout(resolve, (exp + 5) * 1000 + 100 - Date.now()));
    const res = await t.http().get(JOBS).set(bearer(token));
    expectUnauthenticated(res, token);
    expect((res.body as { detail: string }).detail).toBe('The token has expired.');
  });

  it('refuses an accepted token with its signature or payload changed', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const token = hs256(claims(owner));
    expect(listedIds(await t.http().get(JOBS).set(bearer(token)))).toEqual([id]);
    const [h, p, s] = token.split('.');
    const otherSignature = `${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`;
    const otherPayload = Buffer.from(JSON.stringify(claims('mallory'))).toString('base64url');
    for (const forged of [`${h}.${p}.${otherSignature}`, `${h}.${otherPayload}.${s}`]) {
      expectUnauthenticated(await t.http().get(JOBS).set(bearer(forged)), forged);
    }
  });

  it('answers 401 on every operation, before validating anything else', async () => {
    const token = hs256(claims('alice'), otherSecret);
    const id = '00000000-0000-4000-8000-000000000000';
    const calls = [
      t.http().get(JOBS),
      t.http().post(JOBS).send(NEW_JOB),
      t.http().get(`${JOBS}/${id}`),
      t.http().get(`${JOBS}/not-a-uuid`),
      t.http().get(`${JOBS}/${id}/items`),
      t.http().post(`${JOBS}/${id}/cancel`),
      t.http().delete(`${JOBS}/${id}`),
      t.http().post(`${JOBS}/${id}/restore`),
      t.http().get(ACTIONS),
    ];
    for (const call of calls) expectUnauthenticated(await call.set(bearer(token)), token);
  });
});

describe('scopes', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  it('lets a read-only token read, and answers 403 to every write', async () => {
    const owner = newOwner();
    const done = await insertJob(t.db, { owner, status: 'completed' });
    const running = await insertJob(t.db, { owner, status: 'running' });
    const token = tokenFor(owner, { scope: READ });

    expect(listedIds(await t.http().get(JOBS).set(bearer(token))).sort()).toEqual([done, running].sort());
    expect(jobOf(await t.http().get(`${JOBS}/${done}`).set(bearer(token)))).toMatchObject({
      id: done,
      owner,
      status: 'completed',
    });
    const items = await t.http().get(`${JOBS}/${done}/items`).set(bearer(token));
    expect(items.status).toBe(200);
    expect(itemListBody(items).items.map((i) => i.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    const actions = await t.http().get(ACTIONS).set(bearer(token));
    expect(actions.status).toBe(200);
    expect((actions.body as { items: { name: string }[] }).items.map((a) => a.name)).toContain('noop');

    expectForbidden(await t.http().post(JOBS).set(bearer(token)).send(NEW_JOB), WRITE);
    expectForbidden(await t.http().delete(`${JOBS}/${done}`).set(bearer(token)), WRITE);
    expectForbidden(await t.http().post(`${JOBS}/${running}/cancel`).set(bearer(token)), WRITE);
    expectForbidden(await t.http().post(`${JOBS}/${done}/restore`).set(bearer(token)), WRITE);
    // Nothing changed.
    expect(jobOf(await t.http().get(`${JOBS}/${done}`).set(bearer(token))).deleted_at).toBeNull();
    expect(jobOf(await t.http().get(`${JOBS}/${running}`).set(bearer(token))).status).toBe('running');
  });

  it('lets a write-only token write, and answers 403 to every read', async () => {
    const owner = newOwner();
    const done = await insertJob(t.db, { owner, status: 'completed' });
    const token = tokenFor(owner, { scope: WRITE });

    expectForbidden(await t.http().get(JOBS).set(bearer(token)), READ);
    expectForbidden(await t.http().get(`${JOBS}/${done}`).set(bearer(token)), READ);
    expectForbidden(await t.http().get(`${JOBS}/${done}/items`).set(bearer(token)), READ);
    expectForbidden(await t.http().get(ACTIONS).set(bearer(token)), READ);

    const created = await t.http().post(JOBS).set(bearer(token)).send(NEW_JOB);
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ owner, action: 'noop', status: 'pending', total_items: 2 });
    const deleted = await t.http().delete(`${JOBS}/${done}`).set(bearer(token));
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ job_id: done, status: 'completed', success: true });
    expect((await jobRow(t.db, done))?.deleted_at).toBeInstanceOf(Date);
  });

  it('answers 403 to a token without any of our scopes', async () => {
    const token = tokenFor(newOwner(), { scope: 'openid profile bulk-jobs:reader' });
    expectForbidden(await t.http().get(JOBS).set(bearer(token)), READ);
    expectForbidden(await t.http().post(JOBS).set(bearer(token)).send(NEW_JOB), WRITE);
  });

  it('answers 403 before validating the request', async () => {
    const token = tokenFor(newOwner(), { scope: READ });
    expectForbidden(await t.http().delete(`${JOBS}/not-a-uuid`).set(bearer(token)), WRITE);
    expectForbidden(await t.http().post(JOBS).set(bearer(token)).send({ bogus: true }), WRITE);
  });

  it('reads scopes from an array claim and from scp', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const asArray = hs256(claims(owner, { scope: [READ] }));
    const asScp = hs256(claims(owner, { scope: undefined, scp: READ }));
    for (const token of [asArray, asScp]) {
      expect(listedIds(await t.http().get(JOBS).set(bearer(token)))).toEqual([id]);
      expectForbidden(await t.http().post(JOBS).set(bearer(token)).send(NEW_JOB), WRITE);
    }
  });
});

describe('ownership and the admin scope', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  it("hides another owner's jobs from a normal user: 404 everywhere, never 403, nothing revealed", async () => {
    const alice = newOwner('alice');
    const bob = newOwner('bob');
    const done = await insertJob(t.db, { owner: alice, status: 'completed' });
    const running = await insertJob(t.db, { owner: alice, status: 'running' });
    const deleted = await insertJob(t.db, {
      owner: alice,
      status: 'completed',
      deletedAt: new Date(),
      purgeAt: new Date(Date.now() + 86_400_000),
    });
    const token = tokenFor(bob);

    const listed = (await listAll(t, token, { show_deleted: 'true' })).map((j) => j.id);
    for (const id of [done, running, deleted]) expect(listed).not.toContain(id);

    const calls: [string, () => Promise<Response>][] = [
      ['get', () => t.http().get(`${JOBS}/${done}`).set(bearer(token))],
      ['items', () => t.http().get(`${JOBS}/${done}/items`).set(bearer(token))],
      ['delete', () => t.http().delete(`${JOBS}/${done}`).set(bearer(token))],
      ['cancel', () => t.http().post(`${JOBS}/${running}/cancel`).set(bearer(token))],
      ['restore', () => t.http().post(`${JOBS}/${deleted}/restore`).set(bearer(token))],
      ['get deleted', () => t.http().get(`${JOBS}/${deleted}`).set(bearer(token))],
    ];
    for (const [name, call] of calls) {
      const res = await call();
      expect({ name, status: res.status }).toEqual({ name, status: 404 });
      expectProblem(res, 404, { type: '/problems/job-not-found' });
      expect(JSON.stringify(res.body)).not.toContain(alice);
    }

    // And nothing changed for Alice.
    const rows: { id: string; status: string; deleted_at: Date | null }[] = await t.db.query(
      'SELECT id, status, deleted_at FROM bulk_jobs WHERE owner = $1',
      [alice],
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(done)?.deleted_at).toBeNull();
    expect(byId.get(running)?.status).toBe('running');
    expect(byId.get(deleted)?.deleted_at).toBeInstanceOf(Date);
  });

  it("lets an admin list and get every owner's jobs", async () => {
    const alice = newOwner('alice');
    const bob = newOwner('bob');
    const a = await insertJob(t.db, { owner: alice, status: 'completed' });
    const b = await insertJob(t.db, { owner: bob, status: 'pending' });
    const admin = tokenFor(newOwner('admin'), { scope: ADMIN });

    const listed = new Map((await listAll(t, admin)).map((j) => [j.id, j.owner]));
    expect(listed.get(a)).toBe(alice);
    expect(listed.get(b)).toBe(bob);

    const res = await t.http().get(`${JOBS}/${a}`).set(bearer(admin));
    expect(res.status).toBe(200);
    expect(jobOf(res)).toMatchObject({ id: a, owner: alice });
    const items = await t.http().get(`${JOBS}/${a}/items`).set(bearer(admin));
    expect(items.status).toBe(200);
    expect(itemListBody(items).items.map((i) => i.target_id)).toEqual(['target-1', 'target-2', 'target-3']);
  });

  it("lets an admin delete, restore and cancel another owner's jobs", async () => {
    const alice = newOwner('alice');
    const done = await insertJob(t.db, { owner: alice, status: 'completed' });
    const pending = await insertJob(t.db, { owner: alice, status: 'pending' });
    const admin = tokenFor(newOwner('admin'), { scope: ADMIN });

    const del = await t.http().delete(`${JOBS}/${done}`).set(bearer(admin));
    expect(del.status).toBe(200);
    expect(del.body).toEqual({ job_id: done, status: 'completed', success: true });

    const restored = await t.http().post(`${JOBS}/${done}/restore`).set(bearer(admin));
    expect(restored.status).toBe(200);
    expect(jobOf(restored)).toMatchObject({ id: done, owner: alice, deleted_at: null });

    const cancelled = await t.http().post(`${JOBS}/${pending}/cancel`).set(bearer(admin));
    expect(cancelled.status).toBe(200);
    expect(jobOf(cancelled)).toMatchObject({ id: pending, owner: alice, status: 'cancelled' });

    // The owner keeps the job: the admin acted on it without taking it over.
    const own = await t
      .http()
      .get(`${JOBS}/${pending}`)
      .set(bearer(tokenFor(alice)));
    expect(jobOf(own)).toMatchObject({ owner: alice, status: 'cancelled' });
  });

  it('still answers 404 to an admin for a job that does not exist', async () => {
    const admin = tokenFor(newOwner('admin'), { scope: ADMIN });
    const res = await t.http().get(`${JOBS}/00000000-0000-4000-8000-000000000000`).set(bearer(admin));
    expectProblem(res, 404, { type: '/problems/job-not-found' });
  });

  it('creates jobs for the token sub; a body that names an owner is refused', async () => {
    const owner = newOwner();
    const mallory = newOwner('mallory');
    const claimed = await t
      .http()
      .post(JOBS)
      .set(bearer(tokenFor(owner)))
      .send({ ...NEW_JOB, owner: mallory });
    expectProblem(claimed, 400, {
      type: '/problems/validation-error',
      details: { owner: 'is not a known field' },
    });
    const res = await t
      .http()
      .post(JOBS)
      .set(bearer(tokenFor(owner)))
      .send(NEW_JOB);
    expect(res.status).toBe(202);
    expect(jobOf(res).owner).toBe(owner);
    const owners: { owner: string }[] = await t.db.query(
      'SELECT owner FROM bulk_jobs WHERE owner = ANY($1)',
      [[owner, mallory]],
    );
    expect(owners).toEqual([{ owner }]);
  });
});

describe('issuer and audience, when configured', () => {
  let t: TestApp;
  const ISS = 'https://issuer.test';
  const AUD = 'bulk-jobs';
  before(async () => {
    t = await createTestApp({ AUTH_JWT_ISSUER: ISS, AUTH_JWT_AUDIENCE: AUD });
  });
  after(() => t.close());

  const accepted: [string, Record<string, unknown>][] = [
    ['the right iss and aud', { iss: ISS, aud: AUD }],
    ['an aud list that includes ours', { iss: ISS, aud: ['other-api', AUD] }],
  ];
  for (const [name, extra] of accepted) {
    it(`accepts ${name}`, async () => {
      const owner = newOwner();
      const id = await insertJob(t.db, { owner, status: 'completed' });
      const res = await t
        .http()
        .get(JOBS)
        .set(bearer(hs256(claims(owner, extra))));
      expect(listedIds(res)).toEqual([id]);
    });
  }

  const refused: [string, Record<string, unknown>, RegExp][] = [
    ['a wrong iss', { iss: 'https://evil.test', aud: AUD }, /issuer/],
    ['no iss', { aud: AUD }, /issuer/],
    ['an iss that only starts like ours', { iss: `${ISS}.evil.test`, aud: AUD }, /issuer/],
    ['a wrong aud', { iss: ISS, aud: 'other-api' }, /audience/],
    ['no aud', { iss: ISS }, /audience/],
  ];
  for (const [name, extra, detail] of refused) {
    it(`refuses ${name} with 401`, async () => {
      const token = hs256(claims(newOwner(), extra));
      const res = await t.http().get(JOBS).set(bearer(token));
      expectUnauthenticated(res, token);
      expect((res.body as { detail: string }).detail).toMatch(detail);
    });
  }
});

function jobOf(res: Response): BulkJobResponseDto {
  expect(res.status).toBeLessThan(300);
  return res.body as BulkJobResponseDto;
}
