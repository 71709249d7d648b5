import 'reflect-metadata';
import { type INestApplicationContext, Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { closeOnSignals, resolveDatabase, runProcess, type Started } from './bootstrap';
import { loadEnv } from './config/env';
import { createAppLogger } from './logging/app-logger';

/**
 * A worker process without HTTP (`npm run start:worker`). Run as many as
 * wanted, on as many machines, against one database. On SIGTERM it stops
 * claiming, lets running items finish within WORKER_SHUTDOWN_GRACE_MS,
 * releases the rest and exits 0.
 */
async function bootstrap(started: Started): Promise<void> {
  const env = loadEnv();
  const appLogger = createAppLogger(env);
  Logger.overrideLogger(appLogger);
  const logger = new Logger('Main');
  const database = await resolveDatabase(env, logger);
  started.database = database;
  const context: { app?: INestApplicationContext } = {};
  // Installed first: the worker starts claiming as soon as the context is initialised.
  closeOnSignals(async () => context.app?.close(), database, logger);
  context.app = await NestFactory.createApplicationContext(
    AppModule.forRoot({ env, databaseUrl: database.url, api: false, worker: true }),
    { logger: appLogger },
  );
  logger.log('worker process ready');
}

runProcess(bootstrap);
