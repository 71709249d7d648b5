import jwt from 'jsonwebtoken';
import { createHmac, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { READ_WRITE } from './tokens';

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Standard claims for `sub`: read and write scopes, ten minutes to live. */
export function claims(sub: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub, scope: READ_WRITE, iat: nowSeconds(), exp: nowSeconds() + 600, ...extra };
}

/** A token with `alg: none` and an empty signature, built by hand (libraries refuse to make one). */
export function unsignedToken(
  payload: Record<string, unknown>,
  header: Record<string, unknown> = {},
): string {
  return `${b64url({ alg: 'none', typ: 'JWT', ...header })}.${b64url(payload)}.`;
}

/** An HS256 token whose HMAC key is exactly `key`, built by hand: any header, any key. */
export function hmacToken(
  payload: Record<string, unknown>,
  key: string | Buffer,
  header: Record<string, unknown> = {},
): string {
  const input = `${b64url({ alg: 'HS256', typ: 'JWT', ...header })}.${b64url(payload)}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}

export interface SigningKeyPair {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public key as a JWK with kid, alg and use, as a JWKS publishes it. */
  jwk: JsonWebKey & { kid: string; alg: string; use: string };
  /** The public key as SPKI PEM: what an algorithm-confusion attack uses as an HMAC secret. */
  publicPem: string;
}

export function rsaKey(kid: string): SigningKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return keyPair(kid, 'RS256', privateKey, publicKey);
}

export function ecKey(kid: string): SigningKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return keyPair(kid, 'ES256', privateKey, publicKey);
}

function keyPair(
  kid: string,
  alg: 'RS256' | 'ES256',
  privateKey: KeyObject,
  publicKey: KeyObject,
): SigningKeyPair {
  return {
    kid,
    alg,
    privateKey,
    publicKey,
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' },
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

/** Signs with the key's algorithm; `kid` defaults to the key's own, `null` leaves it out. */
export function signWith(
  key: SigningKeyPair,
  payload: Record<string, unknown>,
  opts: { kid?: string | null; alg?: jwt.Algorithm } = {},
): string {
  const kid = opts.kid === undefined ? key.kid : opts.kid;
  return jwt.sign(payload, key.privateKey, {
    algorithm: opts.alg ?? key.alg,
    ...(kid === null ? {} : { keyid: kid }),
  });
}

export interface JwksServer {
  url: string;
  /** How many times the JWKS was fetched. */
  fetches: () => number;
  close: () => Promise<void>;
}

/** Serves `{ keys }` at /jwks.json on 127.0.0.1 (a free port). */
export async function startJwksServer(keys: object[]): Promise<JwksServer> {
  let fetches = 0;
  const server = createServer((req, res) => {
    if (req.url !== '/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    fetches: () => fetches,
    close: () => closeServer(server),
  };
}

export async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return (server.address() as AddressInfo).port;
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await closeServer(server);
  return port;
}
