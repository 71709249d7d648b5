import { type DynamicModule, Module } from '@nestjs/common';
import { ActionsModule } from './actions/actions.module';
import { AuthModule } from './auth/auth.module';
import { BulkJobsModule } from './bulk-jobs/bulk-jobs.module';
import { ConfigModule } from './config/config.module';
import type { Env } from './config/env';
import { DatabaseModule } from './database/database.module';
import { EngineModule } from './engine/engine.module';
import { HealthModule } from './health/health.module';
import { RateLimitModule } from './limits/rate-limit.module';
import { MetricsModule } from './metrics/metrics.module';
import { UiModule } from './ui/ui.module';
import { WebhooksModule } from './webhooks/webhooks.module';

export interface AppOptions {
  env: Env;
  /** The PostgreSQL to use: DATABASE_URL, or the embedded server's URL. */
  databaseUrl: string;
  /** Serve the HTTP API (default true). */
  api?: boolean;
  /** Run a worker that processes the items of every job (default false; main.ts turns it on). */
  worker?: boolean;
}

@Module({})
export class AppModule {
  static forRoot({ env, databaseUrl, api = true, worker = false }: AppOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(env),
        DatabaseModule.forRoot(databaseUrl, api ? 'bulk-jobs-api' : 'bulk-jobs-worker'),
        MetricsModule.forRoot({ api, ownPort: env.METRICS_PORT !== 0 }),
        ActionsModule,
        // RateLimitModule after AuthModule: its guard keys on the principal the AuthGuard sets.
        ...(api ? [AuthModule.forRoot(env), RateLimitModule, HealthModule, BulkJobsModule] : []),
        ...(api && env.UI_ENABLED ? [UiModule] : []),
        ...(worker ? [EngineModule.forRoot(databaseUrl), WebhooksModule] : []),
      ],
    };
  }
}
