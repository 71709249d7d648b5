import type { OpenAPIObject } from '@nestjs/swagger';

const NDJSON_EXAMPLE = '{"action":"noop","params":{}}\n"user-1"\n"user-2"\n{"id":"user-3","data":{"vip":true}}\n';

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
