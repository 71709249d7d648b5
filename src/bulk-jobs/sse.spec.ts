import { expect } from 'expect';
import { describe, it } from 'node:test';
import type { BulkJobResponseDto } from './dto/bulk-job-response.dto';
import { jobVersion } from './job-events.service';
import { sseEvent } from './sse';

const job: BulkJobResponseDto = {
  id: '8d7c0d1e-5b1f-4c55-9d8e-1f2a3b4c5d6e',
  action: 'noop',
  params: { note: 'line one\nline two\r\n' },
  options: {},
  status: 'running',
  total_items: 10,
  succeeded_items: 4,
  failed_items: 1,
  skipped_items: 0,
  progress: 0.5,
  owner: 'alice',
  error: null,
  deleted_at: null,
  purge_at: null,
  retry_of: null,
  labels: {},
  created_at: '2026-01-01T00:00:00.000Z',
  started_at: '2026-01-01T00:00:01.000Z',
  finished_at: null,
  updated_at: '2026-01-01T00:00:02.000Z',
  notification: null,
};

describe('sseEvent', () => {
  it('writes id, event and one data line, then a blank line', () => {
    expect(sseEvent('progress', 'v1', { a: 1 })).toBe('id: v1\nevent: progress\ndata: {"a":1}\n\n');
    expect(sseEvent('problem', undefined, { status: 404 })).toBe('event: problem\ndata: {"status":404}\n\n');
  });

  it('keeps line breaks inside the data escaped, so that a job is always one data line', () => {
    const text = sseEvent('progress', 'v1', job);
    expect(text.split('\n')).toHaveLength(5);
    expect(JSON.parse(text.split('\n')[2].slice('data: '.length))).toEqual(job);
  });
});

describe('jobVersion', () => {
  it('is a short id that an event id can carry', () => {
    expect(jobVersion(job)).toMatch(/^[A-Za-z0-9_-]{16}$/);
  });

  it('changes with the counters and the status, not with updated_at alone', () => {
    const v = jobVersion(job);
    expect(jobVersion({ ...job, updated_at: '2026-01-01T00:00:09.000Z' })).toBe(v);
    expect(jobVersion({ ...job, succeeded_items: 5 })).not.toBe(v);
    expect(jobVersion({ ...job, status: 'completed' })).not.toBe(v);
    expect(jobVersion({ ...job, deleted_at: '2026-01-02T00:00:00.000Z' })).not.toBe(v);
  });
});
