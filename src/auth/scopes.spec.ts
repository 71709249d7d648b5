import { expect } from 'expect';
import { describe, it } from 'node:test';
import { hasScope, parseScopes, SCOPES, type Principal, type Scope } from './scopes';

function principal(scope: unknown): Principal {
  const scopes = parseScopes(scope);
  return { sub: 'alice', scopes, isAdmin: scopes.has(SCOPES.admin), expiresAt: Date.now() + 60_000 };
}

describe('parseScopes', () => {
  it('splits the space-separated scope claim and drops empty parts', () => {
    expect([...parseScopes('bulk-jobs:read  bulk-jobs:write ')]).toEqual([
      'bulk-jobs:read',
      'bulk-jobs:write',
    ]);
  });

  it('accepts an array claim and keeps only its strings', () => {
    expect([...parseScopes(['bulk-jobs:read', 7, null, 'bulk-jobs:admin'])]).toEqual([
      'bulk-jobs:read',
      'bulk-jobs:admin',
    ]);
  });

  for (const claim of [undefined, null, 42, {}, '']) {
    it(`gives no scopes for ${JSON.stringify(claim)}`, () => {
      expect(parseScopes(claim).size).toBe(0);
    });
  }

  it('matches scopes exactly, not by prefix or case', () => {
    const p = principal('bulk-jobs:read-only BULK-JOBS:WRITE bulk-jobs');
    for (const scope of Object.values(SCOPES)) expect(hasScope(p, scope)).toBe(false);
  });
});

describe('hasScope', () => {
  const table: [claim: string, expected: Record<Scope, boolean>][] = [
    ['bulk-jobs:read', { 'bulk-jobs:read': true, 'bulk-jobs:write': false, 'bulk-jobs:admin': false }],
    ['bulk-jobs:write', { 'bulk-jobs:read': false, 'bulk-jobs:write': true, 'bulk-jobs:admin': false }],
    [
      'bulk-jobs:read bulk-jobs:write',
      { 'bulk-jobs:read': true, 'bulk-jobs:write': true, 'bulk-jobs:admin': false },
    ],
    // An admin holds every scope, so an admin-only token can read and write.
    ['bulk-jobs:admin', { 'bulk-jobs:read': true, 'bulk-jobs:write': true, 'bulk-jobs:admin': true }],
    ['openid profile', { 'bulk-jobs:read': false, 'bulk-jobs:write': false, 'bulk-jobs:admin': false }],
  ];
  for (const [claim, expected] of table) {
    for (const [scope, allowed] of Object.entries(expected) as [Scope, boolean][]) {
      it(`"${claim}" ${allowed ? 'has' : 'lacks'} ${scope}`, () => {
        expect(hasScope(principal(claim), scope)).toBe(allowed);
      });
    }
  }

  it('marks only bulk-jobs:admin holders as admins', () => {
    expect(principal('bulk-jobs:admin').isAdmin).toBe(true);
    expect(principal('bulk-jobs:read bulk-jobs:write').isAdmin).toBe(false);
  });
});
