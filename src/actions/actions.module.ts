import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ActionsController } from './actions.controller';
import { ActionsRegistry } from './actions.registry';
import { HttpAction } from './http.action';
import { NoopAction } from './noop.action';
import { SimulateAction } from './simulate.action';

@Module({
  imports: [DiscoveryModule],
  controllers: [ActionsController],
  providers: [ActionsRegistry, NoopAction, SimulateAction, HttpAction],
  exports: [ActionsRegistry],
})
export class ActionsModule {}
