import type { DynamicModule, Type } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import request from 'supertest';
import type { DataSource } from 'typeorm';
import { AppModule } from '../../src/app.module';
import { configureApp, createFastifyAdapter } from '../../src/app.setup';
import { type AppLogger, createAppLogger } from '../../src/logging/app-logger';
import { testEnv } from './test-env';

export interface TestApp {
  app: NestFastifyApplication;
  db: DataSource;
  /** supertest bound to the app's HTTP server. */
  http: () => ReturnType<typeof request>;
  close: () => Promise<void>;
}

export interface BootOptions {
  /** The database to use (default: the run's test database). */
  databaseUrl?: string;
  /** Run a worker in the process, as `npm start` does. */
  worker?: boolean;
  env?: Record<string, string>;
  /** The logger (default: pino at the tests' LOG_LEVEL=error, i.e. quiet). */
  logger?: AppLogger;
  /** Extra modules, as an embedding application adds them. */
  imports?: (Type | DynamicModule)[];
  /** Providers replaced by these values (Nest's overrideProvider), e.g. the Clock. */
  overrides?: ProviderOverride[];
}

export interface ProviderOverride {
  /** The provider's token: a class (an abstract one too), a string or a symbol. */
  provide: unknown;
  useValue: unknown;
}

/**
 * The real AppModule set up exactly as main.ts does it (pino, no urlencoded
 * body parser, configureApp), with what a spec may choose: any database (one
 * it starts and stops itself), a worker, a logger whose lines it reads, extra
 * modules, and providers replaced (a clock the spec moves itself).
 */
export async function bootTestApp(opts: BootOptions = {}): Promise<TestApp> {
  const env = testEnv({ ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}), ...opts.env });
  const builder = Test.createTestingModule({
    imports: [
      AppModule.forRoot({ env, databaseUrl: env.DATABASE_URL!, api: true, worker: opts.worker ?? false }),
      ...(opts.imports ?? []),
    ],
  });
  for (const { provide, useValue } of opts.overrides ?? [])
    builder.overrideProvider(provide).useValue(useValue);
  const moduleRef = await builder.compile();
  const logger = opts.logger ?? createAppLogger(env);
  const app = moduleRef.createNestApplication<NestFastifyApplication>(createFastifyAdapter(env), {
    logger,
    bodyParser: false,
  });
  await configureApp(app, env, logger);
  await app.getHttpAdapter().getInstance().ready();
  const db = app.get<DataSource>(getDataSourceToken());
  return { app, db, http: () => request(app.getHttpServer()), close: () => app.close() };
}

/** The API on the run's test database, with these settings. */
export function createTestApp(envOverrides: Record<string, string> = {}): Promise<TestApp> {
  return bootTestApp({ env: envOverrides });
}
