import type { DynamicModule, Type } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import request from 'supertest';
import type { DataSource } from 'typeorm';
import { AppModule } from '../../src/app.module';
import { configureApp, createFastifyAdapter } from '../../src/app.setup';
import { type AppLogger, createAppLogger } from '../../src/logging/app-logger';
import type { TestApp } from './app';
import { testEnv } from './test-env';

export interface BootOptions {
  /** The database to use (default: the run's test database). */
  databaseUrl?: string;
  /** Run a worker in the process, as `npm start` does. */
  worker?: boolean;
  env?: Record<string, string>;
  /** The logger (default: pino at the tests' LOG_LEVEL=error, i.e. quiet). */
  logger?: AppLogger;
  imports?: (Type | DynamicModule)[];
}

/**
 * The real AppModule set up exactly as main.ts does it, with the choices the
 * operability specs need: any database (one a spec starts and stops itself),
 * a worker, a logger whose lines the spec reads.
 */
export async function bootTestApp(opts: BootOptions = {}): Promise<TestApp> {
  const env = testEnv({ ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}), ...opts.env });
  const databaseUrl = env.DATABASE_URL!;
  const moduleRef = await Test.createTestingModule({
    imports: [
      AppModule.forRoot({ env, databaseUrl, api: true, worker: opts.worker ?? false }),
      ...(opts.imports ?? []),
    ],
  }).compile();
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

/** A pino destination that keeps every line, raw and parsed, for assertions. */
export function captureLogs(): {
  lines: Record<string, unknown>[];
  text: () => string;
  write: (chunk: string) => void;
} {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  return {
    lines,
    text: () => raw.join(''),
    write: (chunk: string) => {
      raw.push(chunk);
      for (const line of chunk.split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      }
    },
  };
}
