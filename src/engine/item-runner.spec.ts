import { expect } from 'expect';
import { describe, it } from 'node:test';
import type { ActionContext, BulkActionHandler } from '../actions/bulk-action';
import { ItemRunner } from './item-runner';
import { newRunningItem, type ClaimedJob, type RunningItem } from './types';

const policy = { baseMs: 1000, maxMs: 60_000 };

/** An action whose calls stay open until the test settles them. */
function manualAction() {
  const open: { ctx: ActionContext; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  const handler: BulkActionHandler = {
    name: 'manual',
    description: '',
    paramsSchema: {},
    execute: (ctx) => new Promise((resolve, reject) => open.push({ ctx, resolve, reject })),
  };
  return { handler, open };
}

const jobOf = (id: string, handler: BulkActionHandler): ClaimedJob => ({
  id,
  action: 'manual',
  params: {},
  handler,
  maxAttempts: 3,
});
const itemsOf = (job: ClaimedJob, n: number) =>
  Array.from({ length: n }, (_, i) => newRunningItem(job, i, `t${i}`, null, 1));
const tick = () => new Promise((r) => setImmediate(r));

describe('ItemRunner', () => {
  it('runs at most `concurrency` items at a time and starts the next as one settles', async () => {
    const { handler, open } = manualAction();
    const settled: RunningItem[] = [];
    const runner = new ItemRunner(
      2,
      policy,
      (i) => settled.push(i),
      () => undefined,
    );
    runner.enqueue('a', itemsOf(jobOf('a', handler), 5));
    expect(open).toHaveLength(2);
    expect(runner.queued).toBe(3);
    open[0].resolve({ ok: true });
    await tick();
    expect(open).toHaveLength(3);
    expect(settled.map((i) => [i.seq, i.outcome, i.result])).toEqual([[0, 'succeeded', '{"ok":true}']]);
  });

  it('takes waiting items round robin across jobs, so a small job does not wait behind a large one', async () => {
    const { handler, open } = manualAction();
    const runner = new ItemRunner(
      1,
      policy,
      () => undefined,
      () => undefined,
    );
    runner.enqueue('large', itemsOf(jobOf('large', handler), 100));
    runner.enqueue('small', itemsOf(jobOf('small', handler), 2));
    for (let i = 0; i < 4; i++) {
      open[i].resolve(null);
      await tick();
    }
    expect(open.slice(0, 5).map((o) => `${o.ctx.jobId}:${o.ctx.seq}`)).toEqual([
      'large:0',
      'small:0',
      'large:1',
      'small:1',
      'large:2',
    ]);
  });

  it("gives every call its item's idempotency key, the same on every attempt and different for other items", () => {
    const { handler, open } = manualAction();
    const runner = new ItemRunner(
      5,
      policy,
      () => undefined,
      () => undefined,
    );
    const job = jobOf('j', handler);
    // Item 0 again, as a retry or a re-claim after a crash or a lost lease brings it back.
    const again = newRunningItem(job, 0, 't0', null, 3);
    runner.enqueue('j', [...itemsOf(job, 2), again]);
    runner.enqueue('k', itemsOf(jobOf('k', handler), 1));
    expect(open.map((o) => [o.ctx.idempotencyKey, o.ctx.attempt])).toEqual([
      ['j:0', 1],
      ['j:1', 1],
      ['j:0', 3],
      ['k:0', 1],
    ]);
  });

  it('gives every call an abort signal made on demand', async () => {
    const { handler, open } = manualAction();
    const runner = new ItemRunner(
      5,
      policy,
      () => undefined,
      () => undefined,
    );
    const [item] = itemsOf(jobOf('j', handler), 1);
    runner.enqueue('j', [item]);
    expect(item.controller).toBeNull();
    const signal = open[0].ctx.signal;
    expect(signal.aborted).toBe(false);
    runner.abortActive();
    expect(signal.aborted).toBe(true);
    open[0].reject(new Error('aborted'));
    await tick();
    expect(item.outcome).toBe('release');
  });

  it('hands waiting items back on shutdown and drops items whose lease was lost', async () => {
    const { handler, open } = manualAction();
    const dropped: RunningItem[] = [];
    const runner = new ItemRunner(
      1,
      policy,
      () => undefined,
      (i) => dropped.push(i),
    );
    const items = itemsOf(jobOf('j', handler), 3);
    runner.enqueue('j', items);
    runner.markLost(items[0]);
    open[0].resolve(null);
    await tick();
    expect(dropped).toEqual([items[0]]);
    expect(runner.takeQueued()).toEqual([items[2]]);
    expect(runner.queued).toBe(0);
  });

  it('lets go of the items it has taken from a lane that claims keep refilling', async () => {
    const { handler, open } = manualAction();
    const runner = new ItemRunner(
      50,
      policy,
      () => undefined,
      () => undefined,
    );
    const job = jobOf('big', handler);
    // As the worker does: a claim of 1,000 whenever 1,000 have been settled, so the lane never empties.
    let seq = 0;
    const claim = () =>
      runner.enqueue(
        'big',
        Array.from({ length: 1000 }, () => newRunningItem(job, seq++, 't', null, 1)),
      );
    claim();
    claim();
    for (let round = 0; round < 20; round++) {
      for (let done = 0; done < 1000;) {
        const running = open.splice(0);
        for (const call of running) call.resolve(null);
        done += running.length;
        await tick();
      }
      claim();
    }
    const lanes = (runner as unknown as { lanes: { items: unknown[]; head: number }[] }).lanes;
    expect(lanes).toHaveLength(1);
    expect(runner.queued).toBe(lanes[0].items.length - lanes[0].head);
    // 22,000 items went in; only the waiting ones and at most as many taken ones are kept.
    expect(lanes[0].items.length).toBeLessThanOrEqual(2 * runner.queued + 1024);
  });
});
