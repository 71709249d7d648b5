/**
 * Parses RFC 4180 CSV strictly: records end with CRLF (a bare LF outside a
 * quoted field is an error), a quoted field may hold commas, CRLF, LF and
 * doubled quotes. Each field comes with whether it was quoted, so that a
 * test can tell an empty field (NULL in an export) from `""` (an empty string).
 */
export interface CsvField {
  value: string;
  quoted: boolean;
}

export function parseCsv(text: string): CsvField[][] {
  const records: CsvField[][] = [];
  let record: CsvField[] = [];
  let i = 0;
  while (i < text.length) {
    let value = '';
    let quoted = false;
    if (text[i] === '"') {
      quoted = true;
      i++;
      for (;;) {
        if (i >= text.length) throw new Error('CSV: a quoted field does not end');
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += text[i++];
      }
    } else {
      while (i < text.length && text[i] !== ',' && text[i] !== '\r' && text[i] !== '\n') {
        if (text[i] === '"') throw new Error(`CSV: a quote inside an unquoted field at ${i}`);
        value += text[i++];
      }
    }
    record.push({ value, quoted });
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (text.startsWith('\r\n', i)) {
      records.push(record);
      record = [];
      i += 2;
      continue;
    }
    if (i >= text.length) break;
    throw new Error(`CSV: ${JSON.stringify(text[i])} after a field at ${i} (records end with CRLF)`);
  }
  if (record.length > 0) throw new Error('CSV: the last record does not end with CRLF');
  return records;
}
