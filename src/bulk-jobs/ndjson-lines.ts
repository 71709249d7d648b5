export class LineTooLongError extends Error {
  constructor(readonly line: number) {
    super(`line ${line} is too long`);
  }
}

const LF = 0x0a;
const CR = 0x0d;
const BOM = '\ufeff';
/** Blank by JSON's definition of whitespace; such lines are skipped. */
const BLANK = /^[ \t\r]*$/;

/**
 * Splits a byte stream into lines (LF or CRLF), numbering them from 1, while
 * holding at most one partial line in memory. Blank lines are skipped (but
 * counted); a UTF-8 byte order mark in front of the first line is dropped.
 *
 * The split works on bytes: LF never occurs inside a multi-byte UTF-8
 * sequence, so a line is decoded only once it is whole (a character cut by a
 * chunk boundary decodes intact), its length is measured in bytes, and the
 * search for the next LF never rescans a partial line (a line trickled in
 * many small chunks costs linear time, not quadratic).
 */
export async function* ndjsonLines(
  source: AsyncIterable<Buffer | string>,
  maxLineBytes: number,
): AsyncGenerator<{ line: number; text: string }> {
  let partial: Buffer[] = [];
  let partialBytes = 0;
  let line = 0;

  const complete = (tail: Buffer): { line: number; text: string } | null => {
    line++;
    let bytes = partial.length === 0 ? tail : Buffer.concat([...partial, tail], partialBytes + tail.length);
    partial = [];
    partialBytes = 0;
    if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, -1);
    if (bytes.length > maxLineBytes) throw new LineTooLongError(line);
    let text = bytes.toString('utf8');
    if (line === 1 && text.startsWith(BOM)) text = text.slice(1);
    return BLANK.test(text) ? null : { line, text };
  };

  for await (const chunk of source) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let start = 0;
    for (let nl = buf.indexOf(LF); nl !== -1; nl = buf.indexOf(LF, start)) {
      const next = complete(buf.subarray(start, nl));
      start = nl + 1;
      if (next) yield next;
    }
    if (start < buf.length) {
      partial.push(buf.subarray(start));
      partialBytes += buf.length - start;
      // One byte of slack for the CR of a CRLF that has not arrived whole.
      if (partialBytes > maxLineBytes + 1) throw new LineTooLongError(line + 1);
    }
  }
  if (partialBytes > 0) {
    const last = complete(Buffer.alloc(0));
    if (last) yield last;
  }
}
