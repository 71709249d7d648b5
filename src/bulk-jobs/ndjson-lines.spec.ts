import { expect } from 'expect';
import { describe, it } from 'node:test';
import { LineTooLongError, ndjsonLines } from './ndjson-lines';

async function* chunks(...parts: (Buffer | string)[]): AsyncGenerator<Buffer | string> {
  for (const part of parts) yield part;
}

/** Feeds `text` as UTF-8 bytes cut at the given byte offsets. */
function bytesCutAt(text: string, ...offsets: number[]): Buffer[] {
  const bytes = Buffer.from(text, 'utf8');
  const cuts = [0, ...offsets, bytes.length];
  return cuts.slice(1).map((end, i) => bytes.subarray(cuts[i], end));
}

async function collect(source: AsyncIterable<Buffer | string>, max = 1024): Promise<[number, string][]> {
  const out: [number, string][] = [];
  for await (const { line, text } of ndjsonLines(source, max)) out.push([line, text]);
  return out;
}

async function lineTooLong(source: AsyncIterable<Buffer | string>, max: number): Promise<LineTooLongError> {
  try {
    await collect(source, max);
  } catch (err) {
    if (err instanceof LineTooLongError) return err;
    throw err;
  }
  throw new Error('no LineTooLongError');
}

describe('ndjsonLines', () => {
  it('splits LF-terminated lines and numbers them from 1', async () => {
    expect(await collect(chunks('{"a":1}\n"x"\n"y"\n'))).toEqual([
      [1, '{"a":1}'],
      [2, '"x"'],
      [3, '"y"'],
    ]);
  });

  it('strips the CR of CRLF line endings', async () => {
    expect(await collect(chunks('{"a":1}\r\n"x"\r\n"y"\r\n'))).toEqual([
      [1, '{"a":1}'],
      [2, '"x"'],
      [3, '"y"'],
    ]);
  });

  it('joins a CRLF split between two chunks', async () => {
    expect(await collect(chunks('"x"\r', '\n"y"\r', '\n'))).toEqual([
      [1, '"x"'],
      [2, '"y"'],
    ]);
  });

  it('keeps a CR that is not at the end of a line', async () => {
    expect(await collect(chunks('"a\rb"\n'))).toEqual([[1, '"a\rb"']]);
  });

  it('joins a line cut in the middle by a chunk boundary', async () => {
    expect(await collect(chunks('{"act', 'ion":"noop"}\n"tar', 'get-1"\n'))).toEqual([
      [1, '{"action":"noop"}'],
      [2, '"target-1"'],
    ]);
  });

  it('joins a line spread over many small chunks', async () => {
    const text = '"' + 'x'.repeat(200) + '"\n"y"\n';
    const parts = [...text].map((c) => Buffer.from(c));
    expect(await collect(chunks(...parts))).toEqual([
      [1, `"${'x'.repeat(200)}"`],
      [2, '"y"'],
    ]);
  });

  it('decodes a multi-byte UTF-8 character cut by a chunk boundary', async () => {
    // "é" is 2 bytes, "✓" 3 bytes and "😀" 4 bytes: cut each one in the middle.
    const text = '"é"\n"✓"\n"😀"\n';
    const e = Buffer.from('"').length + 1;
    const check = Buffer.from('"é"\n"').length + 1;
    const emoji = Buffer.from('"é"\n"✓"\n"').length + 2;
    expect(await collect(chunks(...bytesCutAt(text, e, check, check + 1, emoji, emoji + 1)))).toEqual([
      [1, '"é"'],
      [2, '"✓"'],
      [3, '"😀"'],
    ]);
  });

  it('decodes every possible cut of a line of multi-byte characters', async () => {
    const text = '"ü✓😀"\n';
    const length = Buffer.byteLength(text);
    for (let cut = 1; cut < length; cut++) {
      expect(await collect(chunks(...bytesCutAt(text, cut)))).toEqual([[1, '"ü✓😀"']]);
    }
  });

  it('skips blank and whitespace-only lines but counts them', async () => {
    expect(await collect(chunks('\n{"a":1}\n\n   \n\t\r\n"x"\r\n\r\n"y"\n\n\n'))).toEqual([
      [2, '{"a":1}'],
      [6, '"x"'],
      [8, '"y"'],
    ]);
  });

  it('yields a last line that has no newline', async () => {
    expect(await collect(chunks('{"a":1}\n"x"'))).toEqual([
      [1, '{"a":1}'],
      [2, '"x"'],
    ]);
    expect(await collect(chunks('{"a":1}\r\n"x"\r'))).toEqual([
      [1, '{"a":1}'],
      [2, '"x"'],
    ]);
  });

  it('yields nothing for an empty or blank stream', async () => {
    expect(await collect(chunks())).toEqual([]);
    expect(await collect(chunks(''))).toEqual([]);
    expect(await collect(chunks('\n\r\n  \n'))).toEqual([]);
  });

  it('ignores a UTF-8 byte order mark at the start of the stream', async () => {
    expect(await collect(chunks(Buffer.from([0xef, 0xbb]), Buffer.from([0xbf]), '{"a":1}\n'))).toEqual([
      [1, '{"a":1}'],
    ]);
  });

  it('accepts string chunks as well as buffers', async () => {
    expect(await collect(chunks('"a"\n', Buffer.from('"b"\n'), '"c"'))).toEqual([
      [1, '"a"'],
      [2, '"b"'],
      [3, '"c"'],
    ]);
  });

  it('accepts a line of exactly the maximum length', async () => {
    const max = 64;
    const line = 'x'.repeat(max);
    expect(await collect(chunks(`"a"\n${line}\n`), max)).toEqual([
      [1, '"a"'],
      [2, line],
    ]);
    expect(await collect(chunks(`${line}\r\n`), max)).toEqual([[1, line]]);
  });

  it('throws LineTooLongError with the number of a complete line over the maximum', async () => {
    const err = await lineTooLong(chunks(`"a"\n\n"b"\n${'x'.repeat(65)}\n"c"\n`), 64);
    expect(err.line).toBe(4);
  });

  it('throws LineTooLongError for a last line without newline over the maximum', async () => {
    const err = await lineTooLong(chunks(`"a"\n${'x'.repeat(65)}`), 64);
    expect(err.line).toBe(2);
  });

  it('throws LineTooLongError before the whole of an endless line has arrived', async () => {
    let sent = 0;
    async function* endless(): AsyncGenerator<Buffer> {
      yield Buffer.from('"a"\n"b"\n');
      for (;;) {
        sent += 16;
        if (sent > 10_000) throw new Error('the whole line was buffered');
        yield Buffer.from('x'.repeat(16));
      }
    }
    const err = await lineTooLong(endless(), 64);
    expect(err.line).toBe(3);
    expect(sent).toBeLessThan(200);
  });

  it('measures the maximum in bytes, not characters', async () => {
    // 40 characters, 80 bytes.
    const err = await lineTooLong(chunks(`"a"\n${'é'.repeat(40)}\n`), 64);
    expect(err.line).toBe(2);
    expect(await collect(chunks(`${'é'.repeat(32)}\n`), 64)).toEqual([[1, 'é'.repeat(32)]]);
  });
});
