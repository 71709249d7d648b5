/** A pino destination that keeps every line, raw and parsed, for assertions. */
export function captureLogs(): {
  lines: Record<string, unknown>[];
  text: () => string;
  write: (chunk: string) => void;
} {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  return {
    lines,
    text: () => raw.join(''),
    write: (chunk: string) => {
      raw.push(chunk);
      for (const line of chunk.split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      }
    },
  };
}
