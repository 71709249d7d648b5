import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppModule } from './app.module';
import { configureApp, createFastifyAdapter, OPENAPI_PATH } from './app.setup';
import { closeOnSignals, resolveDatabase, runProcess, type Started } from './bootstrap';
import { StartupError } from './config/startup-error';
import { loadEnv, type Env } from './config/env';
import { unsafeApiSettings } from './config/production';
import { createAppLogger } from './logging/app-logger';
import { UI_PATH } from './ui/ui.controller';

/**
 * The API process. By default it also runs a worker (the embedded default of
 * `npm start`); with `--no-worker` (`npm run start:api`) it serves HTTP only
 * and separate worker processes (`npm run start:worker`) run the items.
 */
async function bootstrap(started: Started): Promise<void> {
  const env = loadEnv();
  const unsafe = unsafeApiSettings(env);
  if (unsafe.length > 0) {
    throw new StartupError(`Refusing to start with NODE_ENV=production: ${unsafe.join(' ')}`);
  }
  const appLogger = createAppLogger(env);
  // Every line is pino's from here on, the framework's included.
  Logger.overrideLogger(appLogger);
  const logger = new Logger('Main');
  const worker = !process.argv.includes('--no-worker');
  const database = await resolveDatabase(env, logger);
  started.database = database;

  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot({ env, databaseUrl: database.url, api: true, worker }),
    createFastifyAdapter(env),
    // bodyParser: false keeps Nest from adding its urlencoded parser: JSON (Fastify's own parser,
    // bounded by BODY_LIMIT_BYTES) and NDJSON are the only request bodies.
    { logger: appLogger, bodyParser: false },
  );
  // Installed before listening, so that a signal during start-up still drains the worker.
  closeOnSignals(() => app.close(), database, logger);
  await configureApp(app, env, appLogger);
  await app.listen({ port: env.PORT, host: env.HOST }).catch((err: unknown) => {
    throw cannotListen(err, env);
  });

  const shown = env.HOST === '0.0.0.0' || env.HOST === '::' ? 'localhost' : env.HOST;
  logger.log(
    `API listening on http://${shown}:${env.PORT}, docs at http://${shown}:${env.PORT}/${OPENAPI_PATH}` +
      (env.UI_ENABLED ? `, dashboard at http://${shown}:${env.PORT}/${UI_PATH}` : '') +
      (worker ? '; a worker runs in this process' : '; no worker in this process'),
  );
}

/** A port that is taken, or closed to this user, is for the person starting the process to fix: one line. */
function cannotListen(err: unknown, env: Env): unknown {
  const where = `Cannot listen on ${env.HOST}:${env.PORT}`;
  switch ((err as { code?: string }).code) {
    case 'EADDRINUSE':
      return new StartupError(`${where}: the port is in use (EADDRINUSE). Set PORT to a free port.`);
    case 'EACCES':
      return new StartupError(
        `${where}: this user may not use that port (EACCES). Set PORT to 1024 or above.`,
      );
    case 'EADDRNOTAVAIL':
      return new StartupError(
        `${where}: no such address here (EADDRNOTAVAIL). Set HOST to an address of this machine.`,
      );
    default:
      return err;
  }
}

runProcess(bootstrap);
