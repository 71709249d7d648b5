import { ActionFailure } from '../actions/bulk-action';
import type { JobError } from '../jobs/job-types';
import { isUnstorableJsonText, toStorableText } from '../common/storable-json';
import { retryDelayMs, type BackoffPolicy } from './backoff';
import type { RunningItem } from './types';

const MAX_MESSAGE_LENGTH = 2000;
/**
 * The largest result stored per item, as the UTF-8 bytes of its JSON: every
 * page of items carries results, and a huge one would bloat the items table.
 */
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
    // A string of n UTF-16 units takes at most 3n bytes of UTF-8: most results skip the count.
    if (json !== undefined && json.length > MAX_RESULT_BYTES / 3) {
      const bytes = Buffer.byteLength(json);
      if (bytes > MAX_RESULT_BYTES) {
        // Failed rather than cut: a cut result would read as the whole one. Not retried, as
        // RESULT_NOT_STORABLE is not: the action would return the same again.
        failFinally(item, {
          code: 'RESULT_TOO_LARGE',
          message: `the action returned a result of ${bytes} bytes as JSON; at most ${MAX_RESULT_BYTES} are stored`,
        });
        return;
      }
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
