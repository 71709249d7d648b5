import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { HealthController } from './health.controller';
import { DatabaseHealthIndicators } from './health.indicators';

/** GET /health/live and GET /health/ready, public, for probes and load balancers. */
@Module({
  // Readiness failures are answered (and logged once) by the problem filter, not by Terminus.
  imports: [TerminusModule.forRoot({ logger: false })],
  controllers: [HealthController],
  providers: [DatabaseHealthIndicators],
})
export class HealthModule {}
