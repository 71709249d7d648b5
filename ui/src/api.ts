/** The public API as the dashboard uses it: fetch with the bearer token, problems as ApiProblem errors. */

export const JOB_STATUSES = [
  'pending',
  'running',
  'paused',
  'cancelling',
  'completed',
  'failed',
  'cancelled',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const ITEM_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'skipped'] as const;
export type ItemStatus = (typeof ITEM_STATUSES)[number];

const TERMINAL: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];
export const isTerminal = (status: JobStatus) => TERMINAL.includes(status);

export interface Job {
  id: string;
  action: string;
  params: Record<string, unknown>;
  options: Record<string, unknown>;
  status: JobStatus;
  total_items: number;
  succeeded_items: number;
  failed_items: number;
  skipped_items: number;
  progress: number;
  owner: string;
  labels: Record<string, string>;
  /** The job whose failures this one retries. */
  retry_of: string | null;
  error: { code: string; message: string } | null;
  deleted_at: string | null;
  purge_at: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
}

export interface Item {
  seq: number;
  target_id: string;
  data: Record<string, unknown> | null;
  status: ItemStatus;
  attempts: number;
  last_error: { code: string; message: string } | null;
  result: unknown;
  started_at: string | null;
  finished_at: string | null;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface JobCounts {
  by_status: Record<JobStatus, number>;
  total: number;
}

/** An RFC 9457 problem as the API sends it (or one made up for a network failure). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  requestId?: string;
  job_status?: string;
  details?: Record<string, string>;
  [extension: string]: unknown;
}

export class ApiProblem extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title);
    this.name = 'ApiProblem';
  }
}

export const API = '/api/actions/bulk';

/** Called when the API refuses the token (401), so that the page asks for another. */
let onUnauthorized: (problem: Problem) => void = () => undefined;
export function whenUnauthorized(handler: (problem: Problem) => void): void {
  onUnauthorized = handler;
}

/** Any failure as a problem: the API's own, or one that says what went wrong on the way. */
export function asProblem(err: unknown): Problem {
  if (err instanceof ApiProblem) return err.problem;
  if (err instanceof DOMException && err.name === 'AbortError') {
    return { type: 'about:blank', title: 'Cancelled', status: 0, detail: 'The request was cancelled.' };
  }
  return {
    type: 'about:blank',
    title: 'The server cannot be reached',
    status: 0,
    detail: err instanceof Error ? err.message : String(err),
  };
}

/** The problem of a response that is not ok, from its problem+json body when it has one. */
export async function problemOf(res: Response): Promise<Problem> {
  const type = res.headers.get('content-type') ?? '';
  if (/json/.test(type)) {
    try {
      const body = (await res.json()) as Problem;
      if (body && typeof body === 'object' && typeof body.title === 'string') return body;
    } catch {
      // fall through to the status line
    }
  }
  return { type: 'about:blank', title: res.statusText || `HTTP ${res.status}`, status: res.status };
}

type Query = Record<string, string | number | boolean | readonly string[] | undefined>;

function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (Array.isArray(value)) for (const v of value as readonly string[]) params.append(key, v);
    else if (value !== undefined && value !== '') params.set(key, String(value));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export async function request<T>(
  token: string | null,
  method: string,
  path: string,
  options: { query?: Query; body?: unknown; signal?: AbortSignal } = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(withQuery(path, options.query), {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
    cache: 'no-store',
  });
  if (!res.ok) {
    const problem = await problemOf(res);
    if (res.status === 401 && token) onUnauthorized(problem);
    throw new ApiProblem(problem);
  }
  return (await res.json()) as T;
}

/** The same, for a call that answers 202 with a `Location`: the body and where it points. */
async function requestAccepted<T>(
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ body: T; location: string | null }> {
  const headers: Record<string, string> = {
    accept: 'application/json',
    authorization: `Bearer ${token}`,
    'content-type': 'application/json',
  };
  const res = await fetch(path, { method, headers, body: JSON.stringify(body ?? {}), cache: 'no-store' });
  if (!res.ok) {
    const problem = await problemOf(res);
    if (res.status === 401) onUnauthorized(problem);
    throw new ApiProblem(problem);
  }
  return { body: (await res.json()) as T, location: res.headers.get('location') };
}

/**
 * Downloads a response as a file: fetched with the token (a plain link could
 * not carry it), kept as a Blob, and saved under the name its
 * Content-Disposition gives. The whole file passes through the page's memory:
 * for very large exports, curl streams it to disk instead.
 */
export async function download(token: string, path: string, accept: string): Promise<string> {
  const res = await fetch(path, {
    headers: { accept, authorization: `Bearer ${token}` },
    cache: 'no-store',
  });
  if (!res.ok) {
    const problem = await problemOf(res);
    if (res.status === 401) onUnauthorized(problem);
    throw new ApiProblem(problem);
  }
  const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'results';
  const url = URL.createObjectURL(await res.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}

export interface JobFilters {
  status?: JobStatus;
  show_deleted?: boolean;
  owner?: string;
  /** `key:value` each; a job must carry every one. */
  label?: string[];
}

/** A label filter as the API takes it: `key:value`, the key non-empty. */
export const LABEL_FILTER = /^[^:\s]+:.*$/;

/** The calls the dashboard makes, with the token they carry. */
export function client(token: string) {
  return {
    listJobs: (filters: JobFilters, cursor?: string, limit = 50, signal?: AbortSignal) =>
      request<Page<Job>>(token, 'GET', `${API}/jobs`, {
        query: {
          ...filters,
          label: filters.label?.length ? filters.label : undefined,
          show_deleted: filters.show_deleted ? true : undefined,
          cursor,
          limit,
        },
        signal,
      }),
    counts: (owner?: string, signal?: AbortSignal) =>
      request<JobCounts>(token, 'GET', `${API}/job-counts`, { query: { owner }, signal }),
    job: (id: string, signal?: AbortSignal) => request<Job>(token, 'GET', `${API}/jobs/${id}`, { signal }),
    items: (id: string, status: ItemStatus | undefined, cursor?: string, signal?: AbortSignal) =>
      request<Page<Item>>(token, 'GET', `${API}/jobs/${id}/items`, {
        query: { status, cursor, limit: 50 },
        signal,
      }),
    cancel: (id: string) => request<Job>(token, 'POST', `${API}/jobs/${id}/cancel`),
    pause: (id: string) => request<Job>(token, 'POST', `${API}/jobs/${id}/pause`),
    resume: (id: string) => request<Job>(token, 'POST', `${API}/jobs/${id}/resume`),
    retry: (id: string) => requestAccepted<Job>(token, 'POST', `${API}/jobs/${id}/retry`, {}),
    remove: (id: string) =>
      request<{ job_id: string; status: JobStatus; success: boolean }>(token, 'DELETE', `${API}/jobs/${id}`),
    restore: (id: string) => request<Job>(token, 'POST', `${API}/jobs/${id}/restore`),
    exportResults: (id: string, format: 'ndjson' | 'csv') =>
      download(token, `${API}/jobs/${id}/results`, format === 'csv' ? 'text/csv' : 'application/x-ndjson'),
  };
}

export type Client = ReturnType<typeof client>;

export interface DevToken {
  access_token: string;
  expires_in: number;
  scope: string;
}

export const devToken = (sub: string, admin: boolean) =>
  request<DevToken>(null, 'POST', '/api/dev/token', { body: { sub, admin } });
