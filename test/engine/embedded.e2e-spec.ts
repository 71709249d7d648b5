import { Injectable, Module } from '@nestjs/common';
import { expect } from 'expect';
import { after, before, describe, it } from 'node:test';
import {
  ActionFailure,
  BulkAction,
  type ActionContext,
  type BulkActionHandler,
} from '../../src/actions/bulk-action';
import type { ActionListResponseDto } from '../../src/actions/dto/action-list-response.dto';
import type { TestApp } from '../support/app';
import { expectProblem } from '../support/problem-matcher';
import { createJob, JOBS } from '../support/api';
import {
  createEngineDatabase,
  createEngineTestApp,
  itemStatusCounts,
  waitForJob,
  type EngineDatabase,
} from '../support/engine';
import { bearer, newOwner, tokenFor } from '../support/tokens';

interface GreetParams {
  greeting: string;
}

/** An embedding application's own action, registered as a plain Nest provider. */
@BulkAction()
@Injectable()
class GreetAction implements BulkActionHandler<GreetParams> {
  readonly name = 'greet';
  readonly description = 'Greets each target.';
  readonly paramsSchema = {
    type: 'object',
    additionalProperties: false,
    required: ['greeting'],
    properties: { greeting: { type: 'string', minLength: 1 } },
  };
  readonly calls: ActionContext<GreetParams>[] = [];

  execute(ctx: ActionContext<GreetParams>): Promise<unknown> {
    this.calls.push(ctx);
    if (ctx.targetId === 'nobody')
      return Promise.reject(new ActionFailure('NO_ONE', 'nobody to greet', false));
    // What PostgreSQL cannot store: a NUL in the result, half a surrogate pair in the error.
    if (ctx.targetId === 'nul') return Promise.resolve({ text: 'a\u0000b' });
    if (ctx.targetId === 'half')
      return Promise.reject(new ActionFailure('HALF\u0000', `half an emoji: \ud83d`, false));
    return Promise.resolve({ text: `${ctx.params.greeting}, ${ctx.targetId}` });
  }
}

@Module({ providers: [GreetAction] })
class EmbeddingModule {}

