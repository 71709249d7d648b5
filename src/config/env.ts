import { plainToInstance, Transform } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  IsUrl,
  Max,
  Min,
  MinLength,
  validateSync,
} from 'class-validator';

const toBoolean = ({ value }: { value: unknown }): unknown => {
  if (typeof value !== 'string') return value;
  const v = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  return value;
};

const toInt = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value;

const emptyToUndefined = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && value.trim() === '' ? undefined : value;

/**
 * Every setting the service reads from the environment. A value that fails
 * validation stops the boot with a message naming the variable.
 */
export class Env {
  @IsIn(['development', 'production', 'test'])
  NODE_ENV: 'development' | 'production' | 'test' = 'development';

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(65535)
  PORT = 3000;

  @IsString()
  @MinLength(1)
  HOST = '0.0.0.0';

  @Transform(emptyToUndefined)
  @IsOptional()
  // Underscores are allowed because container hostnames (e.g. `pg_primary`) often have them.
  @IsUrl({ protocols: ['postgres', 'postgresql'], require_tld: false, require_protocol: true, allow_underscores: true })
  DATABASE_URL?: string;

  @Transform(toBoolean)
  @IsBoolean()
  DATABASE_MIGRATIONS_RUN = true;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1000)
  DATABASE_POOL_SIZE = 10;

  @IsString()
  @MinLength(1)
  DATA_DIR = '.data';

  @Transform(toInt)
  @IsInt()
  @Min(1024)
  @Max(65535)
  EMBEDDED_PG_PORT = 54329;

  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  @MinLength(32, { message: 'AUTH_JWT_SECRET must be at least 32 bytes long' })
  AUTH_JWT_SECRET?: string;

  @Transform(emptyToUndefined)
  @IsOptional()
  @IsUrl({ protocols: ['http', 'https'], require_tld: false, require_protocol: true })
  AUTH_JWKS_URL?: string;

  /** How long one fetch of the JWKS may take before the request is answered with a 503. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(60_000)
  AUTH_JWKS_TIMEOUT_MS = 5000;

  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  AUTH_JWT_ISSUER?: string;

  @Transform(emptyToUndefined)
  @IsOptional()
  @IsString()
  AUTH_JWT_AUDIENCE?: string;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3650)
  BULK_JOBS_RETENTION_DAYS = 30;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000_000)
  BULK_JOBS_MAX_INLINE_TARGETS = 100_000;

  /** Targets per streamed (application/x-ndjson) create. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100_000_000)
  BULK_JOBS_MAX_TARGETS = 10_000_000;

  @Transform(toInt)
  @IsInt()
  @Min(1000)
  @Max(86_400_000)
  BULK_JOBS_PURGE_INTERVAL_MS = 3_600_000;

  @Transform(toInt)
  @IsInt()
  @Min(1024)
  @Max(1024 * 1024 * 1024)
  BODY_LIMIT_BYTES = 16 * 1024 * 1024;

  @IsIn(['fatal', 'error', 'warn', 'log', 'debug', 'verbose'])
  LOG_LEVEL: 'fatal' | 'error' | 'warn' | 'log' | 'debug' | 'verbose' = 'log';
}

/** Variables whose values must never appear in an error message or a log. */
const SECRET_VARIABLES = new Set(['AUTH_JWT_SECRET']);

/** The offending value as shown in a ConfigError: secrets and URL passwords are masked. */
function shown(name: string, value: string | undefined): string {
  if (value === undefined) return 'nothing';
  if (SECRET_VARIABLES.has(name)) return `a value of ${value.length} characters`;
  return JSON.stringify(value.replace(/(\/\/[^/:@]*:)[^/@]*@/, '$1***@'));
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the environment; throws a ConfigError naming every bad variable. */
export function loadEnv(source: NodeJS.ProcessEnv = process.env): Env {
  const known = Object.keys(new Env());
  const picked: Record<string, string> = {};
  for (const key of known) {
    const value = source[key];
    if (value !== undefined) picked[key] = value;
  }
  const env = plainToInstance(Env, picked, { exposeDefaultValues: true });
  const errors = validateSync(env, { whitelist: false, forbidUnknownValues: true });
  if (errors.length > 0) {
    const problems = errors.map((e) => {
      const messages = Object.values(e.constraints ?? {}).join('; ');
      return `${e.property}: ${messages} (got ${shown(e.property, source[e.property])})`;
    });
    throw new ConfigError(problems);
  }
  if (env.NODE_ENV === 'production' && !env.AUTH_JWT_SECRET && !env.AUTH_JWKS_URL) {
    throw new ConfigError([
      'AUTH_JWT_SECRET or AUTH_JWKS_URL: one of them must be set when NODE_ENV=production',
    ]);
  }
  return env;
}
