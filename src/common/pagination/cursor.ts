import { createHmac, timingSafeEqual } from 'node:crypto';
import { isUuid } from '../uuid';

/**
 * Opaque keyset cursors. A cursor carries the sort key of the last row of a
 * page and an HMAC-SHA256 over that position, the listing that issued it and
 * the query's filters: a cursor the server did not issue (hand-made, edited,
 * or issued under other filters, AIP-158) fails verification, and so never
 * reaches a statement. Its position is range-checked all the same.
 */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

/** Version 1 was unsigned; its cursors are refused. */
const VERSION = 2;
const MAX_CURSOR_LENGTH = 1024;

export class InvalidCursorError extends Error {}

/** The keys cursors are signed and verified with: the current one first. */
export interface CursorKeys {
  /** Signs new cursors (and verifies them). */
  current: Buffer;
  /** Still verified, so that a key rotation does not break the cursors of pages in flight. */
  previous?: Buffer;
}

interface CursorEnvelope {
  v: number;
  k: string; // kind: which listing issued it
  p: unknown[]; // position
  s: string; // signature
}

/** The filters in a form that does not depend on key order, with undefined and null alike. */
function canonicalFilters(filters: Record<string, unknown>): unknown[] {
  return Object.keys(filters)
    .sort()
    .map((k) => [k, filters[k] ?? null]);
}

export class CursorCodec {
  private readonly keys: Buffer[];

  constructor(keys: CursorKeys) {
    this.keys = keys.previous ? [keys.current, keys.previous] : [keys.current];
  }

  encode(kind: string, filters: Record<string, unknown>, position: unknown[]): string {
    const signature = this.sign(this.keys[0], kind, filters, position).toString('base64url');
    const envelope: CursorEnvelope = { v: VERSION, k: kind, p: position, s: signature };
    return Buffer.from(JSON.stringify(envelope)).toString('base64url');
  }

  /** Returns the position, or throws InvalidCursorError for anything this server did not issue. */
  decode(cursor: string, kind: string, filters: Record<string, unknown>): unknown[] {
    if (cursor.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(cursor)) {
      throw new InvalidCursorError('malformed');
    }
    let envelope: Partial<CursorEnvelope>;
    try {
      envelope = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Partial<CursorEnvelope>;
    } catch {
      throw new InvalidCursorError('malformed');
    }
    if (
      !envelope ||
      typeof envelope !== 'object' ||
      envelope.v !== VERSION ||
      envelope.k !== kind ||
      !Array.isArray(envelope.p) ||
      typeof envelope.s !== 'string'
    ) {
      throw new InvalidCursorError('not issued by this listing');
    }
    const given = Buffer.from(envelope.s, 'base64url');
    const position = envelope.p;
    const valid = this.keys.some((key) => {
      const expected = this.sign(key, kind, filters, position);
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
    if (!valid) throw new InvalidCursorError('bad signature, or issued for other filters');
    return position;
  }

  private sign(key: Buffer, kind: string, filters: Record<string, unknown>, position: unknown[]): Buffer {
    return createHmac('sha256', key)
      .update(JSON.stringify([VERSION, kind, canonicalFilters(filters), position]))
      .digest();
  }
}

const ISO_RE = /^(\d{4})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** PostgreSQL's integer: the type of an item's seq. */
const MAX_INT4 = 2_147_483_647;

/**
 * Position of a (created_at DESC, id DESC) listing: a timestamp PostgreSQL
 * accepts (years 1 to 9999; it has no year 0) that names a real instant (no
 * 30 February), and a UUID.
 */
export function decodeTimeIdPosition(p: unknown[]): { createdAt: string; id: string } {
  const [createdAt, id] = p;
  if (p.length !== 2 || typeof createdAt !== 'string' || !validTimestamp(createdAt) || !isUuid(id)) {
    throw new InvalidCursorError('bad position');
  }
  return { createdAt, id };
}

function validTimestamp(s: string): boolean {
  const match = ISO_RE.exec(s);
  if (!match || Number(match[1]) < 1) return false;
  const time = Date.parse(s);
  return !Number.isNaN(time) && new Date(time).toISOString() === s;
}

/** Position of a listing ordered by an item's seq: an integer PostgreSQL's `integer` holds. */
export function decodeSeqPosition(p: unknown[]): number {
  const [seq] = p;
  if (p.length !== 1 || typeof seq !== 'number' || !Number.isInteger(seq) || seq < 0 || seq > MAX_INT4) {
    throw new InvalidCursorError('bad position');
  }
  return seq;
}

/** limit defaults to 50; values above 500 are lowered to 500. */
export function clampLimit(limit: number | undefined): number {
  return Math.min(limit ?? DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
}
