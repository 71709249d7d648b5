/**
 * Items per second and time left, from the progress events a job page
 * receives: the rate over the last WINDOW_MS of samples, so that it follows
 * changes in speed without jumping at every event.
 */
const WINDOW_MS = 10_000;

interface Sample {
  at: number;
  done: number;
}

export class Throughput {
  private samples: Sample[] = [];

  /** Records how many items were finished at `at` (ms). */
  add(done: number, at: number): void {
    const last = this.samples[this.samples.length - 1];
    if (last && done < last.done) this.samples = [];
    this.samples.push({ at, done });
    while (this.samples.length > 2 && at - this.samples[0].at > WINDOW_MS) this.samples.shift();
  }

  /** Items per second, once two samples at least 500 ms apart are known. */
  rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.at - first.at < 500) return undefined;
    return ((last.done - first.done) * 1000) / (last.at - first.at);
  }

  /** Seconds until `remaining` items are done at the current rate. */
  eta(remaining: number): number | undefined {
    const rate = this.rate();
    if (rate === undefined || rate <= 0) return undefined;
    return remaining / rate;
  }

  reset(): void {
    this.samples = [];
  }
}
