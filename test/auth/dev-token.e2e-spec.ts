import { expect } from 'expect';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestApp, type TestApp } from '../support/app';
import { JOBS } from '../support/api';
import { expectProblem } from '../support/problem-matcher';
import { bearer } from '../support/tokens';

const DEV_TOKEN = '/api/dev/token';

interface DevToken {
  access_token: string;
  token_type: string;
  expires_in: number;
  scope: string;
}

/** The token's claims, as the server signed them. */
function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}

describe('POST /api/dev/token', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'dev-token-'));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  describe('in development without AUTH_JWT_SECRET (the generated secret)', () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp({ NODE_ENV: 'development', AUTH_JWT_SECRET: '', DATA_DIR: dataDir });
    });
    after(() => t.close());

    it('signs a read and write token for a name, which the API then accepts', async () => {
      const res = await t.http().post(DEV_TOKEN).send({ sub: 'dev-alice' });
      expect(res.status).toBe(200);
      const body = res.body as DevToken;
      expect(body).toMatchObject({
        token_type: 'Bearer',
        expires_in: 3600,
        scope: 'bulk-jobs:read bulk-jobs:write',
      });
      const claims = claimsOf(body.access_token);
      expect(claims).toMatchObject({ sub: 'dev-alice', scope: 'bulk-jobs:read bulk-jobs:write' });
      expect((claims.exp as number) - (claims.iat as number)).toBe(3600);

      const created = await t
        .http()
        .post(JOBS)
        .set(bearer(body.access_token))
        .send({ action: 'noop', targets: ['a'] });
      expect(created.status).toBe(202);
      expect((created.body as { owner: string }).owner).toBe('dev-alice');
    });

    it('adds bulk-jobs:admin when asked', async () => {
      const res = await t.http().post(DEV_TOKEN).send({ sub: 'dev-ops', admin: true });
      expect(res.status).toBe(200);
      expect((res.body as DevToken).scope).toBe('bulk-jobs:read bulk-jobs:write bulk-jobs:admin');
      const list = await t
        .http()
        .get(JOBS)
        .query({ owner: 'dev-alice' })
        .set(bearer((res.body as DevToken).access_token));
      expect(list.status).toBe(200);
    });

    it('refuses a missing or blank name (400)', async () => {
      expectProblem(await t.http().post(DEV_TOKEN).send({}), 400, {
        type: '/problems/validation-error',
        details: { sub: expect.any(String) },
      });
      expectProblem(await t.http().post(DEV_TOKEN).send({ sub: ' alice' }), 400, {
        details: { sub: 'sub must not start or end with white space' },
      });
    });

    it('answers only clients on this machine (403 from another address)', async () => {
      const fastify = t.app.getHttpAdapter().getInstance();
      const res = await fastify.inject({
        method: 'POST',
        url: DEV_TOKEN,
        remoteAddress: '192.0.2.10',
        payload: { sub: 'mallory', admin: true },
      });
      expect(res.statusCode).toBe(403);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json()).toMatchObject({ status: 403, detail: expect.stringMatching(/loopback/) as unknown });
      expect(res.body).not.toMatch(/eyJ/);
    });

    it('is documented in the OpenAPI document, as a development-only operation without security', async () => {
      const doc = (await t.http().get('/docs-json')).body as {
        paths: Record<string, { post?: { operationId: string; security?: unknown[]; tags?: string[] } }>;
      };
      const op = doc.paths[DEV_TOKEN]?.post;
      expect(op).toMatchObject({ operationId: 'createDevelopmentToken', tags: ['development'] });
      expect(op?.security).toEqual([{}]);
    });
  });

  const absent: [string, Record<string, string>][] = [
    ['in development with AUTH_JWT_SECRET set', { NODE_ENV: 'development', DATA_DIR: dataDir }],
    ['in production with AUTH_JWT_SECRET set', { NODE_ENV: 'production', DATA_DIR: dataDir }],
    [
      'in production with only a JWKS URL',
      {
        NODE_ENV: 'production',
        AUTH_JWT_SECRET: '',
        AUTH_JWKS_URL: 'http://127.0.0.1:9/jwks.json',
        // Without AUTH_JWT_SECRET, production needs the cursors' own key.
        CURSOR_SECRET: 'a-cursor-secret-that-is-long-enough-0123',
        DATA_DIR: dataDir,
      },
    ],
  ];
  for (const [name, env] of absent) {
    describe(name, () => {
      let t: TestApp;
      before(async () => {
        t = await createTestApp(env);
      });
      after(() => t.close());

      it('does not exist: 404, and not in the OpenAPI document', async () => {
        expectProblem(await t.http().post(DEV_TOKEN).send({ sub: 'alice', admin: true }), 404, {
          type: 'about:blank',
        });
        const doc = (await t.http().get('/docs-json')).body as { paths: Record<string, unknown> };
        expect(Object.keys(doc.paths)).not.toContain(DEV_TOKEN);
      });
    });
  }
});
