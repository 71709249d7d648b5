import { expect } from 'expect';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import type { BulkJobResponseDto } from '../../src/bulk-jobs/dto/bulk-job-response.dto';
import { createTestApp, type TestApp } from '../support/app';
import { createJob } from '../support/api';
import { parseCsv } from '../support/csv';
import { launchChromium, type TestBrowser } from '../support/browser';
import {
  createEngineDatabase,
  createEngineTestApp,
  waitForJob,
  type EngineDatabase,
} from '../support/engine';
import { tokenFor } from '../support/tokens';
import { waitFor } from '../support/wait';

const ARTIFACTS = resolve(process.cwd(), 'test-artifacts');
/** UPDATE_SCREENSHOTS=1 writes the README's screenshots into docs/ (else they go with the other artifacts). */
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? resolve(process.cwd(), 'docs') : ARTIFACTS;
const UI_TIMEOUT_MS = 20_000;
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** How Chromium logs a response it got as 401 or 409. */
const EXPECTED_REFUSAL = /^Failed to load resource: the server responded with a status of (401|409) /;

const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

/** axe-core's serious and critical findings on the page as it is now. */
async function accessibilityViolations(page: Page): Promise<string[]> {
  // Evaluated over the DevTools protocol, which the page's CSP (script-src 'self') does not govern.
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate<AxeViolation[]>('axe.run(document).then((r) => r.violations)');
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map(
      (v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => JSON.stringify(n.target)).join(', ')})`,
    );
}

/** The cumulative layout shift the page has had (shifts after user input do not count, as CLS has it). */
const layoutShift = (page: Page) => page.evaluate<number>('window.__cls');

/** Sums the layout-shift entries from the page's start (in the page; the tests' own code has no DOM types). */
const LAYOUT_SHIFT_OBSERVER = `
  window.__cls = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) if (!entry.hadRecentInput) window.__cls += entry.value;
  }).observe({ type: 'layout-shift', buffered: true });`;

/** The page's width in CSS pixels, scrolled content included. */
const pageWidth = (page: Page) => page.evaluate<number>('document.documentElement.scrollWidth');

describe('The dashboard in a real browser', () => {
  let db: EngineDatabase;
  let t: TestApp;
  let base: string;
  let launched: TestBrowser | undefined;
  let desktop: BrowserContext;
  let phone: BrowserContext;
  // The spec has a database of its own: a plain name reads better in the screenshots.
  const owner = 'alice';
  const token = tokenFor(owner);
  /** What the pages logged as errors (a CSP refusal is one): none is expected. */
  const pageErrors: string[] = [];
  let finished: BulkJobResponseDto;
  let slow: BulkJobResponseDto;

  before(async () => {
    db = await createEngineDatabase();
    t = await createEngineTestApp(db.url, { worker: true, env: { WORKER_POLL_INTERVAL_MS: '50' } });
    await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
    launched = await launchChromium();
    const contexts = [DESKTOP, PHONE].map((viewport) =>
      launched!.browser.newContext({ viewport, locale: 'en-US', timezoneId: 'UTC' }),
    );
    [desktop, phone] = await Promise.all(contexts);
    for (const context of [desktop, phone]) {
      await context.addInitScript({ content: LAYOUT_SHIFT_OBSERVER });
    }
    mkdirSync(ARTIFACTS, { recursive: true });
    mkdirSync(SCREENSHOTS, { recursive: true });
  });

  after(async () => {
    await desktop?.close();
    await phone?.close();
    await launched?.browser.close();
    await t?.close();
    await db?.drop();
  });

  /** A new tab at `path`, signed in (sessionStorage is per tab) unless told otherwise. */
  async function open(context: BrowserContext, path = '/ui', signedIn = true): Promise<Page> {
    const page = await context.newPage();
    page.setDefaultTimeout(UI_TIMEOUT_MS);
    page.on('console', (m) => {
      // The refusals the tests provoke on purpose (a bad token, a delete of a running job) are logged too.
      if (m.type() === 'error' && !EXPECTED_REFUSAL.test(m.text()))
        pageErrors.push(`${page.url()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
    await page.goto(`${base}${path}`);
    if (signedIn) await signIn(page);
    return page;
  }

  async function signIn(page: Page): Promise<void> {
    await page.locator('#token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('signed-in-as').filter({ hasText: owner }).waitFor();
  }

  const row = (page: Page, id: string) => page.locator(`tr[data-job-id="${id}"]`);

  it('signs in with a pasted token, refuses a bad one readably, and keeps the token for the tab only', async (tc) => {
    tc.diagnostic(`${launched!.source} Chromium ${launched!.browser.version()}`);
    const page = await open(desktop, '/ui', false);
    try {
      await page
        .locator('#token')
        .fill(tokenFor(owner, { secret: 'not-the-servers-secret-0123456789abcdef' }));
      await page.getByRole('button', { name: 'Sign in' }).click();
      const problem = page.getByTestId('problem');
      await problem.filter({ hasText: 'Unauthorized' }).waitFor();
      expect(await problem.innerText()).toMatch(/401/);

      await signIn(page);
      const stored = await page.evaluate<{ session: string | null; local: number }>(
        "({ session: sessionStorage.getItem('bulk-jobs.token'), local: localStorage.length })",
      );
      expect(stored).toEqual({ session: token, local: 0 });
    } finally {
      await page.close();
    }
  });

  it('shows the jobs newest first with counts, and a running job whose progress moves live to 100% without layout shift', async () => {
    finished = await createJob(t, owner, { action: 'noop', targets: ['a', 'b', 'c'] });
    await waitForJob(t.db, finished.id, ['completed']);
    // 40 items of 200 ms, two at a time: about 4 s of progress.
    const targets = Array.from({ length: 40 }, (_, i) => `t${i}`);
    const watched = await createJob(t, owner, {
      action: 'simulate',
      targets,
      params: { delay_ms: 200, fail_targets: ['t3', 't8'] },
      options: { concurrency: 2 },
    });
    const page = await open(desktop);
    try {
      await row(page, watched.id).waitFor();
      const order = await Promise.all(
        (await page.locator('tbody tr').all()).map((r) => r.getAttribute('data-job-id')),
      );
      expect(order).toEqual([watched.id, finished.id]);
      await page.getByTestId('count-all').filter({ hasText: '2' }).waitFor();
      expect(await page.getByTestId('count-completed').innerText()).toBe('1');

      const before = await layoutShift(page);
      const seen = new Set<string>();
      const progress = row(page, watched.id).getByTestId('progress-text');
      await waitFor(
        'the running job to reach 100% on the page',
        async () => {
          const text = await progress.innerText();
          seen.add(text);
          return text === '100%' ? text : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      // It moved through values between 0 and 100 as it ran, not in one jump at the end.
      const between = [...seen].filter((s) => s !== '0%' && s !== '100%');
      expect(between.length).toBeGreaterThanOrEqual(2);
      await row(page, watched.id).locator('.badge').filter({ hasText: 'failed' }).waitFor();
      expect(await row(page, watched.id).innerText()).toMatch(/2 failed/);
      const shift = (await layoutShift(page)) - before;
      expect(shift).toBeLessThan(0.01);
      await page.getByTestId('count-failed').filter({ hasText: '1' }).waitFor();
      expect(await accessibilityViolations(page)).toEqual([]);
    } finally {
      await page.close();
    }
    finished = watched;
  });

  it('opens the job by keyboard, shows its fields and tallies, and filters its failed items with their errors', async () => {
    const page = await open(desktop);
    try {
      await row(page, finished.id).waitFor();
      // Tab to the job's link and press Enter, as someone without a mouse would.
      let focused = '';
      for (let i = 0; i < 40 && !focused.includes(finished.id); i++) {
        await page.keyboard.press('Tab');
        focused = await page.evaluate<string>("document.activeElement?.getAttribute('href') ?? ''");
      }
      expect(focused).toBe(`/ui/jobs/${finished.id}`);
      await page.keyboard.press('Enter');
      await page.waitForURL(`**/ui/jobs/${finished.id}`);

      await page.getByRole('heading', { name: new RegExp(finished.id) }).waitFor();
      expect(await page.getByTestId('succeeded').innerText()).toBe('38');
      expect(await page.getByTestId('failed').innerText()).toBe('2');
      expect(await page.getByTestId('skipped').innerText()).toBe('0');
      expect(await page.locator('.fields').innerText()).toMatch(/simulate[\s\S]*fail_targets/);

      await page.locator('.items tbody tr').first().waitFor();
      // The filtered page answers late, as on a busy machine: until it is in,
      // no row of the unfiltered list may show under the new filter.
      await page.route(/\/items\?(.*&)?status=failed/, async (route) => {
        await new Promise((resolveLater) => setTimeout(resolveLater, 1000));
        await route.continue();
      });
      // Every change of the table is checked as it is made, so that not even one
      // frame shows a row that is not failed under the "failed" caption.
      await page.evaluate(`(() => {
        window.staleRows = 0;
        new MutationObserver(() => {
          if (!document.querySelector('.items caption')?.textContent?.includes('failed')) return;
          const rows = [...document.querySelectorAll('.items tbody tr')];
          if (rows.some((r) => !r.textContent.includes('failed'))) window.staleRows++;
        }).observe(document.body, { subtree: true, childList: true, characterData: true });
      })()`);
      await page.locator('.items select').selectOption('failed');
      await page.locator('.items caption').filter({ hasText: 'failed' }).waitFor({ state: 'attached' });
      expect(await page.locator('.items tbody tr').count()).toBe(0);
      expect(await page.locator('.items .list-end').innerText()).toBe('Loading…');
      // The end line shows the count once the filtered page is in (it reads "Loading…" before).
      await page
        .locator('.items .list-end')
        .filter({ hasText: /end of list/ })
        .waitFor();
      expect(await page.evaluate('window.staleRows')).toBe(0);
      const failed = await page.locator('.items tbody tr').allInnerTexts();
      expect(failed).toHaveLength(2);
      expect(failed[0]).toMatch(
        /t3[\s\S]*failed[\s\S]*SIMULATED_FAILURE[\s\S]*target t3 is listed in fail_targets/,
      );
      expect(failed[1]).toMatch(/t8[\s\S]*SIMULATED_FAILURE/);
      expect(await accessibilityViolations(page)).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('exports the results of a job as CSV and as NDJSON with the buttons, as files', async () => {
    const targets = Array.from({ length: 40 }, (_, i) => `t${i}`);
    const exported = await createJob(t, owner, {
      action: 'simulate',
      targets,
      params: { delay_ms: 0, fail_targets: ['t3', 't8'] },
    });
    await waitForJob(t.db, exported.id, ['failed']);
    const page = await open(desktop, `/ui/jobs/${exported.id}`);
    try {
      const saved = async (label: string) => {
        const [file] = await Promise.all([
          page.waitForEvent('download'),
          page.getByRole('button', { name: label }).click(),
        ]);
        const path = await file.path();
        return { name: file.suggestedFilename(), text: readFileSync(path, 'utf8') };
      };
      const csv = await saved('Export CSV');
      expect(csv.name).toBe(`bulk-job-${exported.id}-results.csv`);
      const records = parseCsv(csv.text);
      expect(records[0].map((f) => f.value)).toEqual([
        'target_id',
        'data',
        'status',
        'attempts',
        'result',
        'error_code',
        'error_message',
        'finished_at',
      ]);
      expect(records.slice(1).map((r) => r[0].value)).toEqual(targets);
      const failed = records.slice(1).filter((r) => r[2].value === 'failed');
      expect(failed.map((r) => [r[0].value, r[5].value])).toEqual([
        ['t3', 'SIMULATED_FAILURE'],
        ['t8', 'SIMULATED_FAILURE'],
      ]);
      await page.getByText('Export CSV: done.').waitFor();

      const ndjson = await saved('Export NDJSON');
      expect(ndjson.name).toBe(`bulk-job-${exported.id}-results.ndjson`);
      const lines = ndjson.text
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as { target_id: string; status: string });
      expect(lines).toHaveLength(40);
      expect(lines.filter((l) => l.status === 'failed').map((l) => l.target_id)).toEqual(['t3', 't8']);
      expect(pageErrors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('shows throughput and time left while a job runs, the 409 of deleting it, and cancels it', async () => {
    // 200 items of 200 ms, two at a time: about 20 s, cancelled long before.
    slow = await createJob(t, owner, {
      action: 'simulate',
      targets: Array.from({ length: 200 }, (_, i) => `s${i}`),
      params: { delay_ms: 200 },
      options: { concurrency: 2 },
    });
    await waitForJob(t.db, slow.id, ['running']);
    const page = await open(desktop, `/ui/jobs/${slow.id}`);
    try {
      await page.getByTestId('throughput').filter({ hasText: 'items/s' }).waitFor();
      await page
        .getByTestId('eta')
        .filter({ hasText: /\d+ (s|min)/ })
        .waitFor();
      const rate = Number((await page.getByTestId('throughput').innerText()).split(' ')[0]);
      // Two items at a time, 200 ms each: about 10 a second.
      expect(rate).toBeGreaterThan(2);
      expect(rate).toBeLessThan(40);

      await page.getByRole('button', { name: 'Delete' }).click();
      const problem = page.getByTestId('problem');
      await problem.waitFor();
      expect(await problem.innerText()).toMatch(/409[\s\S]*The job cannot be deleted in its current status/);
      expect(await page.getByTestId('problem-job-status').innerText()).toBe('running');

      await page.screenshot({ path: join(SCREENSHOTS, 'dashboard-job-1280.png') });

      page.once('dialog', (dialog) => void dialog.accept());
      await page.getByRole('button', { name: 'Cancel' }).click();
      await page
        .locator('.summary .badge')
        .filter({ hasText: /cancel(l)?ed|cancelling/ })
        .waitFor();
      const state = await waitForJob(t.db, slow.id, ['cancelled']);
      expect(state.skipped_items).toBeGreaterThan(0);
      await page.locator('.summary .badge').filter({ hasText: 'cancelled' }).waitFor();
      expect(Number(await page.getByTestId('skipped').innerText())).toBe(state.skipped_items);
    } finally {
      await page.close();
    }
  });

  it('deletes a finished job and restores it, and the list shows it only with show deleted meanwhile', async () => {
    const page = await open(desktop, `/ui/jobs/${finished.id}`);
    try {
      await page.getByRole('button', { name: 'Delete' }).click();
      await page.getByRole('button', { name: 'Restore' }).waitFor();
      await page.locator('.summary').filter({ hasText: 'deleted' }).waitFor();
      expect(await jobDeleted(finished.id)).toBe(true);

      await page.getByRole('link', { name: '← Jobs' }).click();
      await row(page, slow.id).waitFor();
      expect(await row(page, finished.id).count()).toBe(0);
      await page.getByLabel('show deleted').check();
      await row(page, finished.id).waitFor();
      expect(await row(page, finished.id).innerText()).toMatch(/deleted/);

      await row(page, finished.id).getByRole('link').click();
      await page.getByRole('button', { name: 'Restore' }).click();
      await page.getByRole('button', { name: 'Delete' }).waitFor();
      expect(await jobDeleted(finished.id)).toBe(false);
      expect(pageErrors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('pauses a running job and resumes it, the status changing on the page', async () => {
    // 200 items of 200 ms, two at a time: about 20 s, cancelled at the end.
    const job = await createJob(t, owner, {
      action: 'simulate',
      targets: Array.from({ length: 200 }, (_, i) => `p${i}`),
      params: { delay_ms: 200 },
      options: { concurrency: 2 },
    });
    await waitForJob(t.db, job.id, ['running']);
    const page = await open(desktop, `/ui/jobs/${job.id}`);
    try {
      const badge = page.locator('.summary .badge');
      await badge.filter({ hasText: 'running' }).waitFor();
      expect(await page.getByRole('button', { name: 'Resume' }).count()).toBe(0);
      await page.getByRole('button', { name: 'Pause' }).click();
      await badge.filter({ hasText: 'paused' }).waitFor();
      await page.getByRole('button', { name: 'Resume' }).waitFor();
      expect(await page.getByRole('button', { name: 'Pause' }).count()).toBe(0);
      expect((await waitForJob(t.db, job.id, ['paused'])).status).toBe('paused');
      // Paused, it stands still: nothing more is claimed once the items in flight are recorded.
      await page.waitForTimeout(600);
      const still = await page.getByTestId('succeeded').innerText();
      await page.waitForTimeout(800);
      expect(await page.getByTestId('succeeded').innerText()).toBe(still);

      await page.getByRole('button', { name: 'Resume' }).click();
      await badge.filter({ hasText: 'running' }).waitFor();
      await page.getByRole('button', { name: 'Pause' }).waitFor();
      // And it moves again.
      await waitFor(
        'the resumed job to make progress on the page',
        async () => ((await page.getByTestId('succeeded').innerText()) !== still ? true : undefined),
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      expect(await accessibilityViolations(page)).toEqual([]);
    } finally {
      await page.close();
      await t.http().post(`/api/actions/bulk/jobs/${job.id}/cancel`).set('authorization', `Bearer ${token}`);
    }
    await waitForJob(t.db, job.id, ['cancelled']);
  });

  it('retries the failures of a finished job and lands on the new job, which links back with retry_of', async () => {
    const original = await createJob(t, owner, {
      action: 'simulate',
      targets: Array.from({ length: 10 }, (_, i) => `f${i}`),
      params: { delay_ms: 0, fail_targets: ['f2', 'f7'] },
      labels: { team: 'ops' },
    });
    await waitForJob(t.db, original.id, ['failed']);
    const page = await open(desktop, `/ui/jobs/${original.id}`);
    try {
      await page.getByTestId('labels').filter({ hasText: 'team:ops' }).waitFor();
      expect(await page.getByRole('button', { name: 'Pause' }).count()).toBe(0);
      await page.getByRole('button', { name: 'Retry failures' }).click();
      await page.waitForURL(
        (url) => /^\/ui\/jobs\/[0-9a-f-]{36}$/.test(url.pathname) && !url.pathname.includes(original.id),
      );
      const retryId = new URL(page.url()).pathname.split('/').pop()!;
      await page.getByRole('heading', { name: new RegExp(retryId) }).waitFor();
      const link = page.locator('.fields a.retry-of');
      await link.filter({ hasText: original.id }).waitFor();
      expect(await link.getAttribute('href')).toBe(`/ui/jobs/${original.id}`);
      const retried = await waitForJob(t.db, retryId, ['failed']);
      expect(retried.total_items).toBe(2);
      await page.locator('.summary .badge').filter({ hasText: 'failed' }).waitFor();
      expect(await accessibilityViolations(page)).toEqual([]);

      // A job with nothing to retry offers no button; the link leads back to the original.
      await link.click();
      await page.waitForURL(`**/ui/jobs/${original.id}`);
      await page.getByTestId('labels').filter({ hasText: 'team:ops' }).waitFor();
      expect(pageErrors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('filters the list by labels, several at once, kept in the address', async () => {
    const prod = await createJob(t, owner, {
      action: 'noop',
      targets: ['x'],
      labels: { team: 'payments', env: 'prod' },
    });
    const dev = await createJob(t, owner, {
      action: 'noop',
      targets: ['y'],
      labels: { team: 'payments', env: 'dev' },
    });
    const page = await open(desktop);
    try {
      await row(page, dev.id).waitFor();
      expect(await row(page, finished.id).count()).toBe(1);
      const labelInput = page.getByLabel('Label', { exact: true });
      await labelInput.fill('team:payments');
      await page.getByRole('button', { name: 'Filter', exact: true }).click();
      await page.waitForURL('**/ui?label=team%3Apayments');
      await page.getByText('2 jobs, end of list.').waitFor();
      expect(await row(page, prod.id).count()).toBe(1);
      expect(await row(page, dev.id).count()).toBe(1);
      expect(await row(page, finished.id).count()).toBe(0);

      await labelInput.fill('env:prod');
      await labelInput.press('Enter');
      await page.waitForURL('**/ui?label=team%3Apayments&label=env%3Aprod');
      await page.getByText('1 job, end of list.').waitFor();
      expect(await row(page, prod.id).count()).toBe(1);
      expect(await accessibilityViolations(page)).toEqual([]);

      // The address alone restores the filter.
      // (sessionStorage outlives a reload of the tab: still signed in.)
      await page.reload();
      await page.getByText('1 job, end of list.').waitFor();
      expect(await page.getByRole('list', { name: 'Label filters' }).innerText()).toMatch(
        /team:payments[\s\S]*env:prod/,
      );
      await page.getByRole('button', { name: 'Remove label filter env:prod' }).click();
      await page.waitForURL('**/ui?label=team%3Apayments');
      await page.getByText('2 jobs, end of list.').waitFor();
      expect(pageErrors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('is readable at 1280 and at 390 px wide (screenshots), with no serious accessibility finding on a phone', async () => {
    // One job still running for the pictures: progress is what the page is for.
    const running = await createJob(t, owner, {
      action: 'simulate',
      targets: Array.from({ length: 300 }, (_, i) => `r${i}`),
      params: { delay_ms: 100, fail_targets: ['r5'] },
      options: { concurrency: 2 },
    });
    await waitForJob(t.db, running.id, ['running']);
    for (const [context, width] of [
      [desktop, DESKTOP.width],
      [phone, PHONE.width],
    ] as const) {
      const page = await open(context);
      try {
        await row(page, running.id).waitFor();
        await page.waitForTimeout(1500);
        await page.screenshot({ path: join(SCREENSHOTS, `dashboard-list-${width}.png`) });
        // Nothing wider than the screen: no sideways scrolling.
        expect(await pageWidth(page)).toBeLessThanOrEqual(width);
        if (width === PHONE.width) {
          expect(await accessibilityViolations(page)).toEqual([]);
          await row(page, finished.id).getByRole('link').click();
          await page.getByTestId('succeeded').waitFor();
          await page.locator('.items select').selectOption('failed');
          await page.locator('.items caption').filter({ hasText: 'failed' }).waitFor({ state: 'attached' });
          await page
            .locator('.items .list-end')
            .filter({ hasText: /end of list/ })
            .waitFor();
          await page.getByRole('heading', { name: 'Items' }).scrollIntoViewIfNeeded();
          await page.screenshot({ path: join(SCREENSHOTS, `dashboard-job-${width}.png`) });
          expect(await pageWidth(page)).toBeLessThanOrEqual(width);
          expect(await accessibilityViolations(page)).toEqual([]);
        }
      } finally {
        await page.close();
      }
    }
    await t
      .http()
      .post(`/api/actions/bulk/jobs/${running.id}/cancel`)
      .set('authorization', `Bearer ${token}`);
    expect(pageErrors).toEqual([]);
  });

  async function jobDeleted(id: string): Promise<boolean> {
    const rows: { deleted: boolean }[] = await t.db.query(
      'SELECT deleted_at IS NOT NULL AS deleted FROM bulk_jobs WHERE id = $1',
      [id],
    );
    return rows[0].deleted;
  }
});

describe('The dashboard in development, without AUTH_JWT_SECRET', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ui-dev-token-'));
  let t: TestApp;
  let launched: TestBrowser | undefined;

  before(async () => {
    t = await createTestApp({ NODE_ENV: 'development', AUTH_JWT_SECRET: '', DATA_DIR: dataDir });
    await t.app.listen(0, '127.0.0.1');
    launched = await launchChromium();
  });

  after(async () => {
    await launched?.browser.close();
    await t?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('signs in with a development token for a typed name, as an admin with the owner filter', async () => {
    const base = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
    const page = await launched!.browser.newPage({ viewport: DESKTOP });
    page.setDefaultTimeout(UI_TIMEOUT_MS);
    try {
      await page.goto(`${base}/ui`);
      await page.getByLabel('Name').fill('dev-ops');
      await page.getByLabel('admin').check();
      await page.getByRole('button', { name: 'Get a development token' }).click();
      await page.getByTestId('signed-in-as').filter({ hasText: 'dev-ops (admin)' }).waitFor();
      await page.getByLabel('Owner').fill('someone-else');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.waitForURL('**/ui?owner=someone-else');
      await page.getByText('No jobs.').waitFor();
      expect(await accessibilityViolations(page)).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
