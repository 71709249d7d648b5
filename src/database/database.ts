import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import { Pool, type PoolClient } from 'pg';
import { poolSettings, type DatabaseSettings } from './data-source-options';
import { behindTransactionPooler } from './pooler';
import { transaction } from './sql';

/**
 * The connections the API's statements run on: a pg pool of the service's
 * own, beside TypeORM's (which serves the migrations at start-up and holds no
 * connection once idle). TypeORM knows the schema (the entities, the
 * migrations) and writes the statements it can say; they run here as plain
 * round trips. Measured with the api benchmark (bench/README.md, "Data
 * access"): the same statements through TypeORM's query runner cost 12-14%
 * more CPU per GET and DELETE, and reading rows into entity instances
 * (findOne, the query builder's execute) 47-60% more.
 */
export class Database implements OnApplicationShutdown {
  private readonly logger = new Logger('Database');
  readonly pool: Pool;
  /**
   * Whether statements may be prepared once per connection (sql.ts,
   * prepared()): on a direct connection, or behind a pooler in session mode;
   * not behind a pooler in transaction mode.
   */
  readonly prepares: boolean;
  /** The most connections the pool opens (DATABASE_POOL_SIZE). */
  readonly maxConnections: number;

  constructor(settings: DatabaseSettings) {
    const pooled = poolSettings(settings);
    this.maxConnections = pooled.max;
    this.pool = new Pool({
      ...pooled,
      connectionString: settings.url,
      application_name: settings.applicationName ?? 'bulk-jobs',
    });
    this.prepares = !behindTransactionPooler(this.pool);
    // An idle connection that breaks must not crash the process; the next checkout reconnects.
    this.pool.on('error', (err) => this.logger.warn(`idle database connection failed: ${err.message}`));
  }

  /** Answers when the database does (readiness). */
  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  /** The API's one way to run statements together: see transaction() in sql.ts. */
  transaction<T>(fn: (tx: PoolClient) => Promise<T>): Promise<T> {
    return transaction(this.pool, fn);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end();
  }
}
