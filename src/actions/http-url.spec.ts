import { expect } from 'expect';
import { describe, it } from 'node:test';
import { expandUrlTemplate, isAllowedUrl, parseAllowedHosts, urlTemplateProblem } from './http-url';

const allowed = parseAllowedHosts(
  'api.example.com, *.hooks.example.org, 127.0.0.1:8080, [::1]:9000, LOCALHOST',
);

describe('parseAllowedHosts', () => {
  it('reads host, host:port, *.domain and [v6]:port entries', () => {
    expect(allowed).toEqual([
      { host: 'api.example.com', subdomains: false, port: undefined },
      { host: 'hooks.example.org', subdomains: true, port: undefined },
      { host: '127.0.0.1', subdomains: false, port: '8080' },
      { host: '[::1]', subdomains: false, port: '9000' },
      { host: 'localhost', subdomains: false, port: undefined },
    ]);
  });

  it('is empty for an empty setting', () => {
    expect(parseAllowedHosts('')).toEqual([]);
    expect(parseAllowedHosts(' , ')).toEqual([]);
  });

  it('refuses entries it cannot read', () => {
    expect(() => parseAllowedHosts('http://x.com')).toThrow(/cannot read/);
    expect(() => parseAllowedHosts('a b')).toThrow();
  });
});

describe('isAllowedUrl', () => {
  const ok = (u: string) => isAllowedUrl(new URL(u), allowed);

  it('allows listed hosts on any port unless a port is listed', () => {
    expect(ok('https://api.example.com/x')).toBe(true);
    expect(ok('http://api.example.com:8443/x')).toBe(true);
    expect(ok('http://127.0.0.1:8080/x')).toBe(true);
    expect(ok('http://127.0.0.1:8081/x')).toBe(false);
    expect(ok('http://127.0.0.1/x')).toBe(false);
    expect(ok('http://[::1]:9000/')).toBe(true);
    expect(ok('http://localhost:3000/')).toBe(true);
  });

  it('allows subdomains of a *. entry but not the domain itself or look-alikes', () => {
    expect(ok('https://a.hooks.example.org/')).toBe(true);
    expect(ok('https://a.b.hooks.example.org/')).toBe(true);
    expect(ok('https://hooks.example.org/')).toBe(false);
    expect(ok('https://evilhooks.example.org/')).toBe(false);
  });

  it('refuses other hosts, spellings that hide them, other schemes and credentials', () => {
    expect(ok('https://api.example.com.evil.net/')).toBe(false);
    expect(ok('https://evil.net/?api.example.com')).toBe(false);
    expect(ok('https://api.example.com@evil.net/')).toBe(false);
    expect(ok('https://user:pw@api.example.com/')).toBe(false);
    expect(ok('ftp://api.example.com/')).toBe(false);
    expect(ok('http://169.254.169.254/latest/meta-data')).toBe(false);
    // 2130706433 and 0x7f.1 are 127.0.0.1: allowed only where 127.0.0.1 is, on its port.
    expect(ok('http://2130706433:8080/')).toBe(true);
    expect(ok('http://0x7f.1:8081/')).toBe(false);
    expect(ok('http://API.EXAMPLE.COM/')).toBe(true);
  });
});

describe('urlTemplateProblem', () => {
  it('accepts a template whose host is allowed', () => {
    expect(urlTemplateProblem('https://api.example.com/users/{id}?src=bulk', allowed)).toBeNull();
  });

  it('refuses {id} in the host, which would let a target choose where the request goes', () => {
    expect(urlTemplateProblem('https://{id}.example.com/x', allowed)).toMatch(/not in the host/);
    expect(urlTemplateProblem('https://api.example.com{id}/x', allowed)).toMatch(/not in the host/);
  });

  it('refuses hosts not on the list, non-http schemes, relative URLs and credentials', () => {
    expect(urlTemplateProblem('https://evil.net/{id}', allowed)).toMatch(
      /evil\.net is not in ACTIONS_HTTP_ALLOWED_HOSTS/,
    );
    expect(urlTemplateProblem('file:///etc/passwd', allowed)).toMatch(/http/);
    expect(urlTemplateProblem('/users/{id}', allowed)).toMatch(/absolute/);
    expect(urlTemplateProblem('https://u:p@api.example.com/{id}', allowed)).toMatch(/credentials/);
    expect(urlTemplateProblem('https://api.example.com/{id}', [])).toMatch(/is empty/);
  });
});

describe('expandUrlTemplate', () => {
  it('URL-encodes the target id', () => {
    expect(expandUrlTemplate('https://h/u/{id}', 'a b/c?d#e')).toBe('https://h/u/a%20b%2Fc%3Fd%23e');
    expect(expandUrlTemplate('https://h/u/{id}?again={id}', 'x&y')).toBe('https://h/u/x%26y?again=x%26y');
  });

  it('keeps an encoded id from escaping the host', () => {
    const url = new URL(expandUrlTemplate('https://api.example.com/u/{id}', '@evil.net/'));
    expect(url.host).toBe('api.example.com');
  });

  it('refuses ids that would navigate the path', () => {
    expect(() => expandUrlTemplate('https://h/u/{id}', '..')).toThrow();
    expect(() => expandUrlTemplate('https://h/u/{id}', '%2e%2E')).toThrow();
    expect(expandUrlTemplate('https://h/u/{id}', '...')).toBe('https://h/u/...');
  });
});
