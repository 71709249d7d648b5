import { Injectable, Logger } from '@nestjs/common';
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import jwt, { type JwtHeader, type JwtPayload } from 'jsonwebtoken';
import { JwksClient, type SigningKey } from 'jwks-rsa';
import { Env } from '../config/env';
import { InvalidTokenError, ServiceUnavailableError } from '../common/problem-details/domain-error';
import { resolveJwtSecret } from './jwt-secret';
import { parseScopes, SCOPES, type Principal } from './scopes';

const ASYMMETRIC_ALGORITHMS: jwt.Algorithm[] = ['RS256', 'ES256'];

/** Seconds by which `exp` and `nbf` may be off, for clocks that differ a little between hosts. */
const CLOCK_TOLERANCE_S = 5;

/**
 * Tokens already verified, kept by their full text: the same bytes carry the
 * same signature and the same claims, so only the time-bound ones need
 * checking again. Each entry also ends this long after its verification, so
 * that a key withdrawn from the JWKS stops being trusted within it (the JWKS
 * client keeps keys for ten minutes anyway).
 */
const VERIFIED_TTL_MS = 60_000;
/** Entries kept at most, and the longest token kept: at most 16 MiB of keys, whatever the traffic. */
const VERIFIED_MAX_ENTRIES = 4096;
const VERIFIED_MAX_TOKEN_LENGTH = 4096;

/** The JWKS could not be fetched in time: not the token's fault, so a 503. */
class JwksUnavailable extends Error {}

/**
 * Verifies bearer tokens: HS256 with AUTH_JWT_SECRET, or RS256/ES256 with keys
 * from AUTH_JWKS_URL. The accepted algorithms are fixed per key kind, so `none`
 * and algorithm confusion (an HS256 token signed with a public key) fail.
 * Neither the token nor any part of it is ever logged or echoed in an error.
 */
@Injectable()
export class TokenVerifier {
  private readonly logger = new Logger('TokenVerifier');
  /**
   * A KeyObject, not the string: given a string, jsonwebtoken first tries to
   * parse it as a PEM public key on every verify, which costs ~0.75 ms of CPU
   * per request (30× the HMAC itself); see bench/README.md.
   */
  private readonly secret: KeyObject | undefined;
  private readonly jwks: JwksClient | undefined;
  /** JWKS public keys parsed once per PEM, for the same reason. */
  private readonly publicKeys = new Map<string, KeyObject>();
  /**
   * Decoded JOSE headers by their encoded form: one issuer's tokens share a
   * handful of headers (one per key), so each is decoded once.
   */
  private readonly headers = new Map<string, JwtHeader>();
  /**
   * Principals of tokens verified within VERIFIED_TTL_MS, by token, oldest
   * first (a Map keeps insertion order). A hit still checks `exp` (through
   * `expiresAt`) at every use; `nbf` had passed when the token was verified.
   * Only successes are kept. One HMAC verify costs about as much CPU as the
   * rest of the auth guard together (bench/README.md, API).
   */
  private readonly verified = new Map<string, { principal: Principal; until: number }>();

  constructor(private readonly env: Env) {
    const secret = resolveJwtSecret(env);
    this.secret = secret === undefined ? undefined : createSecretKey(Buffer.from(secret, 'utf8'));
    this.jwks = env.AUTH_JWKS_URL
      ? new JwksClient({
          jwksUri: env.AUTH_JWKS_URL,
          cache: true,
          cacheMaxAge: 10 * 60_000,
          rateLimit: true,
          jwksRequestsPerMinute: 10,
          timeout: env.AUTH_JWKS_TIMEOUT_MS,
        })
      : undefined;
    if (!this.secret && !this.jwks) {
      throw new Error('No token key configured: set AUTH_JWT_SECRET or AUTH_JWKS_URL');
    }
  }

  /**
   * The principal of a token verified within VERIFIED_TTL_MS that has not
   * expired since, or undefined: then verify() it. Synchronous, so that the
   * guard answers most requests without a promise.
   */
  known(token: string): Principal | undefined {
    const known = this.verified.get(token);
    if (!known) return undefined;
    const now = Date.now();
    if (now < known.until && now < known.principal.expiresAt) return known.principal;
    this.verified.delete(token);
    return undefined;
  }

  async verify(token: string): Promise<Principal> {
    const known = this.known(token);
    if (known) return known;
    const now = Date.now();
    const principal = await this.verifyFully(token);
    if (token.length <= VERIFIED_MAX_TOKEN_LENGTH) {
      if (this.verified.size >= VERIFIED_MAX_ENTRIES) {
        this.verified.delete(this.verified.keys().next().value!);
      }
      this.verified.set(token, { principal, until: now + VERIFIED_TTL_MS });
    }
    return principal;
  }

