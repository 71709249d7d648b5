import { expect } from 'expect';
import jwt from 'jsonwebtoken';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Response } from 'supertest';
import { JOBS } from '../support/api';
import { createTestApp, type TestApp } from '../support/app';
import {
  claims,
  closedPort,
  closeServer,
  ecKey,
  hmacToken,
  listen,
  nowSeconds,
  rsaKey,
  signWith,
  startJwksServer,
  unsignedToken,
  type JwksServer,
} from '../support/jwt';
import { expectProblem } from '../support/problem-matcher';
import { TEST_JWT_SECRET } from '../support/test-env';
import { bearer, newOwner, tokenFor } from '../support/tokens';

// Generated once: RSA key generation takes a moment.
const rsa = rsaKey('rsa-1');
const ec = ecKey('ec-1');
const rogue = rsaKey('rsa-1'); // same kid as the published key, but not published

function expectUnauthenticated(res: Response, token: string): void {
  expectProblem(res, 401, { type: 'about:blank' });
  expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
  expect(JSON.stringify(res.body)).not.toContain(token);
}

function expectKeysUnavailable(res: Response): void {
  expectProblem(res, 503, { type: 'about:blank' });
  expect(res.headers['retry-after']).toMatch(/^\d+$/);
}

describe('JWKS (RS256 and ES256) without an HS256 secret', () => {
  let jwks: JwksServer;
  let t: TestApp;
  before(async () => {
    jwks = await startJwksServer([rsa.jwk, ec.jwk]);
    t = await createTestApp({ AUTH_JWT_SECRET: '', AUTH_JWKS_URL: jwks.url });
  });
  after(async () => {
    await t.close();
    await jwks.close();
  });

  it('accepts an RS256 token whose kid is published', async () => {
    const owner = newOwner();
    const res = await t
      .http()
      .post(JOBS)
      .set(bearer(signWith(rsa, claims(owner))))
      .send({ action: 'noop', targets: ['x'] });
    expect(res.status).toBe(202);
    expect((res.body as { owner: string }).owner).toBe(owner);
  });

  it('accepts an ES256 token whose kid is published', async () => {
    expect(
      (
        await t
          .http()
          .get(JOBS)
          .set(bearer(signWith(ec, claims(newOwner()))))
      ).status,
    ).toBe(200);
  });

  it('caches the keys instead of fetching them for every request', async () => {
    const before = jwks.fetches();
    for (let i = 0; i < 5; i++) {
      expect(
        (
          await t
            .http()
            .get(JOBS)
            .set(bearer(signWith(rsa, claims(newOwner()))))
        ).status,
      ).toBe(200);
      expect(
        (
          await t
            .http()
            .get(JOBS)
            .set(bearer(signWith(ec, claims(newOwner()))))
        ).status,
      ).toBe(200);
    }
    expect(jwks.fetches() - before).toBeLessThanOrEqual(2);
  });

  const rejected: [string, () => string][] = [
    ['an RS256 token with an unknown kid', () => signWith(rsa, claims('alice'), { kid: 'unknown-kid' })],
    [
      'an RS256 token signed by an unpublished key under a published kid',
      () => signWith(rogue, claims('alice')),
    ],
    [
      'an RS256 token without kid (the JWKS has several keys)',
      () => signWith(rsa, claims('alice'), { kid: null }),
    ],
    [
      'an HS256 token whose HMAC secret is the RSA public key (algorithm confusion)',
      () => hmacToken(claims('alice'), rsa.publicPem, { kid: rsa.kid }),
    ],
    [
      'an HS256 token whose HMAC secret is the EC public key (algorithm confusion)',
      () => hmacToken(claims('alice'), ec.publicPem, { kid: ec.kid }),
    ],
    ['an HS256 token signed with the test secret (no secret is configured)', () => tokenFor('alice')],
    ['an alg:none token with a published kid', () => unsignedToken(claims('alice'), { kid: rsa.kid })],
    [
      'an ES256 token signed with the EC key under the RSA kid',
      () => signWith(ec, claims('alice'), { kid: rsa.kid }),
    ],
    [
      'an RS256 token signed with the RSA key under the EC kid',
      () => signWith(rsa, claims('alice'), { kid: ec.kid }),
    ],
    ['an RS512 token from the published RSA key', () => signWith(rsa, claims('alice'), { alg: 'RS512' })],
    ['a PS256 token from the published RSA key', () => signWith(rsa, claims('alice'), { alg: 'PS256' })],
    ['an expired RS256 token', () => signWith(rsa, claims('alice', { exp: nowSeconds() - 60 }))],
    [
      'an RS256 token without exp',
      () => {
        const { exp: _exp, ...rest } = claims('alice');
        return signWith(rsa, rest);
      },
    ],
    [
      'an ES256 token whose nbf is in the future',
      () => signWith(ec, claims('alice', { nbf: nowSeconds() + 3600 })),
    ],
    [
      'an RS256 token without sub',
      () => {
        const { sub: _sub, ...rest } = claims('alice');
        return signWith(rsa, rest);
      },
    ],
  ];
  for (const [name, make] of rejected) {
    it(`refuses ${name} with 401`, async () => {
      const token = make();
      expectUnauthenticated(await t.http().get(JOBS).set(bearer(token)), token);
    });
  }
});

