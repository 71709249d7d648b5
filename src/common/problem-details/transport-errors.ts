import { HttpException } from '@nestjs/common';
import type { ConnectionError, FastifyReply, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { buildProblem, mapHttpException, PROBLEM_CONTENT_TYPE, type ProblemMapping } from './problem-details';

/**
 * Errors that Fastify answers before a request reaches Nest, so that the
 * global filter never sees them: its router's (a malformed percent-encoding in
 * the path, an over-long path parameter) and the HTTP parser's (headers too
 * large, bytes that are not HTTP). Fastify's own answers are
 * application/json; these are problem+json like every other error.
 */

const ROUTER_DETAILS: Record<string, [number, string]> = {
  FST_ERR_BAD_URL: [400, 'The request path is not valid: it has a malformed percent-encoding.'],
  FST_ERR_MAX_PARAM_LENGTH: [414, 'A path parameter is longer than this server accepts.'],
};

/** Fastify's `frameworkErrors`: the router refused the URL. */
export function answerFrameworkError(
  error: Error & { code?: string },
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const [status, detail] = ROUTER_DETAILS[error.code ?? ''] ?? [400, 'The request is not valid.'];
  replyWithProblem(request, reply, new HttpException(detail, status));
}

/**
 * Sends the problem of `mapping` for this request: its headers, the status,
 * the problem+json body with the request id. The global filter and the
 * answers given outside Nest (below) both send through here.
 */
export function sendProblem(request: FastifyRequest, reply: FastifyReply, mapping: ProblemMapping): void {
  const requestId = String(request.id);
  const instance = (request.url ?? '/').split('?', 1)[0];
  for (const [name, value] of Object.entries(mapping.headers ?? {})) void reply.header(name, value);
  void reply
    .status(mapping.status)
    .header('content-type', PROBLEM_CONTENT_TYPE)
    .header('x-request-id', requestId)
    .send(buildProblem(mapping, instance, requestId));
}

/**
 * Answers as the filter would, from a Fastify hook or handler. A hook runs on
 * every route, and an error it passes to done() on a route outside Nest
 * (Swagger UI's /docs) reaches Fastify's default handler, not the filter.
 */
export function replyWithProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  exception: HttpException,
): void {
  sendProblem(request, reply, mapHttpException(exception));
}

const PARSER_DETAILS: Record<number, string> = {
  400: 'The request is not valid HTTP.',
  408: 'The request was not received in time.',
  431: 'The request headers are larger than this server accepts.',
};

/**
 * Fastify's `clientErrorHandler`: Node's HTTP parser refused the request, so
 * there is no request object, only the bytes read so far (for the method and
 * path, when they were in them). The connection is closed after the answer.
 */
export function answerClientError(error: ConnectionError, socket: Socket): void {
  // A connection reset by the client, or already gone: there is nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const status =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const packet = packetText(error.rawPacket);
  const method = /^([A-Z]+) /.exec(packet)?.[1];
  // The path only when the whole request line is in the bytes the parser failed on: a cut one
  // would name another resource, and one read in an earlier packet is gone (Node keeps only the
  // last). Unknown, the problem has no `instance`, rather than a path the client did not ask for.
  const line = /^[A-Z]+ (\S+) HTTP\/1\.[01]\r?\n/.exec(packet);
  const instance = line ? line[1].split('?', 1)[0] : undefined;
  const requestId = randomUUID();
  const body = JSON.stringify(
    buildProblem(mapHttpException(new HttpException(PARSER_DETAILS[status], status)), instance, requestId),
  );
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const payload = Buffer.from(method === 'HEAD' ? '' : body, 'utf8');
  const response =
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `X-Request-Id: ${requestId}\r\n` +
    'Connection: close\r\n\r\n';
  // Bytes, not a string: the server's sockets encode strings as latin1, which would garble the path.
  socket.end(Buffer.concat([Buffer.from(response, 'latin1'), payload]));
}

/** The bytes the parser had read; Node hands a Buffer, whatever Fastify's types say. */
function packetText(packet: unknown): string {
  if (Buffer.isBuffer(packet)) return packet.toString('latin1');
  const data = (packet as { data?: unknown } | undefined)?.data;
  return Array.isArray(data) ? Buffer.from(data as number[]).toString('latin1') : '';
}
