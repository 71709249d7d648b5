// A consumer of the API written only against the types that openapi-typescript generates from
// /docs-json (./openapi.d.ts, made by test/typed-client.e2e-spec.ts), with openapi-fetch as the
// client. It creates a job, is refused its delete while the job runs (a 409 problem), polls the
// job until it finishes, then deletes it. It prints what it saw as one JSON line.
import createClient from 'openapi-fetch';
import type { components, paths } from './openapi';

type Job = components['schemas']['BulkJobResponseDto'];

const FINISHED: readonly Job['status'][] = ['completed', 'failed', 'cancelled'];

async function main(): Promise<void> {
  const client = createClient<paths>({
    baseUrl: process.env.API_URL,
    headers: { Authorization: `Bearer ${process.env.API_TOKEN}` },
  });

  const created = await client.POST('/api/actions/bulk/jobs', {
    body: { action: 'simulate', targets: ['user-1', 'user-2', { id: 'user-3' }], params: { delay_ms: 200 } },
  });
  if (!created.data) throw new Error(`create answered ${created.response.status}`);
  let job: Job = created.data;

  // Too early: the job is pending or running, so the service refuses with a problem.
  const refused = await client.DELETE('/api/actions/bulk/jobs/{id}', { params: { path: { id: job.id } } });
  if (refused.response.status !== 409 || !refused.error || !('job_status' in refused.error)) {
    throw new Error(`an early delete answered ${refused.response.status}, not a 409 problem`);
  }
  const conflict = {
    status: refused.response.status,
    type: refused.error.type,
    title: refused.error.title,
    job_status: refused.error.job_status,
  };

  const deadline = Date.now() + 30_000;
  while (!FINISHED.includes(job.status)) {
    if (Date.now() > deadline) throw new Error(`job ${job.id} still ${job.status} after 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const polled = await client.GET('/api/actions/bulk/jobs/{id}', { params: { path: { id: job.id } } });
    if (!polled.data) throw new Error(`get answered ${polled.response.status}`);
    job = polled.data;
  }

  const deleted = await client.DELETE('/api/actions/bulk/jobs/{id}', { params: { path: { id: job.id } } });
  if (!deleted.data) throw new Error(`delete answered ${deleted.response.status}`);

  const again = await client.DELETE('/api/actions/bulk/jobs/{id}', { params: { path: { id: job.id } } });
  const gone = again.error ? { status: again.response.status, type: again.error.type } : null;

  console.log(
    JSON.stringify({
      created: { id: created.data.id, status: created.data.status, total_items: created.data.total_items },
      conflict,
      finished: { status: job.status, progress: job.progress, succeeded_items: job.succeeded_items },
      deleted: deleted.data,
      gone,
    }),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
