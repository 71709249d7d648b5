import { createHash } from 'node:crypto';

/**
 * Opaque keyset cursors. A cursor carries the sort key of the last row of a
 * page, plus a fingerprint of the query's filters so that it cannot be
 * replayed under other filters (AIP-158).
 */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

export class InvalidCursorError extends Error {}

interface CursorEnvelope {
  v: 1;
  k: string; // kind: which listing issued it
  f: string; // filter fingerprint
  p: unknown[]; // position
}

export function filterFingerprint(filters: Record<string, unknown>): string {
  const canonical = JSON.stringify(
    Object.keys(filters)
      .sort()
      .map((k) => [k, filters[k] ?? null]),
  );
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 12);
}

export function encodeCursor(kind: string, filters: Record<string, unknown>, position: unknown[]): string {
  const envelope: CursorEnvelope = { v: 1, k: kind, f: filterFingerprint(filters), p: position };
  return Buffer.from(JSON.stringify(envelope)).toString('base64url');
}

/** Returns the position, or throws InvalidCursorError for anything the server did not issue. */
export function decodeCursor(cursor: string, kind: string, filters: Record<string, unknown>): unknown[] {
  if (!/^[A-Za-z0-9_-]{1,1024}$/.test(cursor)) throw new InvalidCursorError('malformed');
  let envelope: Partial<CursorEnvelope>;
  try {
    envelope = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Partial<CursorEnvelope>;
  } catch {
    throw new InvalidCursorError('malformed');
  }
  if (
    !envelope ||
    typeof envelope !== 'object' ||
    envelope.v !== 1 ||
    envelope.k !== kind ||
    !Array.isArray(envelope.p)
  ) {
    throw new InvalidCursorError('not issued by this listing');
  }
  if (envelope.f !== filterFingerprint(filters)) {
    throw new InvalidCursorError('issued for other filters');
  }
  return envelope.p;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Position of a (created_at DESC, id DESC) listing. */
export function decodeTimeIdPosition(p: unknown[]): { createdAt: string; id: string } {
  const [createdAt, id] = p;
  if (
    p.length !== 2 ||
    typeof createdAt !== 'string' ||
    !ISO_RE.test(createdAt) ||
    Number.isNaN(Date.parse(createdAt)) ||
    typeof id !== 'string' ||
    !UUID_RE.test(id)
  ) {
    throw new InvalidCursorError('bad position');
  }
  return { createdAt, id };
}

/** Position of a listing ordered by an integer sequence. */
export function decodeSeqPosition(p: unknown[]): number {
  const [seq] = p;
  if (p.length !== 1 || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
    throw new InvalidCursorError('bad position');
  }
  return seq;
}

/** limit defaults to 50; values above 500 are lowered to 500. */
export function clampLimit(limit: number | undefined): number {
  return Math.min(limit ?? DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
}
