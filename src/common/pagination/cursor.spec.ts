import { expect } from 'expect';
import { describe, it } from 'node:test';
import {
  clampLimit,
  decodeCursor,
  decodeSeqPosition,
  decodeTimeIdPosition,
  DEFAULT_PAGE_SIZE,
  encodeCursor,
  filterFingerprint,
  InvalidCursorError,
  MAX_PAGE_SIZE,
} from './cursor';

const FILTERS = { status: 'completed', show_deleted: false, owner: 'alice' };
const POSITION = ['2025-01-02T03:04:05.678Z', '8d7c6f9e-1a2b-4c3d-9e8f-0a1b2c3d4e5f'];

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('cursor encoding', () => {
  it('round-trips the position for the same listing and filters', () => {
    const cursor = encodeCursor('jobs', FILTERS, POSITION);
    expect(decodeCursor(cursor, 'jobs', FILTERS)).toEqual(POSITION);
    expect(decodeTimeIdPosition(decodeCursor(cursor, 'jobs', FILTERS))).toEqual({
      createdAt: POSITION[0],
      id: POSITION[1],
    });
    const items = encodeCursor('items', { job: POSITION[1], status: undefined }, [41]);
    expect(decodeSeqPosition(decodeCursor(items, 'items', { job: POSITION[1], status: undefined }))).toBe(41);
  });

  it('is URL-safe and opaque', () => {
    const cursor = encodeCursor('jobs', FILTERS, POSITION);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(cursor).not.toContain(POSITION[1]);
  });

  it('does not depend on the order of the filter keys', () => {
    const reordered = { owner: 'alice', show_deleted: false, status: 'completed' };
    expect(filterFingerprint(reordered)).toBe(filterFingerprint(FILTERS));
    expect(decodeCursor(encodeCursor('jobs', reordered, POSITION), 'jobs', FILTERS)).toEqual(POSITION);
  });

  it('treats a missing filter and an undefined one alike', () => {
    expect(filterFingerprint({ status: undefined, owner: 'a' })).toBe(
      filterFingerprint({ status: null, owner: 'a' }),
    );
  });

  it('refuses a cursor reused with other filters', () => {
    const cursor = encodeCursor('jobs', FILTERS, POSITION);
    for (const other of [
      { ...FILTERS, status: 'failed' },
      { ...FILTERS, status: undefined },
      { ...FILTERS, show_deleted: true },
      { ...FILTERS, owner: 'bob' },
    ]) {
      expect(() => decodeCursor(cursor, 'jobs', other)).toThrow(InvalidCursorError);
    }
  });

  it('refuses a cursor issued by another listing', () => {
    const cursor = encodeCursor('items', FILTERS, [3]);
    expect(() => decodeCursor(cursor, 'jobs', FILTERS)).toThrow(InvalidCursorError);
  });

  it('refuses garbage', () => {
    const garbage = [
      '',
      'not a cursor',
      '!!!!',
      'a'.repeat(1025),
      'abc',
      b64('just a string'),
      b64(null),
      b64([1, 2]),
      b64({ v: 2, k: 'jobs', f: filterFingerprint(FILTERS), p: POSITION }),
      b64({ v: 1, k: 'jobs', f: filterFingerprint(FILTERS), p: 'not an array' }),
      b64({ v: 1, k: 'jobs', p: POSITION }),
      Buffer.from('{"v":1,').toString('base64url'),
    ];
    for (const cursor of garbage) {
      expect(() => decodeCursor(cursor, 'jobs', FILTERS)).toThrow(InvalidCursorError);
    }
  });

  it('refuses a cursor whose filter fingerprint was rewritten for other filters', () => {
    const cursor = encodeCursor('jobs', FILTERS, POSITION);
    const envelope = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, unknown>;
    const forged = b64({ ...envelope, f: filterFingerprint({ ...FILTERS, owner: 'bob' }) });
    expect(forged).not.toBe(cursor);
    expect(() => decodeCursor(forged, 'jobs', FILTERS)).toThrow(InvalidCursorError);
  });

  it('refuses a cursor with a flipped byte in its header', () => {
    const cursor = encodeCursor('jobs', FILTERS, POSITION);
    const flipped = cursor.slice(0, 5) + (cursor[5] === 'A' ? 'B' : 'A') + cursor.slice(6);
    expect(Buffer.from(flipped, 'base64url').toString('utf8').startsWith('{"v":1,')).toBe(false);
    expect(() => decodeCursor(flipped, 'jobs', FILTERS)).toThrow(InvalidCursorError);
  });
});

describe('cursor positions', () => {
  it('accepts only an ISO timestamp with milliseconds and a UUID for (created_at, id)', () => {
    const bad: unknown[][] = [
      [],
      [POSITION[0]],
      [POSITION[0], POSITION[1], 'extra'],
      ['2025-01-02', POSITION[1]],
      ['2025-01-02T03:04:05Z', POSITION[1]],
      ['2025-13-45T03:04:05.678Z', POSITION[1]],
      [POSITION[0], 'not-a-uuid'],
      [POSITION[0], "' OR 1=1 --"],
      [1735787045678, POSITION[1]],
      [null, null],
    ];
    for (const p of bad) expect(() => decodeTimeIdPosition(p)).toThrow(InvalidCursorError);
  });

  it('accepts only a non-negative safe integer for a sequence', () => {
    expect(decodeSeqPosition([0])).toBe(0);
    for (const p of [[], [-1], [1.5], ['3'], [Number.MAX_SAFE_INTEGER + 1], [1, 2], [null]]) {
      expect(() => decodeSeqPosition(p)).toThrow(InvalidCursorError);
    }
  });
});

describe('clampLimit', () => {
  it(`defaults to ${DEFAULT_PAGE_SIZE} and lowers anything above ${MAX_PAGE_SIZE}`, () => {
    expect(clampLimit(undefined)).toBe(50);
    expect(clampLimit(1)).toBe(1);
    expect(clampLimit(50)).toBe(50);
    expect(clampLimit(500)).toBe(500);
    expect(clampLimit(501)).toBe(500);
    expect(clampLimit(999_999_999)).toBe(500);
  });
});
