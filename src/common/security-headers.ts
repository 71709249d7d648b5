import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';

/**
 * The security headers of API responses (JSON, problems, event streams,
 * metrics): the set the OWASP REST Security Cheat Sheet recommends. The
 * headers that only mean something for an HTML document (helmet's other
 * defaults) are left to Swagger UI's pages, which get helmet's full set.
 */
export const API_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
});

/**
 * The response headers helmet sets for these options, computed once. Helmet's
 * headers do not depend on the request (no CSP nonces here), so they are set
 * from this map on every response instead of running helmet's middleware,
 * which parses the policy again on each request.
 */
export function securityHeaders(options: Readonly<HelmetOptions>): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader(name: string, value: unknown) {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader() {},
  };
  let failure: unknown;
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, (err?: unknown) => {
    failure = err;
  });
  if (failure instanceof Error) throw failure;
  if (failure !== undefined) throw new Error('helmet refused its options');
  return Object.freeze(headers);
}
