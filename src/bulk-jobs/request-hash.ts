import { createHash, type Hash } from 'node:crypto';

/** JSON with object keys sorted, so that key order never changes a hash. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
    .join(',')}}`;
}

/**
 * Fingerprint of what a create request asks for, fed incrementally so that a
 * streamed request is hashed without holding its targets. A JSON and an NDJSON
 * request for the same job hash alike.
 */
export class RequestHasher {
  private readonly hash: Hash = createHash('sha256');

  constructor(spec: { action: string; params?: unknown; options?: unknown; labels?: unknown }) {
    this.hash.update(
      canonicalJson({
        action: spec.action,
        params: spec.params ?? {},
        options: spec.options ?? {},
        // Only when given, so that the fingerprints of requests without labels stay as they were.
        labels: spec.labels && Object.keys(spec.labels).length > 0 ? spec.labels : undefined,
      }),
    );
  }

  addTarget(target: unknown): void {
    this.hash.update('\n').update(canonicalJson(target));
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

/** The fingerprint of a whole create request (a JSON one, whose targets are all at hand). */
export function hashRequest(
  spec: { action: string; params?: unknown; options?: unknown; labels?: unknown },
  targets: readonly unknown[],
): string {
  const hasher = new RequestHasher(spec);
  for (const target of targets) hasher.addTarget(target);
  return hasher.digest();
}
