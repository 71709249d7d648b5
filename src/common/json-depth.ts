/**
 * How deep objects and arrays may nest in a create body (or one NDJSON line).
 * Deeper values are refused before anything walks them: class-transformer,
 * JSON.stringify and PostgreSQL's jsonb all recurse and run out of stack on
 * a few thousand levels, which would be a 500 for a malformed request.
 */
export const MAX_JSON_DEPTH = 64;
/** What a value nested deeper than MAX_JSON_DEPTH is told. */
export const TOO_DEEP = `nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep`;

/** True when `value` nests objects and arrays more than `max` levels deep. Iterative: any depth is safe. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (typeof current !== 'object' || current === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(current) ? current : Object.values(current)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}
