import { Test } from '@nestjs/testing';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { getDataSourceToken } from '@nestjs/typeorm';
import request from 'supertest';
import type { DataSource } from 'typeorm';
import { AppModule } from '../../src/app.module';
import { configureApp, createFastifyAdapter } from '../../src/app.setup';
import { createAppLogger } from '../../src/logging/app-logger';
import { testEnv } from './test-env';

export interface TestApp {
  app: NestFastifyApplication;
  db: DataSource;
  /** supertest bound to the app's HTTP server. */
  http: () => ReturnType<typeof request>;
  close: () => Promise<void>;
}

/** Boots the real AppModule, set up exactly as main.ts does, on the test database. */
export async function createTestApp(envOverrides: Record<string, string> = {}): Promise<TestApp> {
  const env = testEnv(envOverrides);
  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.forRoot({ env, databaseUrl: env.DATABASE_URL! })],
  }).compile();
  // As main.ts: pino (quiet at the tests' LOG_LEVEL=error), and no urlencoded body parser.
  const logger = createAppLogger(env);
  const app = moduleRef.createNestApplication<NestFastifyApplication>(createFastifyAdapter(env), {
    logger,
    bodyParser: false,
  });
  await configureApp(app, env, logger);
  await app.getHttpAdapter().getInstance().ready();
  const db = app.get<DataSource>(getDataSourceToken());
  return {
    app,
    db,
    http: () => request(app.getHttpServer()),
    close: () => app.close(),
  };
}
