import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ActionsModule } from '../actions/actions.module';
import { CursorCodec } from '../common/pagination/cursor';
import { Env } from '../config/env';
import { JOB_ENTITIES } from '../jobs/job-entities';
import { BulkJobCreator } from './bulk-job-creator';
import { BulkJobsController } from './bulk-jobs.controller';
import { BulkJobsIngestService } from './bulk-jobs-ingest.service';
import { BulkJobsPurger } from './bulk-jobs-purger';
import { BulkJobsRepository } from './bulk-jobs.repository';
import { BulkJobsService } from './bulk-jobs.service';
import { resolveCursorKeys } from './cursor-keys';
import { JobGauges } from './job-gauges';
import { JobEventsService } from './job-events.service';
import { JobCountsController } from './job-counts.controller';

@Module({
  imports: [ActionsModule, TypeOrmModule.forFeature(JOB_ENTITIES)],
  controllers: [BulkJobsController, JobCountsController],
  providers: [
    BulkJobsRepository,
    {
      provide: CursorCodec,
      inject: [Env],
      useFactory: (env: Env) => new CursorCodec(resolveCursorKeys(env)),
    },
    BulkJobCreator,
    BulkJobsService,
    BulkJobsIngestService,
    BulkJobsPurger,
    JobEventsService,
    JobGauges,
  ],
  exports: [BulkJobsService],
})
export class BulkJobsModule {}