  private async verifyFully(token: string): Promise<Principal> {
    const header = this.headerOf(token);
    let payload: JwtPayload;
    try {
      if (header.alg === 'HS256' && this.secret) {
        payload = this.verifyWith(token, this.secret, ['HS256']);
      } else if (ASYMMETRIC_ALGORITHMS.includes(header.alg as jwt.Algorithm) && this.jwks) {
        const key = await this.signingKey(this.jwks, header.kid);
        // A key published for one algorithm is never used with another.
        if (key.alg && key.alg !== header.alg) {
          throw new InvalidTokenError('The token is signed with an algorithm its key is not meant for.');
        }
        payload = this.verifyWith(token, this.publicKey(key.getPublicKey()), [header.alg as jwt.Algorithm]);
      } else {
        throw new InvalidTokenError('The token is signed with an algorithm this server does not accept.');
      }
    } catch (err) {
      if (err instanceof InvalidTokenError) throw err;
      if (err instanceof JwksUnavailable) {
        throw new ServiceUnavailableError(
          5,
          'The keys that verify tokens cannot be fetched right now. Retry later.',
        );
      }
      throw new InvalidTokenError(describe(err));
    }
    // A NUL is refused too: PostgreSQL's text cannot hold it, so no job could be that sub's.
    if (
      typeof payload.sub !== 'string' ||
      payload.sub.length === 0 ||
      payload.sub.length > 256 ||
      payload.sub.includes('\0')
    ) {
      throw new InvalidTokenError('The token has no valid "sub" claim.');
    }
    const scopes = parseScopes(payload.scope ?? payload.scp);
    // Frozen: one principal serves every request that carries its token.
    return Object.freeze({
      sub: payload.sub,
      scopes,
      isAdmin: scopes.has(SCOPES.admin),
      expiresAt: (payload.exp! + CLOCK_TOLERANCE_S) * 1000,
    });
  }

  /**
   * The JWKS key for `kid`. jwks-rsa's timeout only covers an idle socket, so a
   * deadline bounds the whole fetch too: a slow key server never holds a request.
   */
  private async signingKey(jwks: JwksClient, kid: string | undefined): Promise<SigningKey> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(Object.assign(new Error('JWKS fetch timed out'), { isEndpointUnavailable: true })),
        this.env.AUTH_JWKS_TIMEOUT_MS,
      );
    });
    try {
      return await Promise.race([jwks.getSigningKey(kid), deadline]);
    } catch (err) {
      if ((err as { isEndpointUnavailable?: unknown } | undefined)?.isEndpointUnavailable) {
        this.logger.warn(`Could not fetch the JWKS from ${this.env.AUTH_JWKS_URL}: ${errorText(err)}`);
        throw new JwksUnavailable();
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private headerOf(token: string): JwtHeader {
    const dot = token.indexOf('.');
    const encoded = dot > 0 ? token.slice(0, dot) : '';
    return remember(this.headers, encoded, () => decodeHeader(encoded));
  }

  private publicKey(pem: string): KeyObject {
    return remember(this.publicKeys, pem, () => createPublicKey(pem));
  }

  private verifyWith(token: string, key: KeyObject, algorithms: jwt.Algorithm[]): JwtPayload {
    const payload = jwt.verify(token, key, {
      algorithms,
      issuer: this.env.AUTH_JWT_ISSUER,
      audience: this.env.AUTH_JWT_AUDIENCE,
      clockTolerance: CLOCK_TOLERANCE_S,
      complete: false,
    });
    if (typeof payload === 'string') throw new InvalidTokenError('The token payload is not a JSON object.');
    if (typeof payload.exp !== 'number') throw new InvalidTokenError('The token has no "exp" claim.');
    return payload;
  }
}

/**
 * A token's JOSE header (its first segment, base64url), read to choose the key;
 * jwt.verify parses and checks the whole token afterwards.
 */
function decodeHeader(encoded: string): JwtHeader {
  let header: unknown;
  try {
    header = encoded ? JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) : undefined;
  } catch {
    header = undefined;
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) {
    throw new InvalidTokenError('The bearer token is malformed.');
  }
  return header as JwtHeader;
}

/**
 * The value kept under `key`, or `make()`'s, kept. Keys and headers are few,
 * so the map is simply emptied at 100 entries: a bound that keeps a
 * misbehaving JWKS or a stream of odd tokens from growing it without end.
 * A `make` that throws keeps nothing.
 */
function remember<V>(map: Map<string, V>, key: string, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    if (map.size >= 100) map.clear();
    map.set(key, value);
  }
  return value;
}

function describe(err: unknown): string {
  if (err instanceof jwt.TokenExpiredError) return 'The token has expired.';
  if (err instanceof jwt.NotBeforeError) return 'The token is not valid yet.';
  if (err instanceof jwt.JsonWebTokenError) {
    if (/audience/.test(err.message)) return 'The token is not meant for this service (audience).';
    if (/issuer/.test(err.message)) return 'The token was issued by an issuer this service does not trust.';
    return 'The token signature or format is invalid.';
  }
  return 'The token could not be verified.';
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
