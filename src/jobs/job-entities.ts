import { BulkJobIdempotencyKey, BulkJobItem } from './bulk-job-item.entity';
import { BulkJobWebhook } from './bulk-job-webhook.entity';
import { BulkJob } from './bulk-job.entity';

/** Every entity of the jobs' tables: registered by the API (TypeOrmModule.forFeature) and by ormconfig.ts. */
export const JOB_ENTITIES = [BulkJob, BulkJobItem, BulkJobIdempotencyKey, BulkJobWebhook];
