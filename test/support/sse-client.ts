import { Agent, request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';

export interface ReceivedEvent {
  event: string;
  id: string | undefined;
  data: string;
  /** Arrival time, performance.now(). */
  at: number;
}

export interface ReceivedComment {
  text: string;
  at: number;
}

/** A Server-Sent Events client on node:http that records everything it receives. */
export interface SseClient {
  status: number;
  headers: IncomingHttpHeaders;
  events: ReceivedEvent[];
  comments: ReceivedComment[];
  /** The body as received, for responses that are not event streams. */
  text: () => string;
  /** True once the server ended the response. */
  ended: () => boolean;
  /** Resolves once the server has ended the response (or the connection is gone). */
  closed: Promise<void>;
  /** Waits for the first event (from `from` on) that satisfies `match`. */
  waitForEvent: (
    match: (e: ReceivedEvent) => boolean,
    timeoutMs?: number,
    from?: number,
  ) => Promise<ReceivedEvent>;
  /** Waits until the server has ended the response. */
  waitForClose: (timeoutMs?: number) => Promise<void>;
  /** Drops the connection, as a browser tab that is closed. */
  destroy: () => void;
}

/** A fresh agent per caller: many streams at once need as many sockets. */
export const streamAgent = () => new Agent({ keepAlive: false, maxSockets: Infinity });

/** Opens `url` and resolves once the response headers have arrived. */
export function openSse(
  url: string,
  headers: Record<string, string> = {},
  agent: Agent = streamAgent(),
): Promise<SseClient> {
  return new Promise((resolveOpen, rejectOpen) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers }, agent });
    req.on('error', rejectOpen);
    req.on('response', (res: IncomingMessage) => {
      const events: ReceivedEvent[] = [];
      const comments: ReceivedComment[] = [];
      const listeners = new Set<() => void>();
      const notify = () => listeners.forEach((l) => l());
      let raw = '';
      let buffer = '';
      let ended = false;
      let current: { event?: string; id?: string; data: string[] } = { data: [] };

      const onLine = (line: string) => {
        const at = performance.now();
        if (line === '') {
          if (current.data.length > 0 || current.event !== undefined) {
            events.push({
              event: current.event ?? 'message',
              id: current.id,
              data: current.data.join('\n'),
              at,
            });
          }
          current = { data: [] };
          return;
        }
        if (line.startsWith(':')) {
          comments.push({ text: line.slice(1).trim(), at });
          return;
        }
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') current.event = value;
        else if (field === 'id') current.id = value;
        else if (field === 'data') current.data.push(value);
      };

      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        raw += chunk;
        buffer += chunk;
        const lines = buffer.split(/\r\n|\r|\n/);
        buffer = lines.pop() ?? '';
        for (const line of lines) onLine(line);
        notify();
      });
      const closed = new Promise<void>((resolveClosed) => {
        const done = () => {
          ended = true;
          notify();
          resolveClosed();
        };
        res.on('end', done);
        res.on('close', done);
        res.on('error', done);
      });

      const waitUntil = <T>(what: string, probe: () => T | undefined, timeoutMs: number) =>
        new Promise<T>((resolveWait, rejectWait) => {
          const check = () => {
            const value = probe();
            if (value !== undefined) {
              listeners.delete(check);
              clearTimeout(timer);
              resolveWait(value);
            }
          };
          const timer = setTimeout(() => {
            listeners.delete(check);
            rejectWait(
              new Error(
                `timed out after ${timeoutMs} ms waiting for ${what}; received: ${JSON.stringify(events)}`,
              ),
            );
          }, timeoutMs);
          listeners.add(check);
          check();
        });

      resolveOpen({
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        comments,
        text: () => raw,
        ended: () => ended,
        closed,
        waitForEvent: (match, timeoutMs = 30_000, from = 0) =>
          waitUntil('an event', () => events.slice(from).find(match), timeoutMs),
        waitForClose: (timeoutMs = 30_000) =>
          waitUntil('the end of the stream', () => (ended ? true : undefined), timeoutMs).then(
            () => undefined,
          ),
        destroy: () => {
          req.destroy();
          res.destroy();
        },
      });
    });
    req.end();
  });
}