describe('JWKS and an HS256 secret together', () => {
  let jwks: JwksServer;
  let t: TestApp;
  before(async () => {
    jwks = await startJwksServer([rsa.jwk, ec.jwk]);
    t = await createTestApp({ AUTH_JWT_SECRET: TEST_JWT_SECRET, AUTH_JWKS_URL: jwks.url });
  });
  after(async () => {
    await t.close();
    await jwks.close();
  });

  const accepted: [string, () => string][] = [
    ['an HS256 token', () => tokenFor(newOwner())],
    ['an RS256 token', () => signWith(rsa, claims(newOwner()))],
    ['an ES256 token', () => signWith(ec, claims(newOwner()))],
  ];
  for (const [name, make] of accepted) {
    it(`accepts ${name}`, async () => {
      expect((await t.http().get(JOBS).set(bearer(make()))).status).toBe(200);
    });
  }

  it('still refuses an HS256 token keyed with the RSA public key', async () => {
    const token = hmacToken(claims('alice'), rsa.publicPem, { kid: rsa.kid });
    expectUnauthenticated(await t.http().get(JOBS).set(bearer(token)), token);
  });

  it('still refuses an RS256 token signed by another key', async () => {
    const token = signWith(rogue, claims('alice'));
    expectUnauthenticated(await t.http().get(JOBS).set(bearer(token)), token);
  });
});

describe('a JWKS key published for one algorithm', () => {
  let jwks: JwksServer;
  let t: TestApp;
  // An RSA key published for RS256 only: a PS256 signature by the same key is refused.
  const pinned = rsaKey('pinned');
  before(async () => {
    jwks = await startJwksServer([pinned.jwk]);
    t = await createTestApp({ AUTH_JWT_SECRET: '', AUTH_JWKS_URL: jwks.url });
  });
  after(async () => {
    await t.close();
    await jwks.close();
  });

  it('accepts a token without kid when the JWKS has exactly one key', async () => {
    const token = signWith(pinned, claims(newOwner()), { kid: null });
    expect((await t.http().get(JOBS).set(bearer(token))).status).toBe(200);
  });

  it('refuses an ES256 header on the RS256 key', async () => {
    const token = jwt.sign(claims('alice'), ec.privateKey, { algorithm: 'ES256', keyid: pinned.kid });
    expectUnauthenticated(await t.http().get(JOBS).set(bearer(token)), token);
  });
});

