import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Readable, Transform } from 'node:stream';
import { RequestTimeoutError } from '../common/problem-details/domain-error';

/**
 * Request bodies that stop arriving. A client that sends its headers and then
 * part of a body, or nothing, holds a socket, and a streamed create holds a
 * pooled database connection too; after BODY_IDLE_TIMEOUT_MS without a byte
 * the request is answered with a 408 (RequestTimeoutError, which closes the
 * connection) and whatever it started is rolled back.
 */

/** True when the request announces a body (a length above zero, or chunks). */
function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Bodies that Fastify reads whole before the handler runs (JSON), which is
 * before the token is checked: each chunk must arrive within `idleMs` of the
 * previous one. `isBuffered` names them (by media type); a streamed body's
 * reader watches it itself (chunksWithin), since only it knows when it waits
 * for the client and when the client waits for it.
 */
export function limitBufferedBodyIdleTime(
  fastify: FastifyInstance,
  idleMs: number,
  isBuffered: (request: FastifyRequest) => boolean,
): void {
  fastify.addHook('preParsing', (request, reply, payload, done) => {
    // GET and HEAD bodies are never read.
    if (request.method === 'GET' || request.method === 'HEAD' || !hasBody(request) || !isBuffered(request)) {
      done(null, payload);
      return;
    }
    done(null, watched(payload as IncomingMessage, reply.raw, idleMs));
  });
}

/**
 * The body, passed through as it arrives, failing with a RequestTimeoutError
 * once it has been idle for `idleMs`. The request itself is only unpiped,
 * not destroyed: destroying it would close the socket before the 408 is sent.
 * Fastify reads the body as fast as it comes, so time without a chunk is time
 * the client took. Once the answer is sent, whatever of the body Fastify did
 * not read (it stops at a 413) is read and dropped, as without this watch.
 */
function watched(raw: IncomingMessage, res: ServerResponse, idleMs: number): Transform {
  const timer = setTimeout(() => {
    raw.unpipe(out);
    out.destroy(new RequestTimeoutError(idleMs));
  }, idleMs);
  timer.unref();
  const out = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      timer.refresh();
      callback(null, chunk);
    },
  });
  // Fastify listens for errors while it reads the body; this one is for after it has stopped.
  out.on('error', () => undefined);
  out.once('end', () => clearTimeout(timer));
  // A client that goes away mid-body fails the body, as it would have failed the request unwatched.
  raw.once('error', (err) => out.destroy(err));
  raw.once('close', () => {
    if (!raw.complete) out.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
  });
  res.once('close', () => {
    clearTimeout(timer);
    if (raw.complete || raw.destroyed) return;
    raw.unpipe(out);
    out.destroy();
    raw.resume();
  });
  raw.pipe(out);
  return out;
}

/**
 * The chunks of a streamed body, each of which must arrive within `idleMs`.
 * The clock runs only while the reader waits for the client, never while the
 * client waits for the reader (a COPY that applies back-pressure). Stopping
 * early does not destroy the request (the default of a stream's iterator),
 * which would close the socket before the answer is sent.
 */
export async function* chunksWithin(body: Readable, idleMs: number): AsyncGenerator<Buffer> {
  const chunks = body.iterator({ destroyOnReturn: false });
  let waiting = false;
  let timer: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      waiting = true;
      const idle = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new RequestTimeoutError(idleMs)), idleMs);
      });
      const next = await Promise.race([chunks.next(), idle]).finally(() => clearTimeout(timer));
      waiting = false;
      if (next.done) return;
      yield next.value as Buffer;
    }
  } finally {
    // Timed out, the iterator is still waiting for a chunk, and its return() would wait with it:
    // let it finish in the background, when the chunk comes or the connection closes.
    if (waiting) chunks.return?.(undefined).catch(() => undefined);
    else await chunks.return?.(undefined);
  }
}

/**
 * Reads and discards the rest of a body whose request has been answered,
 * so that a client that sends its whole body before it reads the answer gets
 * it; a body that stops arriving for `idleMs` meanwhile has its connection
 * closed.
 */
export function drainWithin(body: Readable, idleMs: number): void {
  if (body.readableEnded || body.destroyed) return;
  const timer = setTimeout(() => body.destroy(), idleMs);
  timer.unref();
  const refresh = () => timer.refresh();
  const stop = () => {
    clearTimeout(timer);
    body.off('data', refresh);
  };
  body.on('data', refresh);
  body.once('end', stop);
  body.once('close', stop);
  body.resume();
}

/** What Node's HTTP server keeps on a socket while it parses a request on it (not a public API). */
interface ParsedSocket {
  parser?: { remove?: () => void } | null;
}

/**
 * Takes a streamed body out of Node's requestTimeout (REQUEST_TIMEOUT_MS),
 * for this request only: an authenticated upload under the upload caps may
 * take as long as its client needs, and its reader's idle clock
 * (BODY_IDLE_TIMEOUT_MS, chunksWithin) is what bounds it. Node tracks each
 * request's start on the socket's HTTP parser (lib/_http_server.js,
 * checkConnections; src/node_http_parser.cc, ConnectionsList::Expired);
 * `parser.remove()` drops the connection from that list, and the parser puts
 * it back when the next request on the socket begins. Where Node has no such
 * method, the request keeps the server's requestTimeout.
 */
export function exemptFromRequestTimeout(request: Readable): void {
  const socket = (request as Partial<IncomingMessage>).socket as ParsedSocket | undefined;
  socket?.parser?.remove?.();
}
