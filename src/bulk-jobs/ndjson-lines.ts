import { StringDecoder } from 'node:string_decoder';

export class LineTooLongError extends Error {
  constructor(readonly line: number) {
    super(`line ${line} is too long`);
  }
}

/**
 * Splits a byte stream into lines (LF or CRLF), numbering them from 1, while
 * holding at most one partial line in memory. Blank lines are skipped.
 */
export async function* ndjsonLines(
  source: AsyncIterable<Buffer | string>,
  maxLineBytes: number,
): AsyncGenerator<{ line: number; text: string }> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let line = 0;
  for await (const chunk of source) {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let start = 0;
    for (let nl = pending.indexOf('\n', start); nl !== -1; nl = pending.indexOf('\n', start)) {
      line++;
      const text = pending.slice(start, nl > start && pending.charCodeAt(nl - 1) === 13 ? nl - 1 : nl);
      start = nl + 1;
      if (text.length > maxLineBytes) throw new LineTooLongError(line);
      if (text.trim() !== '') yield { line, text };
    }
    pending = pending.slice(start);
    if (pending.length > maxLineBytes) throw new LineTooLongError(line + 1);
  }
  pending += decoder.end();
  if (pending.trim() !== '') {
    line++;
    if (pending.length > maxLineBytes) throw new LineTooLongError(line);
    yield { line, text: pending.endsWith('\r') ? pending.slice(0, -1) : pending };
  }
}
