// api: GET /jobs/{id} and DELETE /jobs/{id} (on pre-made terminal jobs) under
// autocannon at 64 connections, against the API process and against the raw
// baseline (bench/baseline-api.mjs: node:http + pg, same token check and SQL).
// With `floors`, also against the same logic served by a bare Fastify app and by
// a bare NestJS app on Fastify (the frameworks' floors), all in one ABBA rotation.
import { fork } from 'node:child_process';
import { join } from 'node:path';
import process from 'node:process';
import autocannon from 'autocannon';
import {
  cpuMsOf,
  cpuSplitOf,
  freePort,
  JOBS_PATH,
  JWT_SECRET,
  machineCpuMs,
  percentile,
  profileFlags,
  ROOT,
  round,
  startApi,
  tokenFor,
  tracked,
  withClient,
} from './support.mjs';

const CONNECTIONS = 64;
/** Alternating runs per side and method; `seconds` is split among them. */
const ROUNDS = 4;
/** The seconds of one run: autocannon ends a run on a whole second (asked for 2.5 s, it runs 3). */
const runSeconds = (seconds) => Math.max(1, Math.ceil(seconds / ROUNDS));
/** DELETEs a second that the jobs made for each side must outlast: several times what two cores serve. */
const DELETES_PER_SECOND = 25_000;
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

/** The servers of bench/baseline-api.mjs, by name in the results: the raw one, then the floors. */
const BASELINES = { baseline: 'http', fastify: 'fastify', nest: 'nest' };
const PROFILE_NAMES = { baseline: 'api-baseline', fastify: 'api-fastify-floor', nest: 'api-nest-floor' };

async function startBaseline(url, profile, name = 'baseline') {
  const port = await freePort();
  const child = tracked(
    fork(join(ROOT, 'bench', 'baseline-api.mjs'), [], {
      execArgv: profileFlags(profile, PROFILE_NAMES[name]),
      env: {
        ...process.env,
        DATABASE_URL: url,
        AUTH_JWT_SECRET: JWT_SECRET,
        PORT: String(port),
        BASELINE_SERVER: BASELINES[name],
      },
      stdio: 'inherit',
    }),
  );
  await new Promise((res, rej) => {
    child.once('message', res);
    child.once('exit', (code) => rej(new Error(`the ${name} server exited ${code}`)));
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

/** Requests answered, by server process (warm-ups included). */
const answered = new Map();

/**
 * Reservations the per-principal rate limit has made in the database (each one
 * inserts or updates a row of rate_limit_windows; a refusal writes none, and
 * the benchmark has none): the round trips it adds to the requests.
 */
async function reservations(url) {
  return withClient(url, async (c) => {
    const { rows } = await c.query(
      `SELECT COALESCE(sum(n_tup_ins + n_tup_upd), 0)::int AS n FROM pg_stat_user_tables WHERE relname = 'rate_limit_windows'`,
    );
    return rows[0].n;
  });
}

/** One autocannon run; `pick` gives the job of each request; `pid` is the server's process. */
async function cannon({ base, pid }, method, pick, seconds) {
  const server0 = cpuSplitOf(pid);
  const machine0 = machineCpuMs();
  const client0 = cpuMsOf(process.pid);
  const latencies = [];
  // An error of `pick` (no job left) stops the run and is thrown once it has ended: thrown inside
  // autocannon, it would end the process with the servers still running.
  let failure;
  const instance = autocannon({
    url: base,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [
      {
        method,
        setupRequest: (req) => {
          if (failure) return req;
          let id, owner;
          try {
            [id, owner] = pick();
          } catch (err) {
            failure = err;
            instance.stop();
            return req;
          }
          return {
            ...req,
            path: `${JOBS_PATH}/${id}`,
            headers: { ...req.headers, authorization: tokens[owner] },
          };
        },
      },
    ],
  });
  instance.on('response', (_client, _status, _bytes, responseTime) => latencies.push(responseTime));
  const result = await instance;
  if (failure) throw failure;
  answered.set(pid, (answered.get(pid) ?? 0) + result.requests.total);
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(
      `${method} ${base}: ${result.non2xx} non-2xx answers, ${result.errors} errors (${JSON.stringify(result.statusCodeStats)})`,
    );
  }
  return {
    requests: result.requests.total,
    seconds: result.duration,
    bytes: result.throughput.total,
    latencies,
    ...since(server0, cpuSplitOf(pid), machine0, machineCpuMs()),
    clientCpuMs: cpuMsOf(process.pid) - client0,
  };
}

/** A run's CPU: the server's (user, system, both) and the whole machine's (busy, idle). */
function since(server0, server1, machine0, machine1) {
  const serverUserMs = server1.userMs - server0.userMs;
  const serverSystemMs = server1.systemMs - server0.systemMs;
  return {
    serverCpuMs: serverUserMs + serverSystemMs,
    serverUserMs,
    serverSystemMs,
    machineBusyMs: machine1.busyMs - machine0.busyMs,
    machineIdleMs: machine1.idleMs - machine0.idleMs,
  };
}

/** The runs of one side, summed: req/s, exact latency percentiles over every response, CPU per request. */
function summarize(runs) {
  const requests = runs.reduce((a, r) => a + r.requests, 0);
  const seconds = runs.reduce((a, r) => a + r.seconds, 0);
  const latencies = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const perRequest = (field) => round((runs.reduce((a, r) => a + r[field], 0) * 1000) / requests);
  return {
    req_per_s: round(requests / seconds),
    p50_ms: round(percentile(latencies, 50), 1),
    p99_ms: round(percentile(latencies, 99), 1),
    // The server process's CPU per request: steadier than req/s on a shared machine.
    cpu_us_per_req: perRequest('serverCpuMs'),
    cpu_user_us_per_req: perRequest('serverUserMs'),
    cpu_system_us_per_req: perRequest('serverSystemMs'),
    // autocannon's own CPU per request (it shares the machine with both servers).
    client_cpu_us_per_req: perRequest('clientCpuMs'),
    // Every process's CPU per request, summed over the cores (the database's, autocannon's, the
    // server's, the kernel's), and the cores' idle time: at 64 connections the cores are nearly
    // all busy, so req/s follows the machine's CPU per request more than the server's alone.
    machine_busy_us_per_req: perRequest('machineBusyMs'),
    machine_idle_us_per_req: perRequest('machineIdleMs'),
    response_bytes: round(runs.reduce((a, r) => a + r.bytes, 0) / requests),
  };
}

/**
 * All servers in ROUNDS alternating runs, in their order and then in reverse
 * (service, baseline, baseline, service, … with two: ABBA order; ABCD DCBA …
 * with more), so that a load that comes and goes on the machine weighs on all
 * alike; each server's figures are over all its runs. `ratio` is the service's
 * req/s over the raw server's; the floors' ratios are read in run.mjs (apiFloors).
 */
async function compare(servers, method, pickFor, seconds) {
  const names = Object.keys(servers);
  const runs = Object.fromEntries(names.map((name) => [name, []]));
  const each = runSeconds(seconds);
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const name of order) runs[name].push(await cannon(servers[name], method, pickFor(name), each));
  }
  const result = { service: summarize(runs.service), baseline: summarize(runs.baseline) };
  const floors = names.filter((name) => name !== 'service' && name !== 'baseline');
  return {
    ...result,
    ratio: round(result.service.req_per_s / result.baseline.req_per_s, 3),
    ...(floors.length > 0 && {
      floors: Object.fromEntries(floors.map((name) => [name, summarize(runs[name])])),
    }),
  };
}

