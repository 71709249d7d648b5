import { STATUS_CODES } from 'node:http';
import { expect } from 'expect';
import type { Response } from 'supertest';

export interface ExpectedProblem {
  type?: string;
  title?: string;
  detail?: string | RegExp;
  details?: Record<string, unknown>;
  [extension: string]: unknown;
}

export const LEAKS = [
  /\bat .+:\d+:\d+\)?/,
  /QueryFailedError/,
  /\bSELECT\b|\bUPDATE\b|\bINSERT\b/,
  /node_modules/,
  /\bpg\b.*error/i,
];

/**
 * Checks the whole problem+json envelope of an error response: media type,
 * every required member, their agreement with the response (status, path,
 * request id), the legacy members, and that nothing internal leaks.
 */
export function expectProblem(res: Response, status: number, expected: ExpectedProblem = {}): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.body as Record<string, unknown>;
  expect(typeof body.type).toBe('string');
  expect(typeof body.title).toBe('string');
  expect(body.status).toBe(status);
  expect(typeof body.detail).toBe('string');
  expect((body.detail as string).length).toBeGreaterThan(0);
  expect(body.error).toBe(body.detail);
  // The request's path; a response to a request whose line the server could not read has none.
  const path = (res as unknown as { req: { path?: string } }).req.path?.split('?')[0];
  if (path === undefined) expect(body).not.toHaveProperty('instance');
  else expect(body.instance).toBe(path);
  expect(typeof body.requestId).toBe('string');
  expect(body.requestId).toBe(res.headers['x-request-id']);
  if (body.type === 'about:blank') {
    expect(body.title).toBe(STATUS_CODES[status]);
  } else {
    expect(body.type).toMatch(/^\/problems\/[a-z0-9-]+$/);
  }
  if ('details' in body) {
    expect(typeof body.details).toBe('object');
    for (const v of Object.values(body.details as object)) expect(typeof v).toBe('string');
  }
  const text = JSON.stringify(body);
  for (const leak of LEAKS) expect(text).not.toMatch(leak);

  const { detail, ...rest } = expected;
  if (detail instanceof RegExp) expect(body.detail).toMatch(detail);
  else if (typeof detail === 'string') expect(body.detail).toBe(detail);
  for (const [key, value] of Object.entries(rest)) {
    if (key === 'details') expect(body.details).toMatchObject(value as object);
    else expect(body[key]).toEqual(value);
  }
}
