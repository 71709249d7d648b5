import type { BulkActionHandler } from '../actions/bulk-action';
import type { JobError } from '../jobs/job-types';

/** A job as a worker sees it while it runs items of it. */
export interface ClaimedJob {
  id: string;
  action: string;
  params: Record<string, unknown>;
  handler: BulkActionHandler;
  maxAttempts: number;
}

/**
 * How an item's attempt ended, as the recorder writes it:
 * - succeeded / failed: final;
 * - retry: back to pending after `delayMs`;
 * - release: back to pending at once, and the attempt does not count
 *   (the worker is shutting down and gives the item up unfinished).
 */
export type OutcomeKind = 'succeeded' | 'failed' | 'retry' | 'release';

/**
 * One claimed item from its claim until its result is recorded. A single
 * mutable object per item (rather than a new outcome object) keeps the noop
 * path light at tens of thousands of items per second.
 */
export interface RunningItem {
  job: ClaimedJob;
  seq: number;
  targetId: string;
  data: Record<string, unknown> | null;
  /** This attempt's number, from 1. */
  attempt: number;
  controller: AbortController | null;
  outcome: OutcomeKind | null;
  result: unknown;
  error: JobError | null;
  delayMs: number;
  /** Set on shutdown: whatever the action does now, the item is released. */
  releasing: boolean;
  /** Set when the lease was lost: the item is no longer ours to record. */
  lost: boolean;
  /** In the result write in flight (ResultRecorder). */
  recording: boolean;
}

export function newRunningItem(
  job: ClaimedJob,
  seq: number,
  targetId: string,
  data: Record<string, unknown> | null,
  attempt: number,
): RunningItem {
  return {
    job,
    seq,
    targetId,
    data,
    attempt,
    controller: null,
    outcome: null,
    result: null,
    error: null,
    delayMs: 0,
    releasing: false,
    lost: false,
    recording: false,
  };
}
