import { Injectable } from '@nestjs/common';
import { Env } from '../config/env';
import { parseHttpSecrets, SECRET_NAME } from '../config/http-secrets';
import { ActionFailure, BulkAction, type ActionContext, type BulkActionHandler } from './bulk-action';
import { isCredentialHeader, isSecretRef, type SecretRef } from './credential-headers';
import {
  expandUrlTemplate,
  isAllowedUrl,
  parseAllowedHosts,
  urlTemplateProblem,
  type AllowedHost,
} from './http-url';
import { parseRetryAfter } from './retry-after';
import { serializeSfString } from './structured-field';

export interface HttpParams {
  url: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A value, or a reference to a secret of ACTIONS_HTTP_SECRETS. */
  headers: Record<string, string | SecretRef>;
  timeout_ms?: number;
}

/** The JSON Schema of the http action's params (GET /actions shows it). */
export const HTTP_PARAMS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  properties: {
    url: {
      type: 'string',
      minLength: 1,
      maxLength: 2048,
      description: 'An http(s) URL; {id} in its path or query becomes the URL-encoded target id.',
      examples: ['https://api.example.com/users/{id}/notify'],
    },
    method: { type: 'string', enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'], default: 'POST' },
    headers: {
      type: 'object',
      additionalProperties: {
        oneOf: [
          { type: 'string', maxLength: 8192 },
          {
            type: 'object',
            additionalProperties: false,
            required: ['$secret'],
            properties: { $secret: { type: 'string', pattern: SECRET_NAME.source } },
            description: 'The value of this secret of ACTIONS_HTTP_SECRETS, put in when the request is sent.',
          },
        ],
      },
      maxProperties: 50,
      default: {},
      description:
        'Extra request headers. Send credentials by reference: {"$secret": "name"} is replaced, when the ' +
        'request is sent, by the value the server keeps under that name in ACTIONS_HTTP_SECRETS, and a ' +
        'response shows the reference, never the value. A credential sent as a literal value (Authorization, ' +
        'Proxy-Authorization, Cookie, or a name with key, token, secret, password, session, auth or ' +
        'credential in it) is sent as given, but shown as "[REDACTED]" in every response.',
      examples: [{ Authorization: { $secret: 'crm-token' }, 'X-Trace': 'import-2026-11' }],
    },
    timeout_ms: {
      type: 'integer',
      minimum: 100,
      maximum: 600_000,
      description: 'Timeout of one request (redirects included); default ACTIONS_HTTP_TIMEOUT_MS.',
    },
  },
};

const MAX_REDIRECTS = 5;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);
/** Set by the action itself, or by the HTTP client: a job may not override them. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'content-type',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'idempotency-key',
]);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * One HTTP request per target. Only hosts in ACTIONS_HTTP_ALLOWED_HOSTS are
 * reached: the URL template is checked when the job is created, every URL
 * (and every redirect) again before it is requested, and redirects are
 * followed by hand so that none can lead off the list.
 */
@BulkAction()
@Injectable()
export class HttpAction implements BulkActionHandler<HttpParams> {
  readonly name = 'http';
  readonly description =
    'Sends one HTTP request per target to a URL template ({id} becomes the URL-encoded target id), with the ' +
    "target's data as JSON body. 2xx succeeds; 409 (a repeat of a request still in progress), 429, 5xx and " +
    'timeouts are retried (honouring Retry-After); other 4xx fail. Only hosts in ACTIONS_HTTP_ALLOWED_HOSTS can be called. Each request carries an Idempotency-Key ' +
    'header, a quoted string "<job id>:<seq>" that is the same on every attempt of an item and differs between ' +
    'items and between jobs: a downstream that stores it with the effect and answers a repeat with the first ' +
    'result applies each item once, though a timeout, a 5xx or a worker crash makes the request run again.';
  readonly paramsSchema = HTTP_PARAMS_SCHEMA;

  private readonly allowed: AllowedHost[];
  /** ACTIONS_HTTP_SECRETS, validated at start-up (loadEnv); never logged, never in a response. */
  private readonly secrets: Map<string, string>;

  constructor(private readonly env: Env) {
    this.allowed = parseAllowedHosts(env.ACTIONS_HTTP_ALLOWED_HOSTS);
    const parsed = parseHttpSecrets(env.ACTIONS_HTTP_SECRETS);
    this.secrets = 'secrets' in parsed ? parsed.secrets : new Map<string, string>();
  }

  validateParams(params: HttpParams): Record<string, string> | null {
    const details: Record<string, string> = {};
    const problem = urlTemplateProblem(params.url, this.allowed);
    if (problem) details['params.url'] = problem;
    for (const [name, value] of Object.entries(params.headers ?? {})) {
      if (!HEADER_NAME.test(name)) details[`params.headers.${name}`] = 'is not a valid header name';
      else if (RESERVED_HEADERS.has(name.toLowerCase()))
        details[`params.headers.${name}`] = 'is set by the action';
      else if (isSecretRef(value) && !this.secrets.has(value.$secret))
        details[`params.headers.${name}`] =
          `refers to the secret "${value.$secret}", which this server does not have (ACTIONS_HTTP_SECRETS)`;
    }
    return Object.keys(details).length > 0 ? details : null;
  }

