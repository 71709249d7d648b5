import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/**
 * The process's Prometheus metrics, in a registry of its own (not prom-client's
 * global one), so that several applications in one process (tests) do not
 * collide. Counters live in the process that does the work: the API's
 * request histogram in API processes, the engine's counters in processes
 * that run a worker.
 */
@Injectable()
export class Metrics {
  readonly registry = new Registry();

  /** Labelled with the route pattern (`/api/actions/bulk/jobs/:id`), never the raw URL. */
  readonly httpRequestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests by method, route pattern and status code, and how long they took.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly itemsProcessed = new Counter({
    name: 'bulk_jobs_items_processed_total',
    help: 'Item attempts recorded by this process, by action and outcome (succeeded, failed, retried).',
    labelNames: ['action', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly itemsClaimed = new Counter({
    name: 'bulk_jobs_items_claimed_total',
    help: 'Items claimed by the workers of this process, by action.',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });

  readonly claimDuration = new Histogram({
    name: 'bulk_jobs_claim_duration_seconds',
    help: 'How long one claim statement took, by result (claimed, idle: nothing to claim, busy, error).',
    labelNames: ['result'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly leaseReclaims = new Counter({
    name: 'bulk_jobs_lease_reclaims_total',
    help: 'Items whose lease expired (their worker died or lost the database) and that a sweep of this process took back.',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
