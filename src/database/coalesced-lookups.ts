/**
 * Lookups by key that arrive while earlier ones are still in flight, sent
 * together as one statement. While fewer than `maxInFlight` statements are
 * out, a lookup is sent at once, alone: coalescing adds no wait. Once that
 * many are out, lookups queue, and each statement that comes back sends the
 * queue (up to `maxBatch` keys) as the next one. Under load the database
 * then runs one statement, and the process makes one round trip, for many
 * requests instead of one each.
 *
 * `run` gets the keys of a batch and answers with one result per key, in
 * their order (undefined for a key with none). A statement that fails fails
 * every lookup of its batch, so a key must never be able to fail a
 * statement by itself: callers pass only well-formed keys.
 */
export class CoalescedLookups<K, R> {
  private queue: Lookup<K, R>[] = [];
  private inFlight = 0;

  constructor(
    private readonly run: (keys: K[]) => Promise<(R | undefined)[]>,
    private readonly maxInFlight: number,
    private readonly maxBatch: number,
  ) {
    if (!(maxInFlight >= 1) || !(maxBatch >= 1))
      throw new Error('maxInFlight and maxBatch must be at least 1');
  }

  load(key: K): Promise<R | undefined> {
    return new Promise<R | undefined>((resolve, reject) => {
      this.queue.push({ key, resolve, reject });
      if (this.inFlight < this.maxInFlight) this.send();
    });
  }

  private send(): void {
    const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
    this.queue = this.queue.length <= this.maxBatch ? [] : this.queue.slice(this.maxBatch);
    this.inFlight++;
    const settled = () => {
      this.inFlight--;
      if (this.queue.length > 0) this.send();
    };
    let sent: Promise<(R | undefined)[]>;
    try {
      sent = this.run(batch.map((lookup) => lookup.key));
    } catch (err) {
      sent = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    sent.then(
      (results) => {
        settled();
        for (let i = 0; i < batch.length; i++) batch[i].resolve(results[i]);
      },
      (err: unknown) => {
        settled();
        const reason = err instanceof Error ? err : new Error(String(err));
        for (const lookup of batch) lookup.reject(reason);
      },
    );
  }
}

interface Lookup<K, R> {
  key: K;
  resolve: (result: R | undefined) => void;
  reject: (err: Error) => void;
}
