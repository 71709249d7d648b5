import { type DynamicModule, Module } from '@nestjs/common';
import { ActionsModule } from './actions/actions.module';
import { AuthModule } from './auth/auth.module';
import { BulkJobsModule } from './bulk-jobs/bulk-jobs.module';
import { ConfigModule } from './config/config.module';
import type { Env } from './config/env';
import { DatabaseModule } from './database/database.module';

export interface AppOptions {
  env: Env;
  /** The PostgreSQL to use: DATABASE_URL, or the embedded server's URL. */
  databaseUrl: string;
}

@Module({})
export class AppModule {
  static forRoot({ env, databaseUrl }: AppOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(env),
        DatabaseModule.forRoot(databaseUrl, 'bulk-jobs-api'),
        AuthModule,
        ActionsModule,
        BulkJobsModule,
      ],
    };
  }
}
