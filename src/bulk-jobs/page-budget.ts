import type { BulkJobItemResponseDto, BulkJobResponseDto } from './dto/bulk-job-response.dto';

/**
 * What a row of a page adds to the response beyond the members whose size
 * the client decides: ids, statuses, counters, timestamps (an upper bound).
 */
const JOB_FIXED_BYTES = 512;
const ITEM_FIXED_BYTES = 256;

const jsonBytes = (value: unknown) => (value == null ? 4 : Buffer.byteLength(JSON.stringify(value)));

/**
 * The bytes a job adds to a page. Only the members a client sized are
 * serialized to count them (the params, an error's message): serializing
 * whole rows costs as much again as sending the page.
 */
export function jobBytes(job: BulkJobResponseDto): number {
  return JOB_FIXED_BYTES + jsonBytes(job.params) + jsonBytes(job.error) + Buffer.byteLength(job.owner);
}

export function itemBytes(item: BulkJobItemResponseDto): number {
  return (
    ITEM_FIXED_BYTES +
    Buffer.byteLength(item.target_id) +
    jsonBytes(item.data) +
    jsonBytes(item.result) +
    jsonBytes(item.last_error)
  );
}

/**
 * The rows of one page: at most `limit`, and no more than fit in `maxBytes`
 * (but always the first, however large). `rows` holds up to limit + 1 rows;
 * `more` says whether rows follow the page, i.e. whether it gets a cursor.
 * A row the statement withheld ends the page before it.
 */
export function takePage<R extends { withheld: boolean }, T>(
  rows: R[],
  limit: number,
  maxBytes: number,
  toResponse: (row: R) => T,
  bytesOf: (response: T) => number,
): { items: T[]; last: R | undefined; more: boolean } {
  const items: T[] = [];
  let last: R | undefined;
  let bytes = 0;
  for (const row of rows) {
    if (items.length === limit || row.withheld) break;
    const item = toResponse(row);
    bytes += bytesOf(item);
    if (items.length > 0 && bytes > maxBytes) break;
    items.push(item);
    last = row;
  }
  return { items, last, more: items.length < rows.length };
}
