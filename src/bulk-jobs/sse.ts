import type { FastifyReply } from 'fastify';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

export const SSE_CONTENT_TYPE = 'text/event-stream; charset=utf-8';

/** A comment line: clients ignore it, proxies and load balancers see traffic. */
export const SSE_HEARTBEAT = ': heartbeat\n\n';

/**
 * One Server-Sent Events message. The data is one line of JSON:
 * JSON.stringify escapes CR and LF, the only line breaks of the SSE grammar.
 */
export function sseEvent(event: string, id: string | undefined, data: unknown): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * Takes the response over from Fastify and sends the event-stream headers at
 * once, together with those hooks have already set on the reply (X-Request-Id).
 * From here on the caller writes to the returned response and ends it.
 */
export function startEventStream(reply: FastifyReply): ServerResponse {
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value !== undefined) headers[name] = value;
  }
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    ...headers,
    'content-type': SSE_CONTENT_TYPE,
    // no-transform: a compressing proxy would hold events back until its buffer fills.
    'cache-control': 'no-cache, no-transform',
    // nginx buffers proxied responses unless told not to.
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();
  // A write racing a client that just left fails with an 'error' event; its 'close' follows and cleans up.
  res.on('error', () => undefined);
  return res;
}

/** False once the client has gone or the stream was ended: nothing more can be written. */
export function isWritable(res: ServerResponse): boolean {
  return !res.destroyed && !res.writableEnded;
}