describe('when the JWKS cannot be fetched', () => {
  it('answers 503 at once when nothing listens at AUTH_JWKS_URL, and logs no token', async () => {
    const port = await closedPort();
    const t = await createTestApp({
      AUTH_JWT_SECRET: '',
      AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json`,
    });
    const logged = captureOutput();
    try {
      const token = signWith(rsa, claims('alice'));
      const started = Date.now();
      const res = await t.http().get(JOBS).set(bearer(token));
      expect(Date.now() - started).toBeLessThan(3000);
      expectKeysUnavailable(res);
      expect(JSON.stringify(res.body)).not.toContain(token);
      expect(logged.text()).not.toContain(token.split('.')[2]);
      expect(logged.text()).not.toContain(token.split('.')[1]);
    } finally {
      logged.restore();
      await t.close();
    }
  });

  it('answers 503 within AUTH_JWKS_TIMEOUT_MS when the key server accepts but never answers', async () => {
    const sockets = new Set<Socket>();
    const blackHole = createTcpServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    const port = await new Promise<number>((resolve) => {
      blackHole.listen(0, '127.0.0.1', () => resolve((blackHole.address() as { port: number }).port));
    });
    const t = await createTestApp({
      AUTH_JWT_SECRET: '',
      AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json`,
      AUTH_JWKS_TIMEOUT_MS: '300',
    });
    try {
      const started = Date.now();
      const res = await t
        .http()
        .get(JOBS)
        .set(bearer(signWith(rsa, claims('alice'))));
      expect(Date.now() - started).toBeLessThan(3000);
      expectKeysUnavailable(res);
    } finally {
      await t.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => blackHole.close(resolve));
    }
  });

  it('answers 503 within AUTH_JWKS_TIMEOUT_MS when the key server trickles its answer', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const slow = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":[');
      // One byte well inside the socket idle timeout, forever: only a deadline stops this.
      const timer = setInterval(() => res.write(' '), 100);
      timers.add(timer);
      res.on('close', () => clearInterval(timer));
    });
    const port = await listen(slow);
    const t = await createTestApp({
      AUTH_JWT_SECRET: '',
      AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json`,
      AUTH_JWKS_TIMEOUT_MS: '400',
    });
    try {
      const started = Date.now();
      const res = await t
        .http()
        .get(JOBS)
        .set(bearer(signWith(rsa, claims('alice'))));
      expect(Date.now() - started).toBeLessThan(3000);
      expectKeysUnavailable(res);
    } finally {
      await t.close();
      for (const timer of timers) clearInterval(timer);
      await closeServer(slow);
    }
  });

  for (const [name, status, body] of [
    ['answers 500', 500, 'oops'],
    ['answers with something that is not JSON', 200, '<html>'],
  ] as const) {
    it(`answers 503 when the key server ${name}`, async () => {
      const broken = createHttpServer((_req, res) => res.writeHead(status).end(body));
      const port = await listen(broken);
      const t = await createTestApp({
        AUTH_JWT_SECRET: '',
        AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json`,
      });
      try {
        expectKeysUnavailable(
          await t
            .http()
            .get(JOBS)
            .set(bearer(signWith(rsa, claims('alice')))),
        );
      } finally {
        await t.close();
        await closeServer(broken);
      }
    });
  }

  it('keeps accepting HS256 tokens when a secret is configured too', async () => {
    const port = await closedPort();
    const t = await createTestApp({ AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json` });
    try {
      expect(
        (
          await t
            .http()
            .get(JOBS)
            .set(bearer(tokenFor(newOwner())))
        ).status,
      ).toBe(200);
      expectKeysUnavailable(
        await t
          .http()
          .get(JOBS)
          .set(bearer(signWith(rsa, claims('alice')))),
      );
    } finally {
      await t.close();
    }
  });

  it('still answers 401, not 503, to tokens it would refuse anyway', async () => {
    const port = await closedPort();
    const t = await createTestApp({
      AUTH_JWT_SECRET: '',
      AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json`,
    });
    try {
      for (const token of [unsignedToken(claims('alice')), tokenFor('alice'), 'garbage']) {
        expectUnauthenticated(await t.http().get(JOBS).set(bearer(token)), token);
      }
    } finally {
      await t.close();
    }
  });
});

/** Records what the process writes to stdout and stderr (still passing it through). */
function captureOutput(): { text: () => string; restore: () => void } {
  const chunks: string[] = [];
  const originals = {
    out: process.stdout.write.bind(process.stdout),
    err: process.stderr.write.bind(process.stderr),
  };
  const tap =
    (original: typeof process.stdout.write) =>
    (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
      return (original as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    };
  process.stdout.write = tap(originals.out);
  process.stderr.write = tap(originals.err);
  return {
    text: () => chunks.join(''),
    restore: () => {
      process.stdout.write = originals.out;
      process.stderr.write = originals.err;
    },
  };
}
