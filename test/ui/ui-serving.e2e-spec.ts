import { expect } from 'expect';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { createTestApp, type TestApp } from '../support/app';
import { expectProblem } from '../support/problem-matcher';

const CSP =
  "default-src 'none';script-src 'self';style-src 'self';img-src 'self' data:;connect-src 'self';" +
  "base-uri 'none';form-action 'none';frame-ancestors 'none'";

/** The hashed files index.html names. */
function assetsOf(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="(\/ui\/assets\/[^"]+)"/g)].map((m) => m[1]);
}

describe('The dashboard at /ui', () => {
  describe('served (UI_ENABLED, the default)', () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp();
    });
    after(() => t.close());

    it('answers index.html with its own strict policy, never cached, with no inline script', async () => {
      const res = await t.http().get('/ui');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(res.headers['content-security-policy']).toBe(CSP);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      // Every script is a file of this origin: no inline script for the policy to allow.
      expect(res.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(res.text).not.toMatch(/\bstyle="/);
      expect(assetsOf(res.text)).toHaveLength(2);
      const head = await t.http().head('/ui');
      expect(head.status).toBe(200);
      expect(head.headers['content-security-policy']).toBe(CSP);
      // Tokens come from elsewhere here: AUTH_JWT_SECRET is set.
      expect(res.text).toContain('<meta name="bulk-jobs-dev-tokens" content="off" />');
    });

    it('answers the same page on the routes of the page itself, and sends /ui/ to /ui', async () => {
      const index = (await t.http().get('/ui')).text;
      const jobPage = await t.http().get('/ui/jobs/8d7c6f9e-1a2b-4c3d-9e8f-0a1b2c3d4e5f');
      expect({ status: jobPage.status, text: jobPage.text }).toEqual({ status: 200, text: index });
      const slash = await t.http().get('/ui/').query({ status: 'running' });
      expect(slash.status).toBe(308);
      expect(slash.headers.location).toBe('/ui?status=running');
    });

    it('serves the hashed assets for a year, gzipped for clients that take it, and revalidates by ETag', async () => {
      const index = (await t.http().get('/ui')).text;
      for (const asset of assetsOf(index)) {
        const plain = await t.http().get(asset).set('accept-encoding', 'identity');
        expect(plain.status).toBe(200);
        expect(plain.headers['cache-control']).toBe('public, max-age=31536000, immutable');
        expect(plain.headers['content-type']).toMatch(
          asset.endsWith('.js') ? /^text\/javascript/ : /^text\/css/,
        );
        expect(plain.headers['content-security-policy']).toBe(CSP);
        expect(plain.headers['content-encoding']).toBeUndefined();

        // Raw bytes: supertest would decompress them.
        const gz = await t.app
          .getHttpAdapter()
          .getInstance()
          .inject({ method: 'GET', url: asset, headers: { 'accept-encoding': 'gzip, br' } });
        expect(gz.headers['content-encoding']).toBe('gzip');
        expect(gz.headers.vary).toMatch(/accept-encoding/i);
        expect(gz.rawPayload.length).toBeLessThan(Buffer.byteLength(plain.text));
        expect(gunzipSync(gz.rawPayload).toString('utf8')).toBe(plain.text);

        const again = await t.http().get(asset).set('if-none-match', String(plain.headers.etag));
        expect(again.status).toBe(304);
        expect(again.text).toBe('');
      }
    });

    it('answers unknown files and paths under /ui with a 404 problem', async () => {
      for (const path of ['/ui/assets/nothing-here.js', '/ui/elsewhere', '/ui/jobs/x/y']) {
        expectProblem(await t.http().get(path), 404, { type: 'about:blank' });
      }
    });
  });

  describe('in development without AUTH_JWT_SECRET', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ui-dev-'));
    let t: TestApp;
    before(async () => {
      t = await createTestApp({ NODE_ENV: 'development', AUTH_JWT_SECRET: '', DATA_DIR: dataDir });
    });
    after(async () => {
      await t.close();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('tells the page that development tokens are on offer', async () => {
      const res = await t.http().get('/ui');
      expect(res.text).toContain('<meta name="bulk-jobs-dev-tokens" content="on" />');
    });
  });

  describe('with UI_ENABLED=false', () => {
    let t: TestApp;
    before(async () => {
      t = await createTestApp({ UI_ENABLED: 'false' });
    });
    after(() => t.close());

    it('serves nothing at /ui, and the API as before', async () => {
      expectProblem(await t.http().get('/ui'), 404, { type: 'about:blank' });
      expect((await t.http().get('/health/live')).status).toBe(200);
    });
  });
});
