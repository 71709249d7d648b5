import { expect } from 'expect';
import { describe, it } from 'node:test';
import { ActionFailure } from '../actions/bulk-action';
import { settleFailure, settleSuccess } from './outcome';
import { newRunningItem, type ClaimedJob } from './types';

const job = {
  id: 'j',
  action: 'test',
  params: {},
  handler: undefined,
  maxAttempts: 3,
} as unknown as ClaimedJob;
const policy = { baseMs: 1000, maxMs: 60_000 };
const item = (attempt = 1) => newRunningItem(job, 0, 't', null, attempt);

describe('settleSuccess', () => {
  it('stores the result as JSON, and nothing for undefined', () => {
    const a = item();
    settleSuccess(a, { ok: 1 });
    expect(a).toMatchObject({ outcome: 'succeeded', result: '{"ok":1}' });
    const b = item();
    settleSuccess(b, undefined);
    expect(b).toMatchObject({ outcome: 'succeeded', result: null });
  });

  it('fails an item whose result cannot be stored as JSON', () => {
    const a = item();
    settleSuccess(a, { big: BigInt(1) });
    expect(a).toMatchObject({ outcome: 'failed', error: { code: 'RESULT_NOT_JSON' } });
  });

  it('fails an item whose result jsonb would refuse (NUL, unpaired surrogate), and keeps paired ones', () => {
    for (const bad of ['a\u0000b', 'x\ud83d', '\ude00y']) {
      const a = item();
      settleSuccess(a, { text: bad });
      expect(a).toMatchObject({ outcome: 'failed', error: { code: 'RESULT_NOT_STORABLE' } });
    }
    const ok = item();
    settleSuccess(ok, { text: 'smile \ud83d\ude00', escaped: '\\u0000' });
    expect(ok.outcome).toBe('succeeded');
  });

  it('fails an item whose result is larger than 64 KiB as JSON (counted in UTF-8 bytes), and keeps one at the limit', () => {
    const fits = item();
    // {"s":"…"} is 8 bytes around the string.
    settleSuccess(fits, { s: 'x'.repeat(65536 - 8) });
    expect(fits.outcome).toBe('succeeded');
    expect(Buffer.byteLength(fits.result as string)).toBe(65536);
    const over = item();
    settleSuccess(over, { s: 'x'.repeat(65536 - 7) });
    expect(over).toMatchObject({
      outcome: 'failed',
      result: null,
      error: { code: 'RESULT_TOO_LARGE', message: expect.stringContaining('65537 bytes') },
    });
    // 30,000 characters of 3 bytes each: under 64 Ki characters, over 64 KiB.
    const wide = item();
    settleSuccess(wide, { s: '€'.repeat(30_000) });
    expect(wide).toMatchObject({ outcome: 'failed', error: { code: 'RESULT_TOO_LARGE' } });
  });

  it('releases an item of a worker that is shutting down', () => {
    const a = item();
    a.releasing = true;
    settleSuccess(a, 'x');
    expect(a.outcome).toBe('release');
  });
});

describe('settleFailure', () => {
  it('stores what PostgreSQL can: NUL and unpaired surrogates become U+FFFD, a cut never splits a pair', () => {
    const a = item(1);
    settleFailure(a, new ActionFailure('C\u0000', 'nul \u0000 and \ud800 here', false), policy);
    expect(a.error).toEqual({ code: 'C\ufffd', message: 'nul \ufffd and \ufffd here' });
    // 1,998 characters, then an emoji (a surrogate pair) across the 1,999-character cut.
    const b = item(1);
    settleFailure(b, new ActionFailure('LONG', `${'x'.repeat(1998)}\ud83d\ude00tail`, false), policy);
    expect(b.error?.message).toBe(`${'x'.repeat(1998)}\ufffd…`);
  });

  it('retries an unexpected error with backoff', () => {
    const a = item(1);
    settleFailure(a, new Error('boom'), policy, () => 0);
    expect(a).toMatchObject({
      outcome: 'retry',
      error: { code: 'ACTION_ERROR', message: 'boom' },
      delayMs: 500,
    });
  });

  it('fails at once on a permanent ActionFailure', () => {
    const a = item(1);
    settleFailure(a, new ActionFailure('HTTP_404', 'not found', false), policy);
    expect(a).toMatchObject({ outcome: 'failed', error: { code: 'HTTP_404', message: 'not found' } });
  });

  it('fails a retryable failure on the last attempt', () => {
    const a = item(3);
    settleFailure(a, new ActionFailure('HTTP_503', 'unavailable', true), policy);
    expect(a).toMatchObject({ outcome: 'failed', error: { code: 'HTTP_503' } });
  });

  it('waits at least the Retry-After of the failure', () => {
    const a = item(1);
    settleFailure(a, new ActionFailure('HTTP_429', 'slow down', true, 7000), policy, () => 0);
    expect(a).toMatchObject({ outcome: 'retry', delayMs: 7000 });
  });

  it('cuts very long messages', () => {
    const a = item(3);
    settleFailure(a, new Error('x'.repeat(10_000)), policy);
    expect(a.error!.message.length).toBe(2000);
  });
});
