import { expect } from 'expect';
import { describe, it } from 'node:test';
import {
  clampLimit,
  CursorCodec,
  decodeSeqPosition,
  decodeTimeIdPosition,
  DEFAULT_PAGE_SIZE,
  InvalidCursorError,
  MAX_PAGE_SIZE,
} from './cursor';

const FILTERS = { status: 'completed', show_deleted: false, owner: 'alice' };
const POSITION = ['2025-01-02T03:04:05.678Z', '8d7c6f9e-1a2b-4c3d-9e8f-0a1b2c3d4e5f'];

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const key = (fill: string) => Buffer.alloc(32, fill);
const codec = new CursorCodec({ current: key('a') });
const encodeCursor = codec.encode.bind(codec);
const decodeCursor = codec.decode.bind(codec);
const envelopeOf = (cursor: string) =>
  JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, unknown>;

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
    expect(decodeCursor(encodeCursor('jobs', reordered, POSITION), 'jobs', FILTERS)).toEqual(POSITION);
  });

  it('treats an undefined filter and a null one alike', () => {
    const cursor = encodeCursor('items', { status: undefined, owner: 'a' }, [1]);
    expect(decodeCursor(cursor, 'items', { status: null, owner: 'a' })).toEqual([1]);
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
      b64({ v: 1, k: 'jobs', f: 'x7qK2btRpLwA', p: POSITION }),
      b64({ ...envelopeOf(encodeCursor('jobs', FILTERS, POSITION)), v: 3 }),
      b64({ ...envelopeOf(encodeCursor('jobs', FILTERS, POSITION)), p: 'not an array' }),
      b64({ ...envelopeOf(encodeCursor('jobs', FILTERS, POSITION)), s: undefined }),
      b64({ ...envelopeOf(encodeCursor('jobs', FILTERS, POSITION)), s: 7 }),
      b64({ v: 2, k: 'jobs', p: POSITION }),
      Buffer.from('{"v":1,').toString('base64url'),
    ];
    for (const cursor of garbage) {
      expect(() => decodeCursor(cursor, 'jobs', FILTERS)).toThrow(InvalidCursorError);
    }
  });

  it('refuses a tampered cursor: its position edited and re-encoded', () => {
    const cursor = encodeCursor('jobs', FILTERS, POSITION);
    const envelope = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, unknown>;
    const tampered = b64({ ...envelope, p: ['2099-01-01T00:00:00.000Z', POSITION[1]] });
    expect(tampered).not.toBe(cursor);
    expect(() => decodeCursor(tampered, 'jobs', FILTERS)).toThrow(InvalidCursorError);
  });

  it('refuses a cursor relabelled for another listing, and a signature cut short or padded', () => {
    const envelope = envelopeOf(encodeCursor('items', { job: POSITION[1] }, [3]));
    expect(() => decodeCursor(b64({ ...envelope, k: 'jobs' }), 'jobs', { job: POSITION[1] })).toThrow(
      InvalidCursorError,
    );
    const s = envelope.s as string;
    for (const signature of [s.slice(0, -2), `${s}AA`, s.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')), ''])
      expect(() => decodeCursor(b64({ ...envelope, s: signature }), 'items', { job: POSITION[1] })).toThrow(
        InvalidCursorError,
      );
  });

  it('refuses a cursor signed with another key', () => {
    const other = new CursorCodec({ current: key('b') });
    expect(() => decodeCursor(other.encode('jobs', FILTERS, POSITION), 'jobs', FILTERS)).toThrow(
      InvalidCursorError,
    );
  });

  it('verifies with the previous key too, and signs with the current one only', () => {
    const before = new CursorCodec({ current: key('a') });
    const rotated = new CursorCodec({ current: key('b'), previous: key('a') });
    const issuedBefore = before.encode('jobs', FILTERS, POSITION);
    expect(rotated.decode(issuedBefore, 'jobs', FILTERS)).toEqual(POSITION);
    const issuedAfter = rotated.encode('jobs', FILTERS, POSITION);
    expect(new CursorCodec({ current: key('b') }).decode(issuedAfter, 'jobs', FILTERS)).toEqual(POSITION);
    expect(() => before.decode(issuedAfter, 'jobs', FILTERS)).toThrow(InvalidCursorError);
    // Once the previous key is dropped, what it signed is refused.
    expect(() => new CursorCodec({ current: key('b') }).decode(issuedBefore, 'jobs', FILTERS)).toThrow(
      InvalidCursorError,
    );
  });

  it('refuses a cursor with a flipped byte in its header', () => {
    const cursor = encodeCursor('jobs', FILTERS, POSITION);
    const flipped = cursor.slice(0, 5) + (cursor[5] === 'A' ? 'B' : 'A') + cursor.slice(6);
    expect(Buffer.from(flipped, 'base64url').toString('utf8').startsWith('{"v":1,')).toBe(false);
    expect(() => decodeCursor(flipped, 'jobs', FILTERS)).toThrow(InvalidCursorError);
  });
});

