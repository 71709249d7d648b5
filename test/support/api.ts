import type { Response } from 'supertest';
import type {
  BulkJobItemListResponseDto,
  BulkJobItemResponseDto,
  BulkJobListResponseDto,
  BulkJobResponseDto,
} from '../../src/bulk-jobs/dto/bulk-job-response.dto';
import type { TestApp } from './app';
import { bearer, tokenFor } from './tokens';

export const JOBS = '/api/actions/bulk/jobs';
export const ACTIONS = '/api/actions/bulk/actions';

export const jobBody = (res: Response) => res.body as BulkJobResponseDto;
export const jobListBody = (res: Response) => res.body as BulkJobListResponseDto;
export const itemListBody = (res: Response) => res.body as BulkJobItemListResponseDto;

/** A UUID in the lower case the API writes (ids, generated request ids). */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** RFC 3339 in UTC with milliseconds, as the API writes every timestamp. */
export const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Creates a job through the API and returns its body; fails loudly on anything but 202. */
export async function createJob(
  t: TestApp,
  owner: string,
  body: Record<string, unknown> = { action: 'noop', targets: ['a', 'b'] },
): Promise<BulkJobResponseDto> {
  const res = await t
    .http()
    .post(JOBS)
    .set(bearer(tokenFor(owner)))
    .send(body);
  if (res.status !== 202) throw new Error(`create answered ${res.status}: ${res.text}`);
  return jobBody(res);
}

/** Follows next_cursor from the first page to the last; returns every page. */
export async function listAllPages(
  t: TestApp,
  owner: string,
  query: Record<string, string>,
): Promise<BulkJobResponseDto[][]> {
  return collectPages<BulkJobResponseDto>(t, tokenFor(owner), JOBS, query);
}

/** Every job `token` can list (all its pages, 500 a page), e.g. an admin's or a read-only token's. */
export async function listAll(
  t: TestApp,
  token: string,
  query: Record<string, string> = {},
): Promise<BulkJobResponseDto[]> {
  return (await collectPages<BulkJobResponseDto>(t, token, JOBS, { limit: '500', ...query })).flat();
}

export async function listAllItemPages(
  t: TestApp,
  owner: string,
  jobId: string,
  query: Record<string, string>,
): Promise<BulkJobItemResponseDto[][]> {
  return collectPages<BulkJobItemResponseDto>(t, tokenFor(owner), `${JOBS}/${jobId}/items`, query);
}

async function collectPages<T>(
  t: TestApp,
  token: string,
  path: string,
  query: Record<string, string>,
): Promise<T[][]> {
  const pages: T[][] = [];
  let cursor: string | null = null;
  do {
    const res = await t
      .http()
      .get(path)
      .query(cursor ? { ...query, cursor } : query)
      .set(bearer(token));
    if (res.status !== 200) throw new Error(`${path} answered ${res.status}: ${res.text}`);
    const body = res.body as { items: T[]; next_cursor: string | null };
    pages.push(body.items);
    cursor = body.next_cursor;
    if (pages.length > 100) throw new Error('pagination does not end');
  } while (cursor);
  return pages;
}
