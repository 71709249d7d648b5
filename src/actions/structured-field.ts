/**
 * Serializes a structured-field String (RFC 8941 §4.1.6): the value in double
 * quotes, with `"` and `\` escaped. The IETF Idempotency-Key header draft
 * defines the header's value as such a string.
 */
export function serializeSfString(value: string): string {
  // Only printable ASCII can be said in an sf-string: failing is what the RFC asks of a serializer.
  if (!/^[\x20-\x7e]*$/.test(value)) {
    throw new TypeError('a structured-field string holds printable ASCII only');
  }
  return `"${value.replace(/[\\"]/g, '\\$&')}"`;
}
