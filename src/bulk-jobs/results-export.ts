import { Transform, type TransformCallback } from 'node:stream';

/** The two forms of a job's results: one JSON object a line, or CSV with a header row. */
export type ExportFormat = 'ndjson' | 'csv';

export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';
export const CSV_CONTENT_TYPE = 'text/csv; charset=utf-8; header=present';

/** The columns of an export, in order (the CSV header, the keys of each NDJSON line). */
export const EXPORT_COLUMNS = [
  'target_id',
  'data',
  'status',
  'attempts',
  'result',
  'error_code',
  'error_message',
  'finished_at',
] as const;

/**
 * The format an Accept header asks for: CSV when it names text/csv with a
 * higher preference than NDJSON, else NDJSON (also for `*\/*` or none).
 */
export function exportFormatOf(accept: string | undefined): ExportFormat {
  if (!accept) return 'ndjson';
  let csv = -1;
  let ndjson = -1;
  for (const range of accept.split(',')) {
    const [type, ...params] = range.split(';').map((s) => s.trim().toLowerCase());
    const qParam = params.find((p) => p.startsWith('q='));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    if (!(q >= 0)) continue;
    if (type === 'text/csv') csv = Math.max(csv, q);
    if (type === 'application/x-ndjson') ndjson = Math.max(ndjson, q);
  }
  return csv > 0 && csv > ndjson ? 'csv' : 'ndjson';
}

/** `bulk-job-<id>-results[-failed-skipped].<ext>`: what a download is saved as. */
export function exportFileName(
  jobId: string,
  statuses: readonly string[] | undefined,
  format: ExportFormat,
): string {
  const filter = statuses && statuses.length > 0 ? `-${statuses.join('-')}` : '';
  return `bulk-job-${jobId}-results${filter}.${format === 'csv' ? 'csv' : 'ndjson'}`;
}

const QUOTE = 0x22;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

/**
 * PostgreSQL's CSV ends records with LF; RFC 4180 ends them with CRLF. This
 * writes CR before every LF that is outside a quoted field (an LF inside one
 * is data and stays as it is). Quotes inside a field are doubled, so the
 * parity of the quotes seen so far says whether a byte is inside a field.
 */
export class CrlfRecords extends Transform {
  private quoted = false;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const parts: Buffer[] = [];
    let start = 0;
    let quoted = this.quoted;
    let nextQuote = chunk.indexOf(QUOTE);
    let nextLf = chunk.indexOf(LF);
    while (nextLf >= 0) {
      // Passes the quotes before this LF, flipping in and out of fields.
      while (nextQuote >= 0 && nextQuote < nextLf) {
        quoted = !quoted;
        nextQuote = chunk.indexOf(QUOTE, nextQuote + 1);
      }
      if (!quoted) {
        parts.push(chunk.subarray(start, nextLf), CRLF);
        start = nextLf + 1;
      }
      nextLf = chunk.indexOf(LF, nextLf + 1);
    }
    while (nextQuote >= 0) {
      quoted = !quoted;
      nextQuote = chunk.indexOf(QUOTE, nextQuote + 1);
    }
    this.quoted = quoted;
    if (start === 0) return done(null, chunk);
    parts.push(chunk.subarray(start));
    done(null, Buffer.concat(parts));
  }
}
