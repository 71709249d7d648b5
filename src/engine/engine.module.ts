import { type DynamicModule, Module } from '@nestjs/common';
import { ActionsModule } from '../actions/actions.module';
import { Env } from '../config/env';
import { CLAIM_POOL, createEnginePool, ENGINE_POOL } from './engine-pool';
import { EngineStore } from './engine-store';
import { WorkerService } from './worker.service';

/** A worker: imported by AppModule when the process runs one (npm start, npm run start:worker). */
@Module({})
export class EngineModule {
  static forRoot(databaseUrl: string): DynamicModule {
    return {
      module: EngineModule,
      imports: [ActionsModule],
      providers: [
        {
          provide: ENGINE_POOL,
          inject: [Env],
          useFactory: (env: Env) =>
            createEnginePool(databaseUrl, 'main', env.DATABASE_CONNECT_TIMEOUT_MS, env.WORKER_LEASE_MS),
        },
        {
          provide: CLAIM_POOL,
          inject: [Env],
          useFactory: (env: Env) =>
            createEnginePool(
              databaseUrl,
              'claim',
              env.DATABASE_CONNECT_TIMEOUT_MS,
              env.WORKER_LEASE_MS,
              env.WORKER_CLAIMS_IN_FLIGHT,
            ),
        },
        EngineStore,
        WorkerService,
      ],
      exports: [WorkerService],
    };
  }
}
