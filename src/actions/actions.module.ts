import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ActionsController } from './actions.controller';
import { ActionsRegistry } from './actions.registry';
import { NoopAction } from './noop.action';

@Module({
  imports: [DiscoveryModule],
  controllers: [ActionsController],
  providers: [ActionsRegistry, NoopAction],
  exports: [ActionsRegistry],
})
export class ActionsModule {}
