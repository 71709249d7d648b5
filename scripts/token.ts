/**
 * Prints a signed bearer token for local use:
 *   npm run token -- --sub alice [--scope "bulk-jobs:read bulk-jobs:write"] [--ttl 3600]
 * It signs with AUTH_JWT_SECRET, or with the development secret under DATA_DIR
 * that the server uses when AUTH_JWT_SECRET is not set.
 */
import jwt from 'jsonwebtoken';
import { parseArgs } from 'node:util';
import { ConfigError, loadEnv } from '../src/config/env';
import { resolveJwtSecret } from '../src/auth/jwt-secret';
import { SCOPES } from '../src/auth/scopes';

const USAGE = `usage: npm run token -- --sub NAME [--scope "${SCOPES.read} ${SCOPES.write}"] [--ttl SECONDS]`;

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

function parse() {
  try {
    return parseArgs({
      options: {
        sub: { type: 'string' },
        scope: { type: 'string', default: `${SCOPES.read} ${SCOPES.write}` },
        ttl: { type: 'string', default: '3600' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    return fail(`${(err as Error).message}\n${USAGE}`);
  }
}

function main(): void {
  const values = parse();
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.sub?.trim()) fail(USAGE);
  const ttl = Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0) fail(`--ttl must be a positive whole number of seconds\n${USAGE}`);

  let env;
  try {
    env = loadEnv();
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  const secret = resolveJwtSecret(env);
  if (!secret) {
    fail('No HS256 secret: set AUTH_JWT_SECRET (tokens for a JWKS setup come from your identity provider).');
  }
  const token = jwt.sign({ sub: values.sub, scope: values.scope }, secret, {
    algorithm: 'HS256',
    expiresIn: ttl,
    ...(env.AUTH_JWT_ISSUER ? { issuer: env.AUTH_JWT_ISSUER } : {}),
    ...(env.AUTH_JWT_AUDIENCE ? { audience: env.AUTH_JWT_AUDIENCE } : {}),
  });
  process.stdout.write(`${token}\n`);
}

main();
