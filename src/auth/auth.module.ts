import { type DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import type { Env } from '../config/env';
import { AuthGuard } from './auth.guard';
import { DevTokenController } from './dev-token.controller';
import { usesGeneratedSecret } from './jwt-secret';
import { TokenVerifier } from './token-verifier';

@Module({})
export class AuthModule {
  /** The development token endpoint is part of the app only while the generated secret is in use. */
  static forRoot(env: Env): DynamicModule {
    return {
      module: AuthModule,
      controllers: usesGeneratedSecret(env) ? [DevTokenController] : [],
      providers: [TokenVerifier, { provide: APP_GUARD, useClass: AuthGuard }],
      exports: [TokenVerifier],
    };
  }
}
