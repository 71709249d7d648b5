import { API, problemOf, type Job, type Problem } from './api';

export interface JobStreamHandlers {
  progress(job: Job): void;
  end(job: Job): void;
  /** The stream could not be opened or was refused: a problem (401, 404, 429 …). */
  problem(problem: Problem): void;
}

/**
 * Follows one job's Server-Sent Events (GET /jobs/{id}/events). EventSource
 * cannot send an Authorization header, so the stream is read with fetch and
 * parsed here. A stream that breaks is reopened with Last-Event-ID (the
 * server then sends the next change, not a repeat); `end` and problems close
 * it for good. Returns the function that stops it.
 */
export function followJob(token: string, id: string, handlers: JobStreamHandlers): () => void {
  const abort = new AbortController();
  let lastEventId: string | undefined;
  let done = false;

  const dispatch = (event: string, data: string, eventId: string | undefined) => {
    if (eventId) lastEventId = eventId;
    if (event === 'progress') handlers.progress(JSON.parse(data) as Job);
    else if (event === 'end') {
      done = true;
      handlers.end(JSON.parse(data) as Job);
    } else if (event === 'problem') {
      done = true;
      handlers.problem(JSON.parse(data) as Problem);
    }
  };

  const run = async () => {
    for (let attempt = 0; !done && !abort.signal.aborted; attempt++) {
      try {
        const headers: Record<string, string> = {
          authorization: `Bearer ${token}`,
          accept: 'text/event-stream',
        };
        if (lastEventId) headers['last-event-id'] = lastEventId;
        const res = await fetch(`${API}/jobs/${id}/events`, {
          headers,
          signal: abort.signal,
          cache: 'no-store',
        });
        if (!res.ok || !res.body) {
          done = true;
          handlers.problem(await problemOf(res));
          return;
        }
        attempt = 0;
        await readEvents(res.body, dispatch);
      } catch (err) {
        if (abort.signal.aborted) return;
        void err;
      }
      // Closed without `end`: the server restarted or the network dropped. Back off a little, then reopen.
      if (!done) await sleep(Math.min(1000 * 2 ** attempt, 10_000), abort.signal);
    }
  };
  void run();
  return () => abort.abort();
}

/** Splits the stream into events (text/event-stream: fields, a blank line ends an event). */
async function readEvents(
  body: ReadableStream<Uint8Array>,
  dispatch: (event: string, data: string, id: string | undefined) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event = 'message';
  let data: string[] = [];
  let id: string | undefined;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let newline: number;
    while ((newline = buffer.search(/\r?\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer[newline] === '\r' ? 2 : 1));
      if (line === '') {
        if (data.length > 0) dispatch(event, data.join('\n'), id);
        event = 'message';
        data = [];
        id = undefined;
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const raw = colon < 0 ? '' : line.slice(colon + 1);
        const text = raw.startsWith(' ') ? raw.slice(1) : raw;
        if (field === 'event') event = text;
        else if (field === 'data') data.push(text);
        else if (field === 'id') id = text;
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
