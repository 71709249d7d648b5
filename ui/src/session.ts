/** The signed-in token, kept in sessionStorage: it lives as long as the tab and is not shared with other tabs. */

const KEY = 'bulk-jobs.token';

export interface Session {
  token: string;
  sub: string;
  admin: boolean;
  /** Seconds since the epoch, when the token says. */
  expiresAt: number | undefined;
}

/**
 * What the page shows of a token: its claims, decoded without verifying (the
 * server verifies every request; this only names the user and the scopes).
 */
export function sessionOf(token: string): Session | undefined {
  const parts = token.trim().split('.');
  if (parts.length !== 3) return undefined;
  try {
    const json = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json) as { sub?: unknown; scope?: unknown; scp?: unknown; exp?: unknown };
    const scope = claims.scope ?? claims.scp;
    const scopes = typeof scope === 'string' ? scope.split(' ') : Array.isArray(scope) ? scope : [];
    return {
      token: token.trim(),
      sub: typeof claims.sub === 'string' ? claims.sub : '(no sub)',
      admin: scopes.includes('bulk-jobs:admin'),
      expiresAt: typeof claims.exp === 'number' ? claims.exp : undefined,
    };
  } catch {
    return undefined;
  }
}

export function loadSession(): Session | undefined {
  const token = sessionStorage.getItem(KEY);
  return token ? sessionOf(token) : undefined;
}

export function saveSession(session: Session | undefined): void {
  if (session) sessionStorage.setItem(KEY, session.token);
  else sessionStorage.removeItem(KEY);
}

/** Whether the server offers development tokens (it says so in index.html). */
export function devTokensOffered(): boolean {
  return document.querySelector('meta[name="bulk-jobs-dev-tokens"]')?.getAttribute('content') === 'on';
}
