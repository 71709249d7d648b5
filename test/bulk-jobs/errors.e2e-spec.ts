import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import { createTestApp, type TestApp } from '../support/app';
import { ACTIONS, JOBS, UUID } from '../support/api';
import { insertJob } from '../support/factories';
import { expectProblem } from '../support/problem-matcher';
import { bearer, newOwner, tokenFor } from '../support/tokens';

interface ActionList {
  items: { name: string; description: string; params_schema: Record<string, unknown> }[];
}

describe('errors and cross-cutting behaviour', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  const auth = () => bearer(tokenFor(newOwner()));

  it('answers an unknown route with a 404 about:blank problem', async () => {
    for (const path of ['/nope', '/api/actions/bulk', `${JOBS}/6f1c1f0e-0000-4000-8000-000000000000/nope`]) {
      const res = await t.http().get(path).set(auth());
      expectProblem(res, 404, { type: 'about:blank', title: 'Not Found' });
    }
  });

  it('answers an unknown route with a problem even without a token', async () => {
    expectProblem(await t.http().get('/nope'), 404, { type: 'about:blank' });
  });

  // The contract names one framework answer for a request no route takes: the unknown route's 404
  // (a method/path pair is a route). It names no 405, and the document declares none.
  it('answers a method the resource does not have as an unknown route: a 404 about:blank problem', async () => {
    const id = '6f1c1f0e-0000-4000-8000-000000000000';
    const requests = [
      t.http().put(JOBS).set(auth()).send({}),
      t.http().put(`${JOBS}/${id}`).set(auth()).send({}),
      t.http().delete(JOBS).set(auth()),
      t.http().get(`${JOBS}/${id}/cancel`).set(auth()),
      t.http().put(`${JOBS}/${id}/restore`).set(auth()).send({}),
    ];
    for (const res of await Promise.all(requests)) {
      expectProblem(res, 404, { type: 'about:blank', title: 'Not Found' });
      expect(res.headers.allow).toBeUndefined();
    }
  });

  it('echoes a sane X-Request-Id, in the header and in problems', async () => {
    const ok = await t.http().get(JOBS).set(auth()).set('X-Request-Id', 'abc-123');
    expect(ok.status).toBe(200);
    expect(ok.headers['x-request-id']).toBe('abc-123');
    const problem = await t.http().get(`${JOBS}/nope`).set(auth()).set('X-Request-Id', 'trace:01HZ.42@edge');
    expectProblem(problem, 400, { requestId: 'trace:01HZ.42@edge' });
  });

  it('echoes an X-Request-Id of 128 characters and replaces one of 129', async () => {
    const longest = 'a'.repeat(128);
    expect((await t.http().get(JOBS).set(auth()).set('X-Request-Id', longest)).headers['x-request-id']).toBe(
      longest,
    );
    const tooLong = await t.http().get(JOBS).set(auth()).set('X-Request-Id', `${longest}b`);
    expect(tooLong.headers['x-request-id']).toMatch(UUID);
  });

  for (const [name, value] of [
    ['300 characters long', 'r'.repeat(300)],
    ['with spaces', 'abc 123'],
    ['with a quote', 'abc"123'],
    ['with a newline-like escape', 'abc\\n123'],
  ] as const) {
    it(`replaces an X-Request-Id ${name} with a UUID`, async () => {
      const res = await t.http().get(JOBS).set(auth()).set('X-Request-Id', value);
      expect(res.status).toBe(200);
      expect(res.headers['x-request-id']).toMatch(UUID);
      const problem = await t.http().get('/nope').set('X-Request-Id', value);
      expectProblem(problem, 404);
      expect((problem.body as { requestId: string }).requestId).toMatch(UUID);
    });
  }

  it('sends a fresh X-Request-Id on every response, successes included', async () => {
    const owner = newOwner();
    const id = await insertJob(t.db, { owner, status: 'completed' });
    const token = bearer(tokenFor(owner));
    const responses = [
      await t.http().get(JOBS).set(token),
      await t.http().get(`${JOBS}/${id}`).set(token),
      await t.http().get(`${JOBS}/${id}/items`).set(token),
      await t
        .http()
        .post(JOBS)
        .set(token)
        .send({ action: 'noop', targets: ['a'] }),
      await t.http().delete(`${JOBS}/${id}`).set(token),
      await t.http().get(ACTIONS).set(token),
      await t.http().get(JOBS),
      await t.http().get('/nope'),
    ];
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 202, 200, 200, 401, 404]);
    expectProblem(responses[6], 401);
    expectProblem(responses[7], 404);
    const ids = responses.map((r) => r.headers['x-request-id'] as string | undefined);
    for (const requestId of ids) expect(requestId).toMatch(UUID);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('answers application/json on success and problem+json on failure', async () => {
    const owner = newOwner();
    const ok = await t
      .http()
      .get(JOBS)
      .set(bearer(tokenFor(owner)));
    expect(ok.headers['content-type']).toMatch(/^application\/json/);
    const bad = await t
      .http()
      .get(JOBS)
      .query({ limit: '0' })
      .set(bearer(tokenFor(owner)));
    expectProblem(bad, 400, { type: '/problems/validation-error' });
  });

  it('lists the registered actions with the JSON schema of their params', async () => {
    const res = await t.http().get(ACTIONS).set(auth());
    expect(res.status).toBe(200);
    const { items } = res.body as ActionList;
    const noop = items.find((a) => a.name === 'noop');
    expect(noop).toEqual({
      name: 'noop',
      description: expect.any(String) as unknown,
      params_schema: { type: 'object', additionalProperties: false, properties: {} },
    });
    const names = items.map((a) => a.name);
    expect(names).toEqual([...names].sort());
  });
});
