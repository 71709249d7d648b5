import { Logger as NestLogger } from '@nestjs/common';
import type { Logger, QueryRunner } from 'typeorm';
import { loggableMessage } from './database-errors';

/**
 * TypeORM's lines (it runs the migrations) through the service's logger,
 * never with a statement's parameters: TypeORM's own console logger prints
 * a failing statement's parameters, outside pino and its redaction. A failed
 * statement is logged with its SQL (the migrations' fixed text) and its
 * error as loggableMessage has it.
 */
export class TypeOrmLogger implements Logger {
  private readonly logger = new NestLogger('TypeORM');

  logQuery(): void {}

  logQueryError(error: string | Error, query: string, _parameters?: unknown[], _runner?: QueryRunner): void {
    this.logger.error(`query failed (${loggableMessage(error)}): ${oneLine(query)}`);
  }

  logQuerySlow(time: number, query: string): void {
    this.logger.warn(`query took ${time} ms: ${oneLine(query)}`);
  }

  logSchemaBuild(): void {}

  logMigration(message: string): void {
    this.logger.log(message);
  }

  log(level: 'log' | 'info' | 'warn', message: unknown): void {
    if (level === 'warn') this.logger.warn(String(message));
    else this.logger.log(String(message));
  }
}

const oneLine = (sql: string) => sql.replace(/\s+/g, ' ').trim().slice(0, 500);
