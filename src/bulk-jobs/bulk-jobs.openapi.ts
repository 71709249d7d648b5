import type { OpenAPIObject } from '@nestjs/swagger';

const NDJSON_EXAMPLE =
  '{"action":"noop","params":{}}\n"user-1"\n"user-2"\n{"id":"user-3","data":{"vip":true}}\n';

/**
 * Adds the streamed (application/x-ndjson) form of the create request, which a
 * decorator cannot express: its body is lines, not one JSON schema.
 */
export function documentStreamingCreate(document: OpenAPIObject): void {
  const operation = document.paths['/api/actions/bulk/jobs']?.post;
  const body = operation?.requestBody;
  if (!body || !('content' in body)) return;
  body.content['application/x-ndjson'] = {
    schema: {
      type: 'string',
      description:
        'Newline-delimited JSON. Line 1: the job spec { "action", "params"?, "options"? }. Every further line: one ' +
        'target, a JSON string id (1–512 characters) or { "id", "data"? }. The targets are streamed into the ' +
        'database in one transaction, up to BULK_JOBS_MAX_TARGETS; BODY_LIMIT_BYTES does not apply. A bad line is a ' +
        '400 problem whose `details` name the line (`line N`), and nothing is stored.',
    },
    example: NDJSON_EXAMPLE,
  };
}

export const EVENTS_DESCRIPTION =
  'Server-Sent Events (text/event-stream) with the live progress of one job. The job is looked up as GET ' +
  '/jobs/{id} does (same scope and owner rules) before the stream starts, so an unknown job is a 404 problem, ' +
  'not a stream. Events: `progress` with the job (the GET representation) when the stream opens and whenever ' +
  'the job changes, at most one per SSE_PROGRESS_INTERVAL_MS (250 ms by default); `end` with the job once it ' +
  'is completed, failed or cancelled, after which the server closes the stream (an already finished job gets ' +
  'only `end`); `problem` with a 404 problem if the job is purged meanwhile. Each event has an `id` that names ' +
  'the job state: a client reconnecting with Last-Event-ID gets the next change rather than a repeat. A ' +
  '`: heartbeat` comment comes every SSE_HEARTBEAT_MS (15 s by default). EventSource reconnects whenever a ' +
  'stream closes, so close it on `end` and `problem`.';

export const EVENTS_EXAMPLE =
  'id: 4hD2kq0W3mYbQv1x\nevent: progress\ndata: {"id":"8d7c0d1e-5b1f-4c55-9d8e-1f2a3b4c5d6e","status":"running",' +
  '"total_items":1000,"succeeded_items":420,"failed_items":3,"skipped_items":0,"progress":0.423,"…":"…"}\n\n' +
  ': heartbeat\n\n' +
  'id: Zr9sT1uV2wX3yA4b\nevent: end\ndata: {"id":"8d7c0d1e-5b1f-4c55-9d8e-1f2a3b4c5d6e","status":"completed",' +
  '"total_items":1000,"succeeded_items":997,"failed_items":3,"skipped_items":0,"progress":1,"…":"…"}\n\n';