export async function apiBench({ url, seconds, deletesPerSide, floors = false, profile, log }) {
  const names = ['service', 'baseline', ...(floors ? ['fastify', 'nest'] : [])];
  log(
    `api: ${CONNECTIONS} connections, ${ROUNDS} alternating runs of ${runSeconds(seconds)} s per server and method` +
      (floors ? ` (servers: ${names.join(', ')})` : ''),
  );
  const { readIds, deleteIds } = await withClient(url, async (c) => {
    const readIds = await terminalJobs(c, 10_000);
    const deleteIds = {};
    const deletes = Math.max(deletesPerSide, ROUNDS * runSeconds(seconds) * DELETES_PER_SECOND);
    for (const name of names) deleteIds[name] = await terminalJobs(c, deletes);
    await c.query('VACUUM ANALYZE bulk_jobs');
    return { readIds, deleteIds };
  });
  const random = () => readIds[Math.floor(Math.random() * readIds.length)];
  const next = (ids) => {
    let i = 0;
    return () => {
      if (i >= ids.length) throw new Error('the delete benchmark ran out of pre-made jobs');
      return ids[i++];
    };
  };

  const reservedBefore = await reservations(url);
  const servers = { service: await startApi(url, { profile }) };
  let result;
  try {
    for (const name of names.slice(1)) servers[name] = await startBaseline(url, profile, name);
    const warm = Math.max(1, Math.round(seconds / 5));
    for (const name of names) await cannon(servers[name], 'GET', random, warm);
    const get = await compare(servers, 'GET', () => random, seconds);
    const deletes = Object.fromEntries(names.map((name) => [name, next(deleteIds[name])]));
    const del = await compare(servers, 'DELETE', (name) => deletes[name], seconds);
    result = { connections: CONNECTIONS, seconds, rounds: ROUNDS, get, delete: del };
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.stop()));
  }
  const api = servers.service;
  // Read once the API process has exited: its connections' backends report their counts as they end.
  const reserved = (await reservations(url)) - reservedBefore;
  const requests = answered.get(api.pid) ?? 0;
  const perThousand = round((reserved * 1000) / Math.max(1, requests), 1);
  log(
    `api: the rate limit made ${reserved} reservations for ${requests} requests (${perThousand} per 1,000)`,
  );
  return {
    ...result,
    rate_limit: { reservations: reserved, requests, reservations_per_1000_requests: perThousand },
  };
}
