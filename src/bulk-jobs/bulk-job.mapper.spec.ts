import { expect } from 'expect';
import { describe, it } from 'node:test';
import { progressOf, toItemResponse, toJobResponse, type JobView } from './bulk-job.mapper';

const counts = (totalItems: number, succeededItems: number, failedItems = 0, skippedItems = 0) => ({
  totalItems,
  succeededItems,
  failedItems,
  skippedItems,
});

function jobRow(overrides: Partial<JobView> = {}): JobView {
  return {
    id: '8d7c6f9e-1a2b-4c3d-9e8f-0a1b2c3d4e5f',
    owner: 'alice',
    action: 'noop',
    params: {},
    options: { max_attempts: 3 },
    status: 'running',
    ...counts(1000, 420, 3, 0),
    error: null,
    createdAt: new Date('2025-01-02T03:04:05.678Z'),
    startedAt: new Date('2025-01-02T03:04:06.000Z'),
    finishedAt: null,
    updatedAt: new Date('2025-01-02T03:05:00.001Z'),
    deletedAt: null,
    purgeAt: null,
    retryOf: null,
    labels: {},
    ...overrides,
  };
}

describe('progressOf', () => {
  it('is 0 for a job without items (never NaN)', () => {
    expect(progressOf(counts(0, 0))).toBe(0);
  });

  it('counts succeeded, failed and skipped items as done', () => {
    expect(progressOf(counts(10, 0))).toBe(0);
    expect(progressOf(counts(10, 5))).toBe(0.5);
    expect(progressOf(counts(10, 2, 3, 5))).toBe(1);
    expect(progressOf(counts(1000, 420, 3))).toBe(0.423);
  });

  it('is rounded down to four decimals, so that it reads 1 only when every item is done', () => {
    expect(progressOf(counts(1_000_000, 999_999))).toBe(0.9999);
    expect(progressOf(counts(3, 1))).toBe(0.3333);
    expect(progressOf(counts(3, 2))).toBe(0.6666);
    expect(progressOf(counts(7, 1, 1, 1))).toBe(0.4285);
  });
});

describe('toJobResponse', () => {
  it('writes snake_case members, RFC 3339 UTC timestamps and nulls', () => {
    expect(toJobResponse(jobRow())).toEqual({
      id: '8d7c6f9e-1a2b-4c3d-9e8f-0a1b2c3d4e5f',
      action: 'noop',
      params: {},
      options: { max_attempts: 3 },
      status: 'running',
      labels: {},
      total_items: 1000,
      succeeded_items: 420,
      failed_items: 3,
      skipped_items: 0,
      progress: 0.423,
      owner: 'alice',
      error: null,
      deleted_at: null,
      purge_at: null,
      retry_of: null,
      created_at: '2025-01-02T03:04:05.678Z',
      started_at: '2025-01-02T03:04:06.000Z',
      finished_at: null,
      updated_at: '2025-01-02T03:05:00.001Z',
      notification: null,
    });
  });

  it('shows deleted_at and purge_at of a deleted job', () => {
    const res = toJobResponse(
      jobRow({
        status: 'completed',
        deletedAt: new Date('2025-02-01T00:00:00.000Z'),
        purgeAt: new Date('2025-03-03T00:00:00.000Z'),
      }),
    );
    expect(res.deleted_at).toBe('2025-02-01T00:00:00.000Z');
    expect(res.purge_at).toBe('2025-03-03T00:00:00.000Z');
  });
});

describe('toJobResponse: credentials in params.headers', () => {
  const headers = {
    Authorization: 'Bearer s1',
    'proxy-authorization': 'Basic s2',
    Cookie: 'sid=s3',
    'X-Api-Key': 's4',
    'X-AUTH-TOKEN': 's5',
    'X-Client-Secret': 's6',
    'X-Password': 's7',
    'X-Session-Id': 's8',
    apikey: 's9',
    'X-Trace': 'kept',
    Accept: 'application/json',
    'X-Ref': { $secret: 'crm-token' },
  };

  it('shows literal credential headers as [REDACTED], references and other headers as they are', () => {
    const params = { url: 'https://api.example/{id}', headers };
    const res = toJobResponse(jobRow({ action: 'http', params }));
    expect(res.params).toEqual({
      url: 'https://api.example/{id}',
      headers: {
        Authorization: '[REDACTED]',
        'proxy-authorization': '[REDACTED]',
        Cookie: '[REDACTED]',
        'X-Api-Key': '[REDACTED]',
        'X-AUTH-TOKEN': '[REDACTED]',
        'X-Client-Secret': '[REDACTED]',
        'X-Password': '[REDACTED]',
        'X-Session-Id': '[REDACTED]',
        apikey: '[REDACTED]',
        'X-Trace': 'kept',
        Accept: 'application/json',
        'X-Ref': { $secret: 'crm-token' },
      },
    });
    expect(JSON.stringify(res)).not.toMatch(/"s[1-9]"|Bearer|Basic|sid=/);
    // The stored params are not touched.
    expect(params.headers.Authorization).toBe('Bearer s1');
  });

  it('redacts a credential header whatever its value (a reference-like object with more members too)', () => {
    const res = toJobResponse(
      jobRow({ action: 'custom', params: { headers: { Authorization: { $secret: 'a', x: 1 }, Token: 7 } } }),
    );
    expect(res.params).toEqual({ headers: { Authorization: '[REDACTED]', Token: '[REDACTED]' } });
  });

  it('leaves params without headers, or with headers that are not an object, alone', () => {
    for (const params of [{}, { headers: 'Authorization: x' }, { headers: null }, { headers: ['a'] }])
      expect(toJobResponse(jobRow({ params })).params).toBe(params);
  });
});

describe('toItemResponse', () => {
  it('maps an item and shows a missing result as null', () => {
    expect(
      toItemResponse({
        seq: 4,
        targetId: 'user-4',
        data: { note: 'vip' },
        status: 'failed',
        attempts: 3,
        lastError: { code: 'ACTION_ERROR', message: 'boom' },
        result: undefined,
        startedAt: new Date('2025-01-01T00:00:00.000Z'),
        finishedAt: null,
      }),
    ).toEqual({
      seq: 4,
      target_id: 'user-4',
      data: { note: 'vip' },
      status: 'failed',
      attempts: 3,
      last_error: { code: 'ACTION_ERROR', message: 'boom' },
      result: null,
      started_at: '2025-01-01T00:00:00.000Z',
      finished_at: null,
    });
  });
});
