import { ActionFailure } from '../actions/bulk-action';
import type { JobError } from '../jobs/job-types';
import { isUnstorableJsonText, toStorableText } from '../common/storable-json';
import { retryDelayMs, type BackoffPolicy } from './backoff';
import type { RunningItem } from './types';

const MAX_MESSAGE_LENGTH = 2000;
/** Results are stored per item; a huge one would bloat the items table. */
export const MAX_RESULT_BYTES = 64 * 1024;

/** Sets the item's outcome from the action's result. */
export function settleSuccess(item: RunningItem, value: unknown): void {
  if (item.releasing) {
    item.outcome = 'release';
    return;
  }
  let json: string | undefined;
  if (value === undefined || value === null) {
    json = undefined;
  } else {
    try {
      json = JSON.stringify(value);
    } catch {
      failFinally(item, {
        code: 'RESULT_NOT_JSON',
        message: 'the action returned a result that is not JSON',
      });
      return;
    }
    if (json !== undefined && isUnstorableJsonText(json)) {
      // jsonb would refuse it, and with it the whole batch of results it is written in.
      failFinally(item, {
        code: 'RESULT_NOT_STORABLE',
        message:
          'the action returned a result with NUL characters or unpaired surrogates, which cannot be stored',
      });
      return;
    }
    if (json !== undefined && json.length > MAX_RESULT_BYTES) {
      json = JSON.stringify({ truncated: true, bytes: json.length });
    }
  }
  item.outcome = 'succeeded';
  item.result = json ?? null;
}

/**
 * Sets the item's outcome from what the action threw: an ActionFailure says
 * whether to retry; anything else is retried with code ACTION_ERROR. A
 * retryable failure on the last allowed attempt fails the item.
 */
export function settleFailure(
  item: RunningItem,
  err: unknown,
  policy: BackoffPolicy,
  random?: () => number,
): void {
  if (item.releasing) {
    item.outcome = 'release';
    return;
  }
  let code = 'ACTION_ERROR';
  let retryable = true;
  let retryAfterMs: number | undefined;
  let message: string;
  if (err instanceof ActionFailure) {
    code = err.code;
    retryable = err.retryable;
    retryAfterMs = err.retryAfterMs;
    message = err.message;
  } else if (err instanceof Error) {
    message = err.message || err.name;
  } else {
    message = String(err);
  }
  const error = { code: toStorableText(code), message: truncate(message) };
  if (!retryable || item.attempt >= item.job.maxAttempts) {
    failFinally(item, error);
    return;
  }
  item.outcome = 'retry';
  item.error = error;
  item.delayMs = retryDelayMs(item.attempt, policy, retryAfterMs, random);
}

function failFinally(item: RunningItem, error: JobError): void {
  item.outcome = 'failed';
  item.error = error;
}

/**
 * At most MAX_MESSAGE_LENGTH characters that PostgreSQL can store: a cut that
 * splits a surrogate pair, or a NUL the action put in its message, would
 * make the whole batch's write fail.
 */
function truncate(message: string): string {
  const cut = message.length > MAX_MESSAGE_LENGTH ? `${message.slice(0, MAX_MESSAGE_LENGTH - 1)}…` : message;
  return toStorableText(cut);
}
