import { Logger, Module, type OnApplicationBootstrap, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { usesGeneratedSecret } from '../auth/jwt-secret';
import { Env } from '../config/env';
import { UI_PATH, UiController } from './ui.controller';
import { UI_STATIC_DIR, UiFiles } from './ui-files';

/** The operator's dashboard at /ui (UI_ENABLED), built into UI_STATIC_DIR by `npm run build`. */
@Module({
  controllers: [UiController],
  providers: [
    {
      provide: UiFiles,
      inject: [Env],
      useFactory: (env: Env) => new UiFiles(UI_STATIC_DIR, { devTokens: usesGeneratedSecret(env) }),
    },
  ],
})
export class UiModule implements OnModuleInit, OnApplicationBootstrap {
  constructor(
    private readonly files: UiFiles,
    private readonly http: HttpAdapterHost,
  ) {}

  /**
   * /ui/ to /ui, query kept: Nest routes no trailing slash, and the API's router is strict about
   * them on purpose, but people type this address by hand.
   */
  onModuleInit(): void {
    const fastify = this.http.httpAdapter.getInstance<FastifyInstance>();
    fastify.get(`/${UI_PATH}/`, (request, reply) => {
      const query = request.url.indexOf('?');
      void reply.redirect(`/${UI_PATH}${query < 0 ? '' : request.url.slice(query)}`, 308);
    });
  }

  onApplicationBootstrap(): void {
    if (!this.files.built) {
      new Logger('Ui').warn(
        `UI_ENABLED is on but the dashboard is not built (${UI_STATIC_DIR} has no index.html): ` +
          '/ui answers 404. Run npm run build.',
      );
    }
  }
}
