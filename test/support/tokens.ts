import jwt from 'jsonwebtoken';
import { randomUUID } from 'node:crypto';
import { TEST_JWT_SECRET } from './test-env';

export const READ_WRITE = 'bulk-jobs:read bulk-jobs:write';

export interface TokenOptions {
  scope?: string;
  expiresIn?: number;
  secret?: string;
  claims?: Record<string, unknown>;
}

/** An HS256 token for `sub`, read and write scopes by default. */
export function tokenFor(sub: string, opts: TokenOptions = {}): string {
  return jwt.sign({ sub, scope: opts.scope ?? READ_WRITE, ...opts.claims }, opts.secret ?? TEST_JWT_SECRET, {
    algorithm: 'HS256',
    expiresIn: opts.expiresIn ?? 600,
  });
}

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** A fresh owner per test keeps tests independent on the shared test database. */
export function newOwner(prefix = 'user'): string {
  return `${prefix}-${randomUUID()}`;
}
