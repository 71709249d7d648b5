/** One entry of ACTIONS_HTTP_ALLOWED_HOSTS. */
export interface AllowedHost {
  /** Lower-case host name or IP literal as URL.hostname writes it (IPv6 in brackets). */
  host: string;
  /** A `*.` entry: any subdomain of host (not host itself). */
  subdomains: boolean;
  /** Only this port; undefined: any port. */
  port?: string;
}

const ENTRY = /^(\*\.)?(\[[0-9a-fA-F:.]+\]|[^:\s]+)(?::(\d{1,5}))?$/;

/**
 * Parses ACTIONS_HTTP_ALLOWED_HOSTS: comma-separated `host`, `host:port`,
 * `*.domain` (any subdomain) or `[v6]:port`. Each host is normalised the way
 * the URL parser normalises request URLs (case, IPv4 forms), so that the
 * comparison cannot be fooled by spelling. Throws on an entry it cannot read.
 */
export function parseAllowedHosts(list: string): AllowedHost[] {
  const hosts: AllowedHost[] = [];
  for (const raw of list.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const m = ENTRY.exec(entry);
    if (!m) throw new Error(`ACTIONS_HTTP_ALLOWED_HOSTS: cannot read "${entry}"`);
    let host: string;
    try {
      host = new URL(`http://${m[2]}/`).hostname;
    } catch {
      throw new Error(`ACTIONS_HTTP_ALLOWED_HOSTS: "${entry}" is not a host name`);
    }
    hosts.push({
      host,
      subdomains: m[1] !== undefined,
      port: m[3] === undefined ? undefined : String(Number(m[3])),
    });
  }
  return hosts;
}

function effectivePort(url: URL): string {
  if (url.port) return url.port;
  return url.protocol === 'https:' ? '443' : '80';
}

/** True when the URL is http(s), carries no credentials, and its host (and port) is on the list. */
export function isAllowedUrl(url: URL, allowed: readonly AllowedHost[]): boolean {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (url.username !== '' || url.password !== '') return false;
  const host = url.hostname.toLowerCase();
  const port = effectivePort(url);
  return allowed.some(
    (a) =>
      (a.subdomains ? host.endsWith(`.${a.host}`) : host === a.host) &&
      (a.port === undefined || a.port === port),
  );
}

const ID = '{id}';

/**
 * Why a URL template is not acceptable, or null. `{id}` may appear only in
 * the path, query or fragment, so that no target id can change where the
 * request goes; the host must be on the allow-list.
 */
export function urlTemplateProblem(template: string, allowed: readonly AllowedHost[]): string | null {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)/.exec(template);
  if (!m || !['http', 'https'].includes(m[1].toLowerCase()))
    return 'must be an absolute http:// or https:// URL';
  if (m[2].includes('{')) return '{id} may appear in the path or query only, not in the host';
  let url: URL;
  try {
    url = new URL(expandUrlTemplate(template, 'id'));
  } catch {
    return 'is not a valid URL';
  }
  if (url.username !== '' || url.password !== '') return 'must not carry credentials; use headers';
  if (!isAllowedUrl(url, allowed)) {
    return allowed.length === 0
      ? 'cannot be called: ACTIONS_HTTP_ALLOWED_HOSTS is empty, so the http action may call no host'
      : `host ${url.host} is not in ACTIONS_HTTP_ALLOWED_HOSTS`;
  }
  return null;
}

/**
 * The template with every `{id}` replaced by the URL-encoded target id. Ids
 * that the URL parser would treat as path navigation ("." and "..", however
 * encoded) are refused, so that a target cannot climb out of its path.
 */
export function expandUrlTemplate(template: string, id: string): string {
  if (template.includes(ID) && /^(\.|%2e){1,2}$/i.test(id)) {
    throw new Error(`target id "${id}" cannot be used in a URL path`);
  }
  return template.split(ID).join(encodeURIComponent(id));
}

/**
 * Why a webhook URL cannot be used, or null: the rules of the http action's
 * URLs (http or https, no credentials, a host on ACTIONS_HTTP_ALLOWED_HOSTS),
 * with no `{id}` template.
 */
export function webhookUrlProblem(text: string, allowed: readonly AllowedHost[]): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'is not a valid URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return 'must be an absolute http:// or https:// URL';
  if (url.username !== '' || url.password !== '') return 'must not carry credentials';
  if (!isAllowedUrl(url, allowed)) {
    return allowed.length === 0
      ? 'cannot be called: ACTIONS_HTTP_ALLOWED_HOSTS is empty, so no host may be called'
      : `host ${url.host} is not in ACTIONS_HTTP_ALLOWED_HOSTS`;
  }
  return null;
}
