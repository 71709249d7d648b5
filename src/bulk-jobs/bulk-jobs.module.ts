import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ActionsModule } from '../actions/actions.module';
import { JOB_ENTITIES } from '../jobs/job-entities';
import { BulkJobsController } from './bulk-jobs.controller';
import { BulkJobsIngestService } from './bulk-jobs-ingest.service';
import { BulkJobsPurger } from './bulk-jobs-purger';
import { BulkJobsService } from './bulk-jobs.service';
import { JobEventsService } from './job-events.service';

@Module({
  imports: [ActionsModule, TypeOrmModule.forFeature(JOB_ENTITIES)],
  controllers: [BulkJobsController],
  providers: [BulkJobsService, BulkJobsIngestService, BulkJobsPurger, JobEventsService],
  exports: [BulkJobsService],
})
export class BulkJobsModule {}
