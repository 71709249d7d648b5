import { expect } from 'expect';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createTestApp, type TestApp } from './support/app';

interface LintProblem {
  ruleId: string;
  severity: string;
  message: string;
  location: { pointer?: string }[];
}
interface LintReport {
  totals: { errors: number; warnings: number };
  problems: LintProblem[];
}

/** The repository's root: where package.json and redocly.yaml are. */
const ROOT = process.cwd();

/** Redocly's command line, as a consumer (or a CI job) runs it on the served document. */
async function redoclyLint(file: string): Promise<LintReport> {
  const cliPackage = require.resolve('@redocly/cli/package.json', { paths: [ROOT] });
  const { bin } = JSON.parse(await readFile(cliPackage, 'utf8')) as { bin: Record<string, string> };
  const cli = join(dirname(cliPackage), bin.redocly);
  const run = promisify(execFile);
  // lint exits 1 when it finds errors; the report on stdout says which, so read it either way.
  const { stdout } = await run(
    process.execPath,
    [cli, 'lint', '--format=json', `--config=${join(ROOT, 'redocly.yaml')}`, file],
    {
      cwd: ROOT,
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    },
  ).catch((err: { stdout?: string }) => {
    if (err.stdout) return { stdout: err.stdout };
    throw err;
  });
  return JSON.parse(stdout) as LintReport;
}

describe('OpenAPI document, linted by Redocly (recommended rules)', () => {
  let t: TestApp;
  let dir: string;

  before(async () => {
    t = await createTestApp();
    dir = await mkdtemp(join(tmpdir(), 'openapi-lint-'));
  });
  after(async () => {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('has no errors and no warnings', async () => {
    const res = await t.http().get('/docs-json');
    expect(res.status).toBe(200);
    const file = join(dir, 'openapi.json');
    await writeFile(file, res.text);

    const report = await redoclyLint(file);
    const found = report.problems.map(
      (p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? '?'}`,
    );
    expect(found).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  });

  it('still reports what the recommended rules refuse (the linter really runs)', async () => {
    const res = await t.http().get('/docs-json');
    const doc = JSON.parse(res.text) as {
      servers?: unknown[];
      components: { schemas: Record<string, object> };
    };
    doc.servers = [];
    doc.components.schemas.Broken = { nullable: true, description: 'nullable without a type' };
    const file = join(dir, 'broken.json');
    await writeFile(file, JSON.stringify(doc));

    const report = await redoclyLint(file);
    expect(report.problems.map((p) => p.ruleId)).toEqual(
      expect.arrayContaining(['no-empty-servers', 'nullable-type-sibling']),
    );
  });
});
