import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import { Pool, type PoolClient, type QueryResultRow } from 'pg';
import type { ObjectLiteral, QueryBuilder } from 'typeorm';
import { poolSettings, type DatabaseSettings } from './data-source-options';
import { transaction, type Queryable } from './sql';

/**
 * The connections the API's statements run on: a pg pool of the service's
 * own, beside TypeORM's. TypeORM knows the schema (the entities, the
 * migrations) and writes the statements it can say; they run here as plain
 * round trips. Measured on the API benchmark's GET (bench/README.md, "API"):
 * TypeORM's query runner costs 12 µs of CPU per statement more than the pool
 * (a tenth of a request), and reading rows into entity instances 150 µs.
 */
export class Database implements OnApplicationShutdown {
  private readonly logger = new Logger('Database');
  readonly pool: Pool;

  constructor(settings: DatabaseSettings) {
    this.pool = new Pool({
      ...poolSettings(settings),
      connectionString: settings.url,
      application_name: settings.applicationName ?? 'bulk-jobs',
    });
    // An idle connection that breaks must not crash the process; the next checkout reconnects.
    this.pool.on('error', (err) => this.logger.warn(`idle database connection failed: ${err.message}`));
  }

  /** A statement TypeORM's query builder made for this request, with its parameters. */
  async rowsOf<R extends QueryResultRow>(
    builder: QueryBuilder<ObjectLiteral>,
    on: Queryable = this.pool,
  ): Promise<R[]> {
    const [text, values] = builder.getQueryAndParameters();
    return (await on.query<R>(text, values)).rows;
  }

  /** The API's one way to run statements together: see transaction() in sql.ts. */
  transaction<T>(fn: (tx: PoolClient) => Promise<T>): Promise<T> {
    return transaction(this.pool, fn);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end();
  }
}
