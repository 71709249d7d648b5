/**
 * Prints a signed bearer token for local use:
 *   npm run token -- --sub alice [--scope "bulk-jobs:read bulk-jobs:write"] [--ttl 3600]
 * It signs with AUTH_JWT_SECRET, or with the development secret under DATA_DIR
 * that the server uses when AUTH_JWT_SECRET is not set.
 */
import jwt from 'jsonwebtoken';
import { parseArgs } from 'node:util';
import { loadEnv } from '../src/config/env';
import { resolveJwtSecret } from '../src/auth/jwt-secret';
import { SCOPES } from '../src/auth/scopes';

const { values } = parseArgs({
  options: {
    sub: { type: 'string' },
    scope: { type: 'string', default: `${SCOPES.read} ${SCOPES.write}` },
    ttl: { type: 'string', default: '3600' },
  },
});

const env = loadEnv();
if (!values.sub) {
  console.error('usage: npm run token -- --sub NAME [--scope "bulk-jobs:read bulk-jobs:write"] [--ttl SECONDS]');
  process.exit(2);
}
const secret = resolveJwtSecret(env);
if (!secret) {
  console.error('No HS256 secret: set AUTH_JWT_SECRET (tokens for a JWKS setup come from your identity provider).');
  process.exit(2);
}
const ttl = Number(values.ttl);
if (!Number.isInteger(ttl) || ttl <= 0) {
  console.error('--ttl must be a positive number of seconds');
  process.exit(2);
}
const token = jwt.sign({ sub: values.sub, scope: values.scope }, secret, {
  algorithm: 'HS256',
  expiresIn: ttl,
  ...(env.AUTH_JWT_ISSUER ? { issuer: env.AUTH_JWT_ISSUER } : {}),
  ...(env.AUTH_JWT_AUDIENCE ? { audience: env.AUTH_JWT_AUDIENCE } : {}),
});
process.stdout.write(`${token}\n`);
