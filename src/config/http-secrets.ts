/** A secret's name, as `{"$secret": "<name>"}` refers to it. */
export const SECRET_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** What an HTTP header value may hold (RFC 9110 field-value, no line breaks). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]{1,8192}$/;

/**
 * ACTIONS_HTTP_SECRETS: a JSON object of secret name → header value, which
 * `http` jobs refer to instead of sending credentials in their params. The
 * problem, if any, never quotes the text: it holds secrets.
 */
export function parseHttpSecrets(text: string): { secrets: Map<string, string> } | { problem: string } {
  const secrets = new Map<string, string>();
  if (text.trim() === '') return { secrets };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { problem: 'is not valid JSON; it must be a JSON object of secret name to header value' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { problem: 'must be a JSON object of secret name to header value' };
  }
  for (const [name, value] of Object.entries(parsed)) {
    if (!SECRET_NAME.test(name)) {
      return { problem: 'has a name that is not 1 to 64 letters, digits, ".", "_" or "-"' };
    }
    if (typeof value !== 'string' || !HEADER_VALUE.test(value)) {
      return {
        problem: `has a value for "${name}" that is not a header value (a string of 1 to 8192 characters, no line breaks)`,
      };
    }
    secrets.set(name, value);
  }
  return { secrets };
}