describe('the API and a worker in one process, with an action of the embedding application', () => {
  let db: EngineDatabase;
  let t: TestApp;
  const owner = newOwner();
  const auth = bearer(tokenFor(owner));

  before(async () => {
    db = await createEngineDatabase();
    t = await createEngineTestApp(db.url, {
      worker: true,
      imports: [EmbeddingModule],
      env: { WORKER_POLL_INTERVAL_MS: '50', WORKER_SHUTDOWN_GRACE_MS: '2000' },
    });
  });

  after(async () => {
    await t?.close();
    await db?.drop();
  });

  it('lists every action with its params schema', async () => {
    const res = await t.http().get('/api/actions/bulk/actions').set(auth);
    expect(res.status).toBe(200);
    const items = (res.body as ActionListResponseDto).items;
    expect(items.map((a) => a.name)).toEqual(['greet', 'http', 'noop', 'simulate']);
    expect(items.find((a) => a.name === 'simulate')?.params_schema).toMatchObject({
      type: 'object',
      properties: {
        delay_ms: { type: 'integer', minimum: 0, maximum: 60_000 },
        fail_targets: { type: 'array', items: { type: 'string' } },
      },
    });
    expect(items.find((a) => a.name === 'http')?.params_schema).toMatchObject({ required: ['url'] });
  });

  it('validates params against the schema at create', async () => {
    const bad = await t
      .http()
      .post(JOBS)
      .set(auth)
      .send({
        action: 'simulate',
        params: { delay_ms: 60_001, fail_targets: 'x', extra: 1 },
        targets: ['a'],
      });
    expectProblem(bad, 400, { type: '/problems/validation-error' });
    expect((bad.body as { details: Record<string, string> }).details).toMatchObject({
      'params.delay_ms': expect.any(String),
      'params.fail_targets': expect.any(String),
      'params.extra': 'is not a known parameter',
    });
    const missing = await t
      .http()
      .post(JOBS)
      .set(auth)
      .send({ action: 'greet', targets: ['a'] });
    expectProblem(missing, 400, { details: { 'params.greeting': 'is required' } });
  });

  it('runs the embedding application’s action in the same process', async () => {
    const job = await createJob(t, owner, {
      action: 'greet',
      params: { greeting: 'Hello' },
      targets: ['ann', 'nobody', 'bob'],
    });
    const done = await waitForJob(t.db, job.id, ['completed', 'failed'], 10_000);
    expect(done).toMatchObject({ status: 'failed', succeeded_items: 2, failed_items: 1, running_items: 0 });
    const items: {
      target_id: string;
      status: string;
      result: unknown;
      last_error: unknown;
      attempts: number;
    }[] = await t.db.query(
      'SELECT target_id, status, result, last_error, attempts FROM bulk_job_items WHERE job_id = $1 ORDER BY seq',
      [job.id],
    );
    expect(items).toEqual([
      {
        target_id: 'ann',
        status: 'succeeded',
        result: { text: 'Hello, ann' },
        last_error: null,
        attempts: 1,
      },
      {
        target_id: 'nobody',
        status: 'failed',
        result: null,
        last_error: { code: 'NO_ONE', message: 'nobody to greet' },
        attempts: 1,
      },
      {
        target_id: 'bob',
        status: 'succeeded',
        result: { text: 'Hello, bob' },
        last_error: null,
        attempts: 1,
      },
    ]);
    const calls = t.app.get(GreetAction).calls.filter((c) => c.jobId === job.id);
    expect(calls.map((c) => c.idempotencyKey).sort()).toEqual([0, 1, 2].map((seq) => `${job.id}:${seq}`));
    expect(calls[0].signal.aborted).toBe(false);
  });

  it('fails the items whose result or error PostgreSQL cannot store, and records the rest', async () => {
    const job = await createJob(t, owner, {
      action: 'greet',
      params: { greeting: 'Hi' },
      targets: ['ann', 'nul', 'half', 'bob'],
    });
    // Before, one unstorable value failed the write of the whole batch, again and again.
    const done = await waitForJob(t.db, job.id, ['completed', 'failed'], 10_000);
    expect(done).toMatchObject({ status: 'failed', succeeded_items: 2, failed_items: 2, running_items: 0 });
    const items: { target_id: string; status: string; last_error: unknown }[] = await t.db.query(
      'SELECT target_id, status, last_error FROM bulk_job_items WHERE job_id = $1 ORDER BY seq',
      [job.id],
    );
    expect(items).toEqual([
      { target_id: 'ann', status: 'succeeded', last_error: null },
      {
        target_id: 'nul',
        status: 'failed',
        last_error: {
          code: 'RESULT_NOT_STORABLE',
          message:
            'the action returned a result with NUL characters or unpaired surrogates, which cannot be stored',
        },
      },
      {
        target_id: 'half',
        status: 'failed',
        last_error: { code: 'HALF\ufffd', message: 'half an emoji: \ufffd' },
      },
      { target_id: 'bob', status: 'succeeded', last_error: null },
    ]);
  });

  it('runs simulate: waits, fails the listed targets permanently, succeeds the rest', async () => {
    const job = await createJob(t, owner, {
      action: 'simulate',
      params: { delay_ms: 20, fail_targets: ['b'] },
      targets: ['a', 'b', 'c'],
    });
    const done = await waitForJob(t.db, job.id, ['completed', 'failed'], 10_000);
    expect(done).toMatchObject({ status: 'failed', succeeded_items: 2, failed_items: 1 });
    expect(await itemStatusCounts(t.db, job.id)).toEqual({ succeeded: 2, failed: 1 });
    const [failed]: { attempts: number; last_error: { code: string } }[] = await t.db.query(
      `SELECT attempts, last_error FROM bulk_job_items WHERE job_id = $1 AND status = 'failed'`,
      [job.id],
    );
    expect(failed).toEqual({
      attempts: 1,
      last_error: { code: 'SIMULATED_FAILURE', message: 'target b is listed in fail_targets' },
    });
  });

  it('completes a job whose every item succeeds, with progress 1', async () => {
    const job = await createJob(t, owner, { action: 'noop', targets: ['x', 'y'] });
    await waitForJob(t.db, job.id, ['completed'], 10_000);
    const res = await t.http().get(`${JOBS}/${job.id}`).set(auth);
    expect(res.body).toMatchObject({ status: 'completed', progress: 1, succeeded_items: 2, total_items: 2 });
  });
});