describe('cursor fuzz', () => {
  // A fixed seed: the same strings on every run.
  let state = 0x2f6b3a1d;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (max: number) => Math.floor(random() * max);
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

  /** Refused with InvalidCursorError, never another error; or, decoding to the issued bytes, accepted as issued. */
  function expectRefusedOrSame(
    issued: string,
    mutated: string,
    kind: string,
    filters: Record<string, unknown>,
  ) {
    if (Buffer.from(mutated, 'base64url').equals(Buffer.from(issued, 'base64url'))) return;
    let thrown: unknown;
    try {
      decodeCursor(mutated, kind, filters);
    } catch (err) {
      thrown = err;
    }
    expect({ mutated, refused: thrown instanceof InvalidCursorError }).toEqual({ mutated, refused: true });
  }

  it('refuses 3,000 mutations of issued cursors: flipped characters, cuts, insertions, random bytes', () => {
    const issued = [
      { kind: 'jobs', filters: FILTERS, cursor: encodeCursor('jobs', FILTERS, POSITION) },
      {
        kind: 'items',
        filters: { job: POSITION[1] },
        cursor: encodeCursor('items', { job: POSITION[1] }, [42]),
      },
    ];
    for (let n = 0; n < 3000; n++) {
      const { kind, filters, cursor } = issued[n % issued.length];
      const at = int(cursor.length);
      const mutations = [
        cursor.slice(0, at) + ALPHABET[int(64)] + cursor.slice(at + 1),
        cursor.slice(0, at),
        cursor.slice(0, at) + ALPHABET[int(64)] + cursor.slice(at),
        Buffer.from(Array.from({ length: 1 + int(300) }, () => int(256))).toString('base64url'),
      ];
      for (const mutated of mutations) expectRefusedOrSame(cursor, mutated, kind, filters);
    }
  });

  it('refuses envelopes of every shape, whatever their position, when not signed with the key', () => {
    const values: unknown[] = [null, 0, -1, 2147483648, 1e300, '', 'x', [], {}, [1], { p: [] }, true];
    for (let n = 0; n < 1000; n++) {
      const envelope = {
        v: random() < 0.8 ? 2 : values[int(values.length)],
        k: random() < 0.8 ? 'jobs' : values[int(values.length)],
        p:
          random() < 0.7
            ? [values[int(values.length)], values[int(values.length)]]
            : values[int(values.length)],
        s:
          random() < 0.5
            ? Buffer.from(Array.from({ length: 32 }, () => int(256))).toString('base64url')
            : values[int(values.length)],
      };
      expect(() => decodeCursor(b64(envelope), 'jobs', FILTERS)).toThrow(InvalidCursorError);
    }
  });
});

describe('cursor positions', () => {
  it('accepts only an ISO timestamp with milliseconds and a UUID for (created_at, id)', () => {
    for (const at of ['0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z', '2024-02-29T12:00:00.000Z'])
      expect(decodeTimeIdPosition([at, POSITION[1]])).toEqual({ createdAt: at, id: POSITION[1] });
    const bad: unknown[][] = [
      // PostgreSQL has no year 0, and these days do not exist.
      ['0000-01-01T00:00:00.000Z', POSITION[1]],
      ['2025-02-30T00:00:00.000Z', POSITION[1]],
      ['2023-02-29T00:00:00.000Z', POSITION[1]],
      ['2025-01-01T24:00:00.000Z', POSITION[1]],
      ['2025-01-01T23:60:00.000Z', POSITION[1]],
      ['+275760-09-13T00:00:00.000Z', POSITION[1]],
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

  it("accepts only a non-negative integer that fits PostgreSQL's integer for a sequence", () => {
    expect(decodeSeqPosition([0])).toBe(0);
    expect(decodeSeqPosition([2147483647])).toBe(2147483647);
    for (const p of [
      [],
      [-1],
      [1.5],
      ['3'],
      [2147483648],
      [Number.MAX_SAFE_INTEGER + 1],
      [1e300],
      [1, 2],
      [null],
    ]) {
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
