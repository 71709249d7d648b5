/**
 * One statement run for many callers at once: each call brings a key (a job
 * to read, a job to delete), and the calls that arrive while earlier ones are
 * still in flight go to the database together, as one run of the statement
 * over all their keys. While fewer than `maxInFlight` runs are out, a call is
 * sent at once, alone: coalescing never makes a call wait for others. Once
 * that many are out, calls queue, and each run that comes back sends the
 * queue (at most `maxBatch` keys) as the next one. Under load the database
 * then runs, and commits, one statement for many requests, and the process
 * makes one round trip for them instead of one each.
 *
 * `send` gets the keys of a run and answers with one result per key, in
 * their order (undefined for a key with none). A run that fails fails every
 * call in it, so a key must never be able to fail a run by itself (callers
 * pass only keys the statement accepts), and the statement must never wait
 * on one key (on a row lock, say) at the others' expense.
 */
export class CoalescedStatement<K, R> {
  private queue: Call<K, R>[] = [];
  private inFlight = 0;

  constructor(
    private readonly send: (keys: K[]) => Promise<(R | undefined)[]>,
    private readonly maxInFlight: number,
    private readonly maxBatch: number,
  ) {
    if (!(maxInFlight >= 1) || !(maxBatch >= 1))
      throw new Error('maxInFlight and maxBatch must be at least 1');
  }

  /** The result for `key`, from the next run of the statement that carries it. */
  run(key: K): Promise<R | undefined> {
    return new Promise<R | undefined>((resolve, reject) => {
      this.queue.push({ key, resolve, reject });
      if (this.inFlight < this.maxInFlight) this.sendQueued();
    });
  }

  private sendQueued(): void {
    const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
    this.queue = this.queue.length <= this.maxBatch ? [] : this.queue.slice(this.maxBatch);
    this.inFlight++;
    const settled = () => {
      this.inFlight--;
      if (this.queue.length > 0) this.sendQueued();
    };
    let sent: Promise<(R | undefined)[]>;
    try {
      sent = this.send(batch.map((call) => call.key));
    } catch (err) {
      sent = Promise.reject(asError(err));
    }
    sent.then(
      (results) => {
        settled();
        for (let i = 0; i < batch.length; i++) batch[i].resolve(results[i]);
      },
      (err: unknown) => {
        settled();
        const reason = asError(err);
        for (const call of batch) call.reject(reason);
      },
    );
  }
}

interface Call<K, R> {
  key: K;
  resolve: (result: R | undefined) => void;
  reject: (err: Error) => void;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));
