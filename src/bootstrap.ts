import type { Logger } from '@nestjs/common';
import { StartupError } from './config/startup-error';
import { ConfigError, type Env } from './config/env';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './database/embedded-postgres';

export interface ResolvedDatabase {
  url: string;
  /** Set when DATABASE_URL is unset: stops the embedded server if this process started it. */
  embedded?: EmbeddedDatabase;
}

/**
 * DATABASE_URL, or else the embedded PostgreSQL: started by the first
 * process, reused by the next ones on the same machine (same DATA_DIR and
 * EMBEDDED_PG_PORT). Processes on several machines need DATABASE_URL.
 */
export async function resolveDatabase(env: Env, logger: Logger): Promise<ResolvedDatabase> {
  if (env.DATABASE_URL) return { url: env.DATABASE_URL };
  const embedded = await startEmbeddedPostgres({
    dataDir: env.DATA_DIR,
    port: env.EMBEDDED_PG_PORT,
    systemDir: env.EMBEDDED_PG_SYSTEM_DIR,
  });
  logger.log(
    `DATABASE_URL is not set: using the embedded PostgreSQL on 127.0.0.1:${env.EMBEDDED_PG_PORT}, ` +
      `data in ${embedded.dir}` +
      (embedded.reused ? ' (already running)' : ''),
  );
  return { url: embedded.url, embedded };
}

/**
 * On SIGINT or SIGTERM: close the app (workers drain first: they stop
 * claiming, finish or release their items), then stop the embedded database,
 * then exit 0. A second signal while closing is ignored.
 */
export function closeOnSignals(close: () => Promise<void>, database: ResolvedDatabase, logger: Logger): void {
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    logger.log(`${signal} received: shutting down`);
    let code = 0;
    try {
      await close();
    } catch (err) {
      logger.error(`shutdown failed: ${(err as Error).message}`);
      code = 1;
    }
    await database.embedded?.stop();
    process.exit(code);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => void shutdown(signal));
  }
}

/** What a process has started so far, for runProcess to undo when start-up fails. */
export interface Started {
  database?: ResolvedDatabase;
}

/**
 * Runs a process's start-up. If it fails, the error is printed (a
 * configuration error or a StartupError as its message alone, without a
 * stack), the embedded PostgreSQL it may have started is stopped, and the
 * process exits 1.
 */
export function runProcess(start: (started: Started) => Promise<void>): void {
  const started: Started = {};
  start(started).catch(async (err: unknown) => {
    console.error(err instanceof ConfigError || err instanceof StartupError ? err.message : err);
    await started.database?.embedded?.stop().catch(() => undefined);
    process.exit(1);
  });
}
