import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BulkJob } from '../jobs/bulk-job.entity';
import { WebhookDeliveryService } from './webhook-delivery.service';
import { WebhooksRepository } from './webhooks.repository';

/** Webhook delivery: imported by AppModule in every process that runs a worker. */
@Module({
  imports: [TypeOrmModule.forFeature([BulkJob])],
  providers: [WebhooksRepository, WebhookDeliveryService],
  exports: [WebhookDeliveryService],
})
export class WebhooksModule {}
