/**
 * What PostgreSQL refuses to store: text cannot hold NUL, and jsonb refuses
 * \u0000 and unpaired surrogates. Checked before a write, so that such a
 * value is a clear refusal (an API 400, an item failure) rather than a
 * failed statement.
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');
// JSON.stringify writes paired surrogates as characters and only unpaired ones as
// escapes; an escape counts only after an even run of backslashes.
const UNSTORABLE_JSON = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

/** True when PostgreSQL would refuse this string as text (or inside jsonb). */
export function isUnstorableText(s: string): boolean {
  return s.includes('\u0000') || LONE_SURROGATE.test(s);
}

/** True when PostgreSQL would refuse this JSON text (JSON.stringify's output) as jsonb. */
export function isUnstorableJsonText(json: string): boolean {
  return UNSTORABLE_JSON.test(json);
}

/** True when PostgreSQL would refuse this value as jsonb. */
export function isUnstorableJson(value: unknown): boolean {
  return isUnstorableJsonText(JSON.stringify(value) ?? '');
}

/** The string with NUL and unpaired surrogates replaced by U+FFFD, so that it can be stored. */
export function toStorableText(s: string): string {
  return isUnstorableText(s) ? s.replaceAll('\u0000', '\ufffd').replace(LONE_SURROGATES, '\ufffd') : s;
}
