import { Logger } from '@nestjs/common';
import { FailureLog } from './engine-events';
import type { RunningItem } from './types';

/** After a failed write, the next try waits this long. */
const RETRY_WRITE_MS = 1000;

export interface ResultRecorderOptions {
  /** Writes a batch of outcomes; a rejection keeps them for the next try. */
  write: (items: RunningItem[]) => Promise<void>;
  /** Outcomes per write, and how many waiting start one at once. */
  flushSize: number;
  /** The longest an outcome waits for its write otherwise. */
  intervalMs: number;
  /** True when no more outcomes are about to arrive (nothing is running). */
  quiet: () => boolean;
  /** A batch is written. */
  onRecorded: (items: RunningItem[]) => void;
}

/**
 * Collects item outcomes and writes them in batches: at once when `flushSize`
 * are waiting or when nothing else is running (the end of a batch), else
 * after at most `intervalMs`. One write is in flight at a time; outcomes that
 * arrive meanwhile go into the next one. A write that fails is retried; the
 * items stay leased to this worker meanwhile.
 */
export class ResultRecorder {
  private readonly logger = new Logger(ResultRecorder.name);
  private buffer: RunningItem[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private lastWriteFailed = false;
  private readonly failures = new FailureLog(this.logger, 'recording results');
  /** How many items the write in flight carries (each marked `recording`: their rows are locked by it). */
  private inFlight = 0;

  private readonly write: ResultRecorderOptions['write'];
  private readonly flushSize: number;
  private readonly intervalMs: number;
  private readonly quiet: ResultRecorderOptions['quiet'];
  private readonly onRecorded: ResultRecorderOptions['onRecorded'];

  constructor(options: ResultRecorderOptions) {
    this.write = options.write;
    this.flushSize = options.flushSize;
    this.intervalMs = options.intervalMs;
    this.quiet = options.quiet;
    this.onRecorded = options.onRecorded;
  }

  /** Outcomes not yet written. */
  get pending(): number {
    return this.buffer.length + this.inFlight;
  }

  /** The item is in the write in flight. */
  isInFlight(item: RunningItem): boolean {
    return item.recording;
  }

  add(item: RunningItem): void {
    this.buffer.push(item);
    if (this.writing) return;
    if (this.buffer.length >= this.flushSize || this.quiet()) this.flushNow();
    else this.timer ??= setTimeout(() => this.flushNow(), this.intervalMs);
  }

  addAll(items: RunningItem[]): void {
    for (const item of items) this.add(item);
  }

  /** Starts a write now unless one is in flight (which then takes the rest). */
  flushNow(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.writing || this.buffer.length === 0) return;
    this.writing = this.writeLoop().finally(() => {
      this.writing = undefined;
      if (this.buffer.length > 0) {
        this.timer ??= setTimeout(
          () => this.flushNow(),
          this.lastWriteFailed ? RETRY_WRITE_MS : this.intervalMs,
        );
      }
    });
  }

  /** Writes everything buffered; gives up at the deadline (the leases then expire and the items return). */
  async drain(deadline: number): Promise<void> {
    while (this.pending > 0 && Date.now() < deadline) {
      this.flushNow();
      await this.writing;
      if (this.lastWriteFailed && this.buffer.length > 0) {
        await sleep(Math.min(RETRY_WRITE_MS, Math.max(0, deadline - Date.now())));
      }
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async writeLoop(): Promise<void> {
    do {
      const batch = this.buffer.length <= this.flushSize ? this.buffer : this.buffer.slice(0, this.flushSize);
      this.buffer = batch === this.buffer ? [] : this.buffer.slice(this.flushSize);
      for (const item of batch) item.recording = true;
      this.inFlight = batch.length;
      try {
        await this.write(batch);
        this.lastWriteFailed = false;
        this.failures.succeeded();
      } catch (err) {
        // Kept, in order, and written again later; the items stay leased to this worker meanwhile.
        this.lastWriteFailed = true;
        this.buffer = batch.concat(this.buffer);
        this.failures.failed(err, RETRY_WRITE_MS);
        return;
      } finally {
        for (const item of batch) item.recording = false;
        this.inFlight = 0;
      }
      this.onRecorded(batch);
    } while (this.buffer.length >= this.flushSize || (this.buffer.length > 0 && this.quiet()));
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
