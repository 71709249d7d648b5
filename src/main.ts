import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppModule } from './app.module';
import { configureApp, createFastifyAdapter, OPENAPI_PATH } from './app.setup';
import { ConfigError, loadEnv } from './config/env';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './database/embedded-postgres';

async function bootstrap(): Promise<void> {
  const logger = new Logger('Main');
  const env = loadEnv();
  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = env.DATABASE_URL;
  if (!databaseUrl) {
    logger.log(`DATABASE_URL is not set: starting the embedded PostgreSQL under ${env.DATA_DIR}/postgres`);
    embedded = await startEmbeddedPostgres({ dataDir: env.DATA_DIR, port: env.EMBEDDED_PG_PORT });
    databaseUrl = embedded.url;
  }

  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot({ env, databaseUrl }),
    createFastifyAdapter(env),
    { logger: [env.LOG_LEVEL, ...higherLevels(env.LOG_LEVEL)] },
  );
  await configureApp(app, env);
  await app.listen({ port: env.PORT, host: env.HOST });

  const shown = env.HOST === '0.0.0.0' || env.HOST === '::' ? 'localhost' : env.HOST;
  logger.log(`API listening on http://${shown}:${env.PORT}, docs at http://${shown}:${env.PORT}/${OPENAPI_PATH}`);

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    logger.log(`${signal} received: shutting down`);
    await app.close();
    await embedded?.stop();
    process.exit(0);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => void shutdown(signal));
  }
}

const LEVELS = ['verbose', 'debug', 'log', 'warn', 'error', 'fatal'] as const;
function higherLevels(level: (typeof LEVELS)[number]): (typeof LEVELS)[number][] {
  return LEVELS.slice(LEVELS.indexOf(level) + 1);
}

bootstrap().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(err.message);
  } else {
    console.error(err);
  }
  process.exit(1);
});
