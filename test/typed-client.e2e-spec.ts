import { expect } from 'expect';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { bootTestApp, type TestApp } from './support/app';
import { responseValidatorFor, type ResponseValidator } from './support/openapi-validator';
import { newOwner, tokenFor } from './support/tokens';

const run = promisify(execFile);
const ROOT = process.cwd();
const CONSUMER = join(ROOT, 'test', 'consumer');

/** The entry point of an installed package's command, run with this Node. */
async function binOf(pkg: string, name: string): Promise<string> {
  const manifest = require.resolve(`${pkg}/package.json`, { paths: [ROOT] });
  const { bin } = JSON.parse(await readFile(manifest, 'utf8')) as { bin: Record<string, string> };
  return join(dirname(manifest), bin[name]);
}

/**
 * A loopback proxy in front of the API that checks every answer against the document, so that
 * the consumer's own requests, not only the suite's, must keep to what its types were made from.
 */
function checkingProxy(target: number, validator: ResponseValidator, faults: string[]): Promise<Server> {
  const server = createServer((req, res) => {
    const upstream = request(
      { host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          const body = Buffer.concat(chunks);
          const fault = validator.check({
            method: req.method ?? 'GET',
            path: req.url ?? '/',
            status: answer.statusCode ?? 0,
            headers: answer.headers,
            text: body.toString('utf8'),
          });
          if (fault) faults.push(fault);
          res.writeHead(answer.statusCode ?? 502, answer.headers).end(body);
        });
      },
    );
    upstream.on('error', (err) => res.writeHead(502).end(String(err)));
    req.pipe(upstream);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('a typed client generated from /docs-json (openapi-typescript + openapi-fetch)', () => {
  let t: TestApp;
  let proxy: Server;
  let work: string;
  const faults: string[] = [];

  before(async () => {
    t = await bootTestApp({ worker: true, env: { WORKER_POLL_INTERVAL_MS: '50' } });
    await t.app.listen(0, '127.0.0.1');
    const docs = await t.http().get('/docs-json');
    expect(docs.status).toBe(200);
    const apiPort = (t.app.getHttpServer().address() as AddressInfo).port;
    proxy = await checkingProxy(apiPort, responseValidatorFor(docs.text), faults);
    // Inside the repository, so that the consumer resolves openapi-fetch from its node_modules.
    work = join(ROOT, '.test-build', `consumer-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(work, { recursive: true });
    await writeFile(join(work, 'openapi.json'), docs.text);
  });
  after(async () => {
    await new Promise((resolve) => proxy?.close(resolve));
    await t?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('generates the types, compiles the consumer against them, and runs it against the service', async () => {
    // Generated as a consumer would: from the served document, with the generator's defaults.
    await run(
      process.execPath,
      [await binOf('openapi-typescript', 'openapi-typescript'), 'openapi.json', '-o', 'openapi.d.ts'],
      {
        cwd: work,
      },
    );
    const types = await readFile(join(work, 'openapi.d.ts'), 'utf8');
    expect(types).toContain('deleteBulkActionJob');

    for (const file of ['consumer.ts', 'tsconfig.json'])
      await copyFile(join(CONSUMER, file), join(work, file));
    const tsc = await binOf('typescript', 'tsc');
    const compiled = await run(process.execPath, [tsc, '-p', join(work, 'tsconfig.json')], {
      cwd: work,
    }).catch((err: { stdout?: string; stderr?: string }) => ({
      failed: `${err.stdout ?? ''}${err.stderr ?? ''}`,
    }));
    expect({ compiled: 'failed' in compiled ? compiled.failed : 'ok' }).toEqual({ compiled: 'ok' });

    const owner = newOwner();
    const { stdout } = await run(process.execPath, [join(work, 'out', 'consumer.js')], {
      cwd: work,
      timeout: 60_000,
      env: {
        ...process.env,
        API_URL: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
        API_TOKEN: tokenFor(owner),
      },
    });
    const seen = JSON.parse(stdout) as {
      created: { id: string; status: string; total_items: number };
      conflict: { status: number; type: string; title: string; job_status: string };
      finished: { status: string; progress: number; succeeded_items: number };
      deleted: { job_id: string; status: string; success: boolean };
      gone: { status: number; type: string } | null;
    };
    expect(seen.created).toMatchObject({ status: 'pending', total_items: 3 });
    expect(seen.conflict).toEqual({
      status: 409,
      type: '/problems/job-not-deletable',
      title: 'The job cannot be deleted in its current status.',
      job_status: expect.stringMatching(/^(pending|running)$/),
    });
    expect(seen.finished).toEqual({ status: 'completed', progress: 1, succeeded_items: 3 });
    expect(seen.deleted).toEqual({ job_id: seen.created.id, status: 'completed', success: true });
    expect(seen.gone).toEqual({ status: 404, type: '/problems/job-not-found' });
    const [row] = await t.db.query<{ deleted_at: Date | null }[]>(
      'SELECT deleted_at FROM bulk_jobs WHERE id = $1',
      [seen.created.id],
    );
    expect(row.deleted_at).toBeInstanceOf(Date);

    // Every answer the consumer got kept to the document its types came from.
    expect(faults).toEqual([]);
  });

  it('does not compile against a document that lost what the consumer reads', async () => {
    const doc = JSON.parse(await readFile(join(work, 'openapi.json'), 'utf8')) as {
      components: { schemas: Record<string, { properties: Record<string, unknown>; required?: string[] }> };
    };
    const job = doc.components.schemas.BulkJobResponseDto;
    delete job.properties.status;
    job.required = job.required?.filter((name) => name !== 'status');
    const drifted = join(work, 'drifted');
    await mkdir(drifted, { recursive: true });
    await writeFile(join(drifted, 'openapi.json'), JSON.stringify(doc));
    await run(
      process.execPath,
      [await binOf('openapi-typescript', 'openapi-typescript'), 'openapi.json', '-o', 'openapi.d.ts'],
      {
        cwd: drifted,
      },
    );
    for (const file of ['consumer.ts', 'tsconfig.json'])
      await copyFile(join(CONSUMER, file), join(drifted, file));
    const compiled = await run(
      process.execPath,
      [await binOf('typescript', 'tsc'), '-p', join(drifted, 'tsconfig.json')],
      {
        cwd: drifted,
      },
    ).catch((err: { stdout?: string }) => ({ failed: err.stdout ?? '' }));
    expect('failed' in compiled ? compiled.failed : 'compiled').toMatch(
      /consumer\.ts.*Property 'status' does not exist/,
    );
  });
});
