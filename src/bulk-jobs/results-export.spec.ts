import { expect } from 'expect';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { CrlfRecords, exportFileName, exportFormatOf } from './results-export';

async function throughCrlf(chunks: string[]): Promise<string> {
  let out = '';
  for await (const chunk of Readable.from(chunks.map((c) => Buffer.from(c))).pipe(new CrlfRecords()))
    out += (chunk as Buffer).toString();
  return out;
}

describe('CrlfRecords', () => {
  it('ends records with CRLF and leaves line breaks inside quoted fields alone', async () => {
    expect(await throughCrlf(['a,b\n"x\ny",2\n"say ""hi""\n",3\n'])).toBe(
      'a,b\r\n"x\ny",2\r\n"say ""hi""\n",3\r\n',
    );
  });

  it('carries the quote state across chunks, whatever the cut', async () => {
    const text = 'id,note\n"a\nb",1\n"""q""\n",2\nplain,3\n';
    const expected = 'id,note\r\n"a\nb",1\r\n"""q""\n",2\r\nplain,3\r\n';
    for (let cut = 0; cut <= text.length; cut++) {
      expect(await throughCrlf([text.slice(0, cut), text.slice(cut)])).toBe(expected);
    }
    expect(await throughCrlf([...text])).toBe(expected);
  });
});

describe('exportFormatOf', () => {
  it('picks CSV only when text/csv is preferred to NDJSON', () => {
    expect(exportFormatOf(undefined)).toBe('ndjson');
    expect(exportFormatOf('*/*')).toBe('ndjson');
    expect(exportFormatOf('text/csv')).toBe('csv');
    expect(exportFormatOf('text/csv;q=0.5, application/x-ndjson')).toBe('ndjson');
    expect(exportFormatOf('application/x-ndjson;q=0.2, text/csv')).toBe('csv');
    expect(exportFormatOf('text/csv;q=0')).toBe('ndjson');
    expect(exportFormatOf('application/json')).toBe('ndjson');
  });
});

describe('exportFileName', () => {
  it('names the job, the statuses and the format', () => {
    expect(exportFileName('j1', undefined, 'ndjson')).toBe('bulk-job-j1-results.ndjson');
    expect(exportFileName('j1', ['failed', 'skipped'], 'csv')).toBe('bulk-job-j1-results-failed-skipped.csv');
  });
});
