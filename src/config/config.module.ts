import { Global, Module } from '@nestjs/common';
import { Env } from './env';

/**
 * Makes the validated environment injectable as `Env`. The instance is built
 * once by the process entry point (main.ts, worker.ts, tests) and handed in,
 * so that a bad value fails before anything starts.
 */
@Global()
@Module({})
export class ConfigModule {
  static forRoot(env: Env) {
    return {
      module: ConfigModule,
      providers: [{ provide: Env, useValue: env }],
      exports: [Env],
    };
  }
}
