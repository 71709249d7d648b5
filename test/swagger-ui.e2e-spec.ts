import { expect } from 'expect';
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { createTestApp, type TestApp } from './support/app';
import { launchChromium, type TestBrowser } from './support/browser';
import { insertJob } from './support/factories';
import { newOwner, tokenFor } from './support/tokens';

const ARTIFACTS = resolve(process.cwd(), 'test-artifacts');
const DELETE_OPERATION = '#operations-bulk-jobs-deleteBulkActionJob';
const UI_TIMEOUT_MS = 20_000;

interface ShownResponse {
  status: number;
  body: Record<string, unknown>;
}

/**
 * Runs the expanded operation with "Try it out" for one id and reads the
 * status and body that Swagger UI shows, as a person would.
 */
async function tryItOut(page: Page, operation: Locator, id: string): Promise<ShownResponse> {
  const clear = operation.locator('button.btn-clear');
  if (await clear.isVisible()) await clear.click();
  await operation.locator('tr[data-param-name="id"] input').fill(id);
  await operation.locator('button.execute').click();
  const row = operation.locator('.live-responses-table .response').first();
  await row.waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
  const status = Number((await row.locator('.response-col_status').innerText()).trim());
  const body = (await row.locator('.response-col_description pre').first().innerText()).trim();
  return { status, body: JSON.parse(body) as Record<string, unknown> };
}

describe('Swagger UI in a real browser', () => {
  let t: TestApp;
  let base: string;
  let launched: TestBrowser | undefined;
  let context: BrowserContext | undefined;

  before(async () => {
    t = await createTestApp();
    await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
    launched = await launchChromium();
    context = await launched.browser.newContext({ viewport: { width: 1280, height: 1400 } });
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await context?.close();
    await launched?.browser.close();
    await t?.close();
  });

  it('authorizes with a token, deletes a completed job (200) and shows the 409 problem for a running one', async (tc) => {
    tc.diagnostic(
      `${launched!.source} Chromium ${launched!.browser.version()} at ${launched!.executablePath}`,
    );
    const owner = newOwner('swagger');
    const completed = await insertJob(t.db, { owner, status: 'completed' });
    const running = await insertJob(t.db, { owner, status: 'running' });
    const page = await context!.newPage();
    page.setDefaultTimeout(UI_TIMEOUT_MS);
    try {
      await page.goto(`${base}/docs`);
      const operation = page.locator(DELETE_OPERATION);
      await operation.waitFor({ state: 'visible' });

      await page.locator('.auth-wrapper button.authorize').click();
      const dialog = page.locator('.dialog-ux .modal-ux');
      await dialog.locator('input').first().fill(tokenFor(owner));
      await dialog.locator('button.authorize').click();
      await dialog.locator('button.btn-done').click();
      await dialog.waitFor({ state: 'detached' });

      await operation.locator('.opblock-summary').first().click();

      // Each documented response shows an example of itself, not one shared problem.
      for (const [code, type] of [
        ['401', 'about:blank'],
        ['404', '/problems/job-not-found'],
        ['409', '/problems/job-not-deletable'],
        ['500', 'about:blank'],
      ] as const) {
        const shown = operation.locator(`.responses-wrapper tr.response[data-code="${code}"] pre`).first();
        const example = JSON.parse(await shown.innerText()) as Record<string, unknown>;
        expect({ code, status: example.status, type: example.type }).toEqual({
          code,
          status: Number(code),
          type,
        });
        expect(example.instance).toMatch(/^\/api\/actions\/bulk\/jobs\//);
      }

      await operation.locator('button.try-out__btn').click();

      const deleted = await tryItOut(page, operation, completed);
      await operation.screenshot({ path: join(ARTIFACTS, 'swagger-ui-delete-200.png') });
      expect(deleted).toEqual({
        status: 200,
        body: { job_id: completed, status: 'completed', success: true },
      });

      const refused = await tryItOut(page, operation, running);
      await operation.screenshot({ path: join(ARTIFACTS, 'swagger-ui-delete-409.png') });
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({
        type: '/problems/job-not-deletable',
        status: 409,
        job_status: 'running',
        instance: `/api/actions/bulk/jobs/${running}`,
      });

      // What the UI showed is what happened.
      const rows: { id: string; deleted: boolean }[] = await t.db.query(
        `SELECT id, deleted_at IS NOT NULL AS deleted FROM bulk_jobs WHERE id = ANY($1::uuid[]) ORDER BY id`,
        [[completed, running]],
      );
      expect(Object.fromEntries(rows.map((r) => [r.id, r.deleted]))).toEqual({
        [completed]: true,
        [running]: false,
      });
    } catch (err) {
      await page
        .screenshot({ path: join(ARTIFACTS, 'swagger-ui-failure.png'), fullPage: true })
        .catch(() => undefined);
      throw err;
    } finally {
      await page.close();
    }
  });
});
