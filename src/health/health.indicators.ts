import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { Database } from '../database/database';
import { isDatabaseUnavailable } from '../database/database-errors';
import { pendingMigrations } from '../database/migrate';

/** Each check gives up after this long, so that a probe never waits on a database that does not answer. */
export const CHECK_TIMEOUT_MS = 2000;

/**
 * The readiness checks. Their messages are written here, never copied from
 * the driver: a probe's body must not reveal hosts, ports or SQL.
 */
@Injectable()
export class DatabaseHealthIndicators {
  constructor(
    private readonly health: HealthIndicatorService,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly db: Database,
  ) {}

  /** The database answers a query, on the connections the API's requests use. */
  database<const Key extends string>(key: Key) {
    return this.health
      .check(key)
      .attempt(async () => {
        try {
          await this.db.ping();
        } catch (err) {
          throw new Error(unreachable(err), { cause: err });
        }
      })
      .withTimeout(CHECK_TIMEOUT_MS);
  }

  /** Every migration this code knows of has been applied. */
  migrations<const Key extends string>(key: Key) {
    return this.health
      .check(key)
      .attempt(async () => {
        let pending: string[];
        try {
          pending = await pendingMigrations(this.dataSource, this.db.pool);
        } catch (err) {
          throw new Error(
            isDatabaseUnavailable(err) ? unreachable(err) : 'the applied migrations cannot be read',
            { cause: err },
          );
        }
        if (pending.length > 0) throw new Error(`not applied: ${pending.join(', ')}`);
        return { applied: this.dataSource.migrations.length };
      })
      .withTimeout(CHECK_TIMEOUT_MS);
  }
}

function unreachable(err: unknown): string {
  return isDatabaseUnavailable(err) ? 'the database is unreachable' : 'the database query failed';
}
