import { join } from 'node:path';
import type { DataSourceOptions } from 'typeorm';
import { poolerMode } from './pooler';
import { TypeOrmLogger } from './typeorm-logger';

export interface DatabaseSettings {
  url: string;
  poolSize?: number;
  applicationName?: string;
  /** Longest wait for a connection (a new one, or a free one from the pool). */
  connectTimeoutMs?: number;
  /** Longest statement (statement_timeout); a streamed create's COPY lifts it for itself. */
  statementTimeoutMs?: number;
  /**
   * The entities, for a DataSource made outside Nest (the CLI, specs). In the
   * application each feature registers its own (TypeOrmModule.forFeature).
   */
  entities?: DataSourceOptions['entities'];
}

/** The one place that says how the service talks to PostgreSQL. */
export function dataSourceOptions(settings: DatabaseSettings): DataSourceOptions {
  return {
    type: 'postgres',
    url: settings.url,
    entities: settings.entities ?? [],
    migrations: [join(__dirname, 'migrations', '*.{ts,js}')],
    migrationsTableName: 'bulk_jobs_migrations',
    migrationsRun: false,
    synchronize: false,
    // Errors and warnings only, through the service's logger and without parameters (TypeOrmLogger).
    logging: ['error', 'warn'],
    logger: new TypeOrmLogger(),
    applicationName: settings.applicationName ?? 'bulk-jobs',
    extra: poolSettings(settings),
  };
}

/**
 * The node-postgres pool settings every pool of the service shares: TypeORM's
 * (the `extra` above) and the workers' own (src/engine/engine-pool.ts).
 */
export function poolSettings(settings: Omit<DatabaseSettings, 'applicationName'>) {
  return {
    max: settings.poolSize ?? 10,
    // Short, so that a request never waits long for a database that is away or
    // saturated: it fails, and the filter answers 503 with Retry-After.
    connectionTimeoutMillis: settings.connectTimeoutMs ?? 3000,
    // Notices a peer that vanished without closing the connection (a partition, a host gone).
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // Bounded so that a stuck statement cannot hold a pool slot forever. Sent
    // as startup parameters, which a pooler in transaction mode refuses: there
    // the role or the pooler sets them (src/database/pooler.ts).
    ...(poolerMode(settings.url) === 'transaction'
      ? {}
      : {
          statement_timeout: settings.statementTimeoutMs ?? 60_000,
          idle_in_transaction_session_timeout: 60_000,
        }),
  };
}
