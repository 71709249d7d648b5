import { type DynamicModule, Module } from '@nestjs/common';
import { Metrics } from './metrics';
import { MetricsController } from './metrics.controller';
import { MetricsServer } from './metrics-server';

/**
 * Prometheus metrics (with the jobs-by-status and queue-depth gauges that
 * src/bulk-jobs registers in a process with the API). With METRICS_PORT set,
 * they are served on that port alone (MetricsServer), so that the API's port
 * can be public while the metrics are not; else an API process serves them at
 * GET /metrics on its own port, and a worker-only process not at all.
 */
@Module({})
export class MetricsModule {
  static forRoot({ api, ownPort }: { api: boolean; ownPort: boolean }): DynamicModule {
    return {
      module: MetricsModule,
      global: true,
      controllers: api && !ownPort ? [MetricsController] : [],
      providers: [Metrics, ...(ownPort ? [MetricsServer] : [])],
      exports: [Metrics],
    };
  }
}
