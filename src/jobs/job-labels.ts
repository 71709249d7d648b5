import { isUnstorableText } from '../common/storable-json';

/** A job's labels: a client's own key → value strings (`labels` at create, PATCH /jobs/{id}). */
export type JobLabels = Record<string, string>;

export const MAX_LABELS = 16;
export const LABEL_KEY = /^[a-z0-9_.-]{1,63}$/;
export const MAX_LABEL_VALUE_LENGTH = 255;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Why `value` is not a valid labels map, or null. With `nullable`, a value
 * may be null (a merge patch's deletion), and the key count is not checked
 * (the merged result is, where it is stored).
 */
export function labelsProblem(value: unknown, nullable = false): string | null {
  if (!isPlainObject(value)) return 'must be an object of label keys to strings';
  const keys = Object.keys(value);
  if (!nullable && keys.length > MAX_LABELS) return `must have at most ${MAX_LABELS} keys`;
  for (const key of keys) {
    if (!LABEL_KEY.test(key)) return `key "${key.slice(0, 70)}" must match ${LABEL_KEY.source}`;
    const v = value[key];
    if (v === null && nullable) continue;
    if (typeof v !== 'string') return `${key} must be a string${nullable ? ' or null' : ''}`;
    if (v.length > MAX_LABEL_VALUE_LENGTH)
      return `${key} must be at most ${MAX_LABEL_VALUE_LENGTH} characters`;
    if (isUnstorableText(v)) return `${key} must not contain NUL characters or unpaired surrogates`;
  }
  return null;
}

/** A `label` filter `key:value`, or null when it is not one. */
export function parseLabelFilter(text: string): [string, string] | null {
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  const key = text.slice(0, colon);
  const value = text.slice(colon + 1);
  if (!LABEL_KEY.test(key) || value.length > MAX_LABEL_VALUE_LENGTH || isUnstorableText(value)) return null;
  return [key, value];
}
