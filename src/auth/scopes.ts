export const SCOPES = {
  read: 'bulk-jobs:read',
  write: 'bulk-jobs:write',
  admin: 'bulk-jobs:admin',
} as const;
export type Scope = (typeof SCOPES)[keyof typeof SCOPES];

/** The authenticated caller, taken from a verified token. */
export interface Principal {
  /** The token's `sub`: a job's owner. */
  sub: string;
  scopes: ReadonlySet<string>;
  /** `bulk-jobs:admin`: sees and acts on every owner's jobs. */
  isAdmin: boolean;
  /**
   * When this server stops accepting the token (ms since the epoch): its `exp`
   * plus the clock tolerance. A request that outlives it (an event stream)
   * ends then.
   */
  expiresAt: number;
}

export function parseScopes(claim: unknown): Set<string> {
  if (typeof claim === 'string') return new Set(claim.split(' ').filter(Boolean));
  if (Array.isArray(claim)) return new Set(claim.filter((s): s is string => typeof s === 'string'));
  return new Set();
}

/** Admins hold every scope; anyone else needs the scope itself. */
export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.isAdmin || principal.scopes.has(scope);
}
