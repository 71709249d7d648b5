import { type DynamicModule, Module } from '@nestjs/common';
import { ActionsModule } from '../actions/actions.module';
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
        { provide: ENGINE_POOL, useFactory: () => createEnginePool(databaseUrl, 'main') },
        { provide: CLAIM_POOL, useFactory: () => createEnginePool(databaseUrl, 'claim') },
        EngineStore,
        WorkerService,
      ],
      exports: [WorkerService],
    };
  }
}
