import { type DynamicModule, Logger, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Env } from '../config/env';
import { dataSourceOptions } from './data-source-options';
import { Database } from './database';
import { runMigrationsLocked } from './migrate';

@Module({})
export class DatabaseModule {
  /**
   * Connects to `url` (TypeORM's DataSource and the pool the statements run
   * on, Database) and, unless DATABASE_MIGRATIONS_RUN=false, applies pending
   * migrations.
   */
  static forRoot(url: string, applicationName: string): DynamicModule {
    return {
      module: DatabaseModule,
      global: true,
      imports: [
        TypeOrmModule.forRootAsync({
          inject: [Env],
          useFactory: (env: Env) => ({
            ...dataSourceOptions({
              url,
              poolSize: env.DATABASE_POOL_SIZE,
              applicationName,
              connectTimeoutMs: env.DATABASE_CONNECT_TIMEOUT_MS,
              statementTimeoutMs: env.DATABASE_STATEMENT_TIMEOUT_MS,
            }),
            // The features' entities (TypeOrmModule.forFeature): this module knows none of them.
            autoLoadEntities: true,
          }),
          dataSourceFactory: async (options) => new DataSource(options!).initialize(),
        }),
      ],
      providers: [
        {
          provide: Database,
          inject: [Env],
          useFactory: (env: Env) =>
            new Database({
              url,
              poolSize: env.DATABASE_POOL_SIZE,
              applicationName,
              connectTimeoutMs: env.DATABASE_CONNECT_TIMEOUT_MS,
              statementTimeoutMs: env.DATABASE_STATEMENT_TIMEOUT_MS,
            }),
        },
        {
          provide: 'DATABASE_MIGRATIONS',
          inject: [DataSource, Env],
          useFactory: async (dataSource: DataSource, env: Env) => {
            if (!env.DATABASE_MIGRATIONS_RUN) return [];
            const applied = await runMigrationsLocked(dataSource);
            if (applied.length > 0) new Logger('Database').log(`applied migrations: ${applied.join(', ')}`);
            return applied;
          },
        },
      ],
      exports: ['DATABASE_MIGRATIONS', Database],
    };
  }
}
