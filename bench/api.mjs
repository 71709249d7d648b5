// api: GET /jobs/{id} and DELETE /jobs/{id} (on pre-made terminal jobs) under
// autocannon at 64 connections, against the API process and against the raw
// baseline (bench/baseline-api.mjs: node:http + pg, same token check and SQL).
import { fork } from 'node:child_process';
import { join } from 'node:path';
import process from 'node:process';
import autocannon from 'autocannon';
import {
  cpuMsOf,
  freePort,
  JOBS_PATH,
  JWT_SECRET,
  profileFlags,
  ROOT,
  round,
  startApi,
  tokenFor,
  withClient,
} from './support.mjs';

const CONNECTIONS = 64;
/**
 * The jobs belong to this many owners, and each request carries its job's
 * owner's token: many clients, as an API at this rate serves, each under the
 * service's default per-principal rate limit (which stays on).
 */
const OWNERS = 256;
const tokens = Array.from({ length: OWNERS }, (_, k) => `Bearer ${tokenFor(`bench-api-${k}`)}`);

/** Inserts n completed jobs, job g owned by bench-api-(g mod OWNERS); returns [id, owner index] pairs. */
async function terminalJobs(c, n) {
  const { rows } = await c.query(
    `INSERT INTO bulk_jobs (id, owner, action, status, total_items, succeeded_items, created_at, started_at,
                            finished_at, claimable_at)
     SELECT gen_random_uuid(), 'bench-api-' || (g % $1), 'noop', 'completed', 10, 10, now() - g * interval '1 ms',
            now(), now(), NULL
     FROM generate_series(1, $2) g
     RETURNING id, owner`,
    [OWNERS, n],
  );
  return rows.map((r) => [r.id, Number(r.owner.slice('bench-api-'.length))]);
}

async function startBaseline(url, profile) {
  const port = await freePort();
  const child = fork(join(ROOT, 'bench', 'baseline-api.mjs'), [], {
    execArgv: profileFlags(profile, 'api-baseline'),
    env: { ...process.env, DATABASE_URL: url, AUTH_JWT_SECRET: JWT_SECRET, PORT: String(port) },
    stdio: 'inherit',
  });
  await new Promise((res, rej) => {
    child.once('message', res);
    child.once('exit', (code) => rej(new Error(`the baseline server exited ${code}`)));
  });
  return {
    base: `http://127.0.0.1:${port}`,
    pid: child.pid,
    stop: () =>
      new Promise((r) => {
        child.once('exit', r);
        child.kill('SIGTERM');
      }),
  };
}

/** One autocannon run; `pick` gives the job of each request; `pid` is the server's process. */
async function cannon({ base, pid }, method, pick, seconds) {
  const cpu0 = cpuMsOf(pid);
  const result = await autocannon({
    url: base,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [
      {
        method,
        setupRequest: (req) => {
          const [id, owner] = pick();
          return {
            ...req,
            path: `${JOBS_PATH}/${id}`,
            headers: { ...req.headers, authorization: tokens[owner] },
          };
        },
      },
    ],
  });
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(
      `${method} ${base}: ${result.non2xx} non-2xx answers, ${result.errors} errors (${JSON.stringify(result.statusCodeStats)})`,
    );
  }
  return {
    req_per_s: round(result.requests.total / result.duration),
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    // The server process's CPU per request: steadier than req/s on a shared machine.
    cpu_us_per_req: round(((cpuMsOf(pid) - cpu0) * 1000) / result.requests.total),
  };
}

export async function apiBench({ url, seconds, deletesPerSide, profile, log }) {
  log(`api: ${CONNECTIONS} connections, ${seconds} s per run`);
  const { readIds, serviceDeletes, baselineDeletes } = await withClient(url, async (c) => {
    const readIds = await terminalJobs(c, 10_000);
    const serviceDeletes = await terminalJobs(c, deletesPerSide);
    const baselineDeletes = await terminalJobs(c, deletesPerSide);
    await c.query('VACUUM ANALYZE bulk_jobs');
    return { readIds, serviceDeletes, baselineDeletes };
  });
  const random = () => readIds[Math.floor(Math.random() * readIds.length)];
  const next = (ids) => {
    let i = 0;
    return () => {
      if (i >= ids.length) throw new Error('the delete benchmark ran out of pre-made jobs');
      return ids[i++];
    };
  };

  const api = await startApi(url, { profile });
  const baseline = await startBaseline(url, profile);
  try {
    const warm = Math.max(1, Math.round(seconds / 5));
    await cannon(api, 'GET', random, warm);
    await cannon(baseline, 'GET', random, warm);
    const getService = await cannon(api, 'GET', random, seconds);
    const getBaseline = await cannon(baseline, 'GET', random, seconds);
    const delService = await cannon(api, 'DELETE', next(serviceDeletes), seconds);
    const delBaseline = await cannon(baseline, 'DELETE', next(baselineDeletes), seconds);
    return {
      connections: CONNECTIONS,
      seconds,
      get: {
        service: getService,
        baseline: getBaseline,
        ratio: round(getService.req_per_s / getBaseline.req_per_s, 3),
      },
      delete: {
        service: delService,
        baseline: delBaseline,
        ratio: round(delService.req_per_s / delBaseline.req_per_s, 3),
      },
    };
  } finally {
    await Promise.all([api.stop(), baseline.stop()]);
  }
}
