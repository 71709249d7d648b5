import { expect } from 'expect';
import { describe, it } from 'node:test';
import { CoalescedStatement } from './coalesced-statement';

/** A `run` whose statements the test answers by hand, in any order. */
function manualRun() {
  const sent: {
    keys: number[];
    answer: (results: (string | undefined)[]) => void;
    fail: (err: Error) => void;
  }[] = [];
  const run = (keys: number[]) =>
    new Promise<(string | undefined)[]>((resolve, reject) => {
      sent.push({ keys, answer: resolve, fail: reject });
    });
  return { sent, run };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('CoalescedStatement', () => {
  it('sends a call at once, alone, while fewer runs than the cap are out', () => {
    const { sent, run } = manualRun();
    const statement = new CoalescedStatement(run, 2, 10);
    void statement.run(1);
    void statement.run(2);
    expect(sent.map((s) => s.keys)).toEqual([[1], [2]]);
  });

  it('queues calls while the cap is out and sends them as one run when one comes back', async () => {
    const { sent, run } = manualRun();
    const statement = new CoalescedStatement(run, 1, 10);
    const first = statement.run(1);
    const queued = [2, 3, 4].map((k) => statement.run(k));
    expect(sent.map((s) => s.keys)).toEqual([[1]]);
    sent[0].answer(['one']);
    expect(await first).toBe('one');
    expect(sent.map((s) => s.keys)).toEqual([[1], [2, 3, 4]]);
    // Each call gets the result at its own position; undefined where none was found.
    sent[1].answer(['two', undefined, 'four']);
    expect(await Promise.all(queued)).toEqual(['two', undefined, 'four']);
  });

  it('sends at most maxBatch keys in one run, the oldest first', async () => {
    const { sent, run } = manualRun();
    const statement = new CoalescedStatement(run, 1, 2);
    const all = [1, 2, 3, 4, 5].map((k) => statement.run(k));
    sent[0].answer(['1']);
    await settle();
    sent[1].answer(['2', '3']);
    await settle();
    sent[2].answer(['4', '5']);
    expect(await Promise.all(all)).toEqual(['1', '2', '3', '4', '5']);
    expect(sent.map((s) => s.keys)).toEqual([[1], [2, 3], [4, 5]]);
  });

  it('fails every call of a run that fails, and only those, and goes on with the next', async () => {
    const { sent, run } = manualRun();
    const statement = new CoalescedStatement(run, 2, 10);
    const a = statement.run(1);
    const b = statement.run(2);
    const queued = [statement.run(3), statement.run(4)];
    sent[0].fail(new Error('connection lost'));
    await expect(a).rejects.toThrow('connection lost');
    expect(sent.map((s) => s.keys)).toEqual([[1], [2], [3, 4]]);
    sent[1].answer(['b']);
    sent[2].fail(new Error('statement timeout'));
    expect(await b).toBe('b');
    for (const q of queued) await expect(q).rejects.toThrow('statement timeout');
    // Nothing is left counted as out: a new call is sent at once.
    void statement.run(5);
    expect(sent.at(-1)?.keys).toEqual([5]);
  });

  it('fails the calls of a send that throws instead of answering', async () => {
    const statement = new CoalescedStatement<number, string>(
      () => {
        throw new Error('cannot send');
      },
      1,
      10,
    );
    await expect(statement.run(1)).rejects.toThrow('cannot send');
    await expect(statement.run(2)).rejects.toThrow('cannot send');
  });

  it('refuses a cap or a batch below one', () => {
    const { run } = manualRun();
    expect(() => new CoalescedStatement(run, 0, 10)).toThrow();
    expect(() => new CoalescedStatement(run, 1, 0)).toThrow();
  });
});
