import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppModule } from './app.module';
import { configureApp, createFastifyAdapter, OPENAPI_PATH } from './app.setup';
import { closeOnSignals, logLevels, resolveDatabase } from './bootstrap';
import { ConfigError, loadEnv } from './config/env';

/**
 * The API process. By default it also runs a worker (the embedded default of
 * `npm start`); with `--no-worker` (`npm run start:api`) it serves HTTP only
 * and separate worker processes (`npm run start:worker`) run the items.
 */
async function bootstrap(): Promise<void> {
  const logger = new Logger('Main');
  const env = loadEnv();
  const worker = !process.argv.includes('--no-worker');
  const database = await resolveDatabase(env, logger);

  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot({ env, databaseUrl: database.url, api: true, worker }),
    createFastifyAdapter(env),
    { logger: logLevels(env.LOG_LEVEL) },
  );
  // Installed before listening, so that a signal during start-up still drains the worker.
  closeOnSignals(() => app.close(), database, logger);
  await configureApp(app, env);
  await app.listen({ port: env.PORT, host: env.HOST });

  const shown = env.HOST === '0.0.0.0' || env.HOST === '::' ? 'localhost' : env.HOST;
  logger.log(
    `API listening on http://${shown}:${env.PORT}, docs at http://${shown}:${env.PORT}/${OPENAPI_PATH}` +
      (worker ? '; a worker runs in this process' : '; no worker in this process'),
  );
}

bootstrap().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(err.message);
  } else {
    console.error(err);
  }
  process.exit(1);
});