  /**
   * The request headers: references put in from ACTIONS_HTTP_SECRETS. The
   * names of the credential headers are returned too, for the redirects.
   */
  private headersOf(params: HttpParams): { headers: Record<string, string>; credentials: Set<string> } {
    const headers: Record<string, string> = {};
    const credentials = new Set<string>();
    for (const [name, value] of Object.entries(params.headers ?? {})) {
      if (isSecretRef(value)) {
        const secret = this.secrets.get(value.$secret);
        // Checked at create, but this worker may run with other settings than the API that took the job.
        if (secret === undefined) {
          throw new ActionFailure(
            'HTTP_SECRET_UNKNOWN',
            `header ${name} refers to the secret "${value.$secret}", which ACTIONS_HTTP_SECRETS of this worker does not have`,
            false,
          );
        }
        headers[name] = secret;
        credentials.add(name);
      } else {
        headers[name] = value;
        if (isCredentialHeader(name)) credentials.add(name);
      }
    }
    return { headers, credentials };
  }

  async execute(ctx: ActionContext<HttpParams>): Promise<unknown> {
    const { params } = ctx;
    let url: URL;
    try {
      url = new URL(expandUrlTemplate(params.url, ctx.targetId));
    } catch (err) {
      throw new ActionFailure('HTTP_INVALID_URL', (err as Error).message, false);
    }
    if (!isAllowedUrl(url, this.allowed)) {
      throw new ActionFailure(
        'HTTP_HOST_NOT_ALLOWED',
        `host ${url.host} is not in ACTIONS_HTTP_ALLOWED_HOSTS`,
        false,
      );
    }
    const timeoutMs = params.timeout_ms ?? this.env.ACTIONS_HTTP_TIMEOUT_MS;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([ctx.signal, timeout]);

    let method: string = params.method ?? 'POST';
    const { headers, credentials } = this.headersOf(params);
    headers['idempotency-key'] = serializeSfString(ctx.idempotencyKey);
    let body: string | undefined;
    if (BODY_METHODS.has(method)) {
      body = JSON.stringify(ctx.data ?? {});
      headers['content-type'] = 'application/json';
    }

    for (let redirects = 0; ; redirects++) {
      let res: Response;
      try {
        res = await fetch(url, { method, headers, body, redirect: 'manual', signal });
      } catch (err) {
        throw this.requestFailure(err, ctx.signal, timeout, timeoutMs, method, url);
      }
      // The body is never used: cancelling it frees the connection without reading an unbounded stream.
      await res.body?.cancel().catch(() => undefined);
      const status = res.status;
      const location = res.headers.get('location');
      if (status >= 300 && status < 400 && location !== null) {
        if (redirects >= MAX_REDIRECTS) {
          throw new ActionFailure(
            'HTTP_TOO_MANY_REDIRECTS',
            `more than ${MAX_REDIRECTS} redirects from ${describe(method, url)}`,
            false,
          );
        }
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          throw new ActionFailure(
            'HTTP_INVALID_REDIRECT',
            `${describe(method, url)} redirected to an invalid URL`,
            false,
          );
        }
        if (!isAllowedUrl(next, this.allowed)) {
          throw new ActionFailure(
            'HTTP_REDIRECT_NOT_ALLOWED',
            `${describe(method, url)} redirected to ${next.protocol}//${next.host}, which is not in ACTIONS_HTTP_ALLOWED_HOSTS`,
            false,
          );
        }
        if (status === 303 || ((status === 301 || status === 302) && method === 'POST')) {
          method = 'GET';
          body = undefined;
          delete headers['content-type'];
        }
        // Credentials are for the origin the job named, never for one a redirect names.
        if (next.origin !== url.origin) for (const name of credentials) delete headers[name];
        url = next;
        continue;
      }
      if (status >= 200 && status < 300) return { status };
      const message = `${describe(method, url)} answered ${status}${res.statusText ? ` ${res.statusText}` : ''}`;
      // 409 too: the IETF Idempotency-Key draft answers a repeat that arrives while the first
      // request with its key is still being processed with a 409; a later try gets its result.
      if (status === 429 || status === 409 || status >= 500) {
        throw new ActionFailure(
          `HTTP_${status}`,
          message,
          true,
          parseRetryAfter(res.headers.get('retry-after'), Date.now()),
        );
      }
      throw new ActionFailure(`HTTP_${status}`, message, false);
    }
  }

  private requestFailure(
    err: unknown,
    outer: AbortSignal,
    timeout: AbortSignal,
    timeoutMs: number,
    method: string,
    url: URL,
  ): unknown {
    // Shutdown or a lost lease: not the target's fault; the worker decides.
    if (outer.aborted) return err;
    if (timeout.aborted) {
      return new ActionFailure(
        'HTTP_TIMEOUT',
        `${describe(method, url)} got no answer within ${timeoutMs} ms`,
        true,
      );
    }
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (err as Error).message;
    return new ActionFailure('HTTP_NETWORK_ERROR', `${describe(method, url)} failed: ${reason}`, true);
  }
}

/** The request without its query string, which may carry secrets. */
function describe(method: string, url: URL): string {
  return `${method} ${url.origin}${url.pathname}`;
}
