import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { isDatabaseUnavailable } from '../database/database-errors';
import { queryRows } from '../database/sql';

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
    @InjectDataSource() private readonly db: DataSource,
  ) {}

  /** The database answers a query. */
  database<const Key extends string>(key: Key) {
    return this.health
      .check(key)
      .attempt(async () => {
        try {
          await this.db.query('SELECT 1');
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
        const known = this.db.migrations.map((m) => m.name ?? m.constructor.name);
        let applied: Set<string>;
        try {
          const table = this.db.options.migrationsTableName ?? 'migrations';
          const rows = await queryRows<{ name: string }>(this.db, `SELECT name FROM "${table}"`);
          applied = new Set(rows.map((r) => r.name));
        } catch (err) {
          throw new Error(
            isDatabaseUnavailable(err) ? unreachable(err) : 'the applied migrations cannot be read',
            {
              cause: err,
            },
          );
        }
        const pending = known.filter((name) => !applied.has(name));
        if (pending.length > 0) throw new Error(`not applied: ${pending.join(', ')}`);
        return { applied: known.length };
      })
      .withTimeout(CHECK_TIMEOUT_MS);
  }
}

function unreachable(err: unknown): string {
  return isDatabaseUnavailable(err) ? 'the database is unreachable' : 'the database query failed';
}
