import { type DynamicModule, Module } from '@nestjs/common';
import { Metrics } from './metrics';
import { MetricsController } from './metrics.controller';
import { MetricsServer } from './metrics-server';

/**
 * Prometheus metrics. A process with the HTTP API serves them at GET /metrics
 * (with the jobs-by-status and queue-depth gauges that src/bulk-jobs
 * registers); a worker-only process serves its own on METRICS_PORT when that
 * is set.
 */
@Module({})
export class MetricsModule {
  static forRoot({ api }: { api: boolean }): DynamicModule {
    return {
      module: MetricsModule,
      global: true,
      controllers: api ? [MetricsController] : [],
      providers: [Metrics, ...(api ? [] : [MetricsServer])],
      exports: [Metrics],
    };
  }
}
