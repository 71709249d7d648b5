import { JOB_ENTITIES } from './jobs/job-entities';
import { RateLimitWindow } from './limits/rate-limit-window.entity';

/**
 * Every table's entity: the schema the migrations build, as ormconfig.ts (the
 * TypeORM CLI) and the schema spec see it. Each feature registers its own at
 * run time (TypeOrmModule.forFeature).
 */
export const SCHEMA_ENTITIES = [...JOB_ENTITIES, RateLimitWindow];
