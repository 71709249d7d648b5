/** What a credential header a client sent as a literal shows in every representation of its job. */
export const REDACTED = '[REDACTED]';

/**
 * Header names that carry credentials: the standard ones, and any name that
 * says it holds a key, a token, a secret, a password or a session
 * (X-Api-Key, X-Auth-Token, X-Session-Id, …). Case-insensitive.
 */
const CREDENTIAL_NAME =
  /^(authorization|proxy-authorization|cookie)$|key|token|secret|passw|session|auth|cookie|credential/i;

export function isCredentialHeader(name: string): boolean {
  return CREDENTIAL_NAME.test(name);
}

/** `{"$secret": "name"}`: a header value that names a server-side secret instead of holding it. */
export interface SecretRef {
  $secret: string;
}

export function isSecretRef(value: unknown): value is SecretRef {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    typeof (value as { $secret?: unknown }).$secret === 'string'
  );
}

/**
 * A job's params as every response shows them: the values of credential
 * headers in `params.headers` (the `http` action's, or any action's that
 * takes headers so) replaced by REDACTED. A reference to a server-side secret
 * is shown as it is: it holds a name, not the secret. The stored params are
 * untouched, so that the job still sends what it was given.
 */
export function redactParams(params: Record<string, unknown>): Record<string, unknown> {
  const headers = params.headers;
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) return params;
  let redacted: Record<string, unknown> | undefined;
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    if (!isCredentialHeader(name) || isSecretRef(value) || value === REDACTED) continue;
    redacted ??= { ...(headers as Record<string, unknown>) };
    redacted[name] = REDACTED;
  }
  return redacted ? { ...params, headers: redacted } : params;
}
