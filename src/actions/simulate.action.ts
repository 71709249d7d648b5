import { Injectable } from '@nestjs/common';
import { setTimeout as delay } from 'node:timers/promises';
import { ActionFailure, BulkAction, type ActionContext, type BulkActionHandler } from './bulk-action';

export interface SimulateParams {
  delay_ms: number;
  fail_targets: string[];
}

/** Waits, then succeeds or fails permanently: for demos and tests. */
@BulkAction()
@Injectable()
export class SimulateAction implements BulkActionHandler<SimulateParams> {
  readonly name = 'simulate';
  readonly description =
    'Waits delay_ms for each item, then fails (permanently) the targets listed in fail_targets and succeeds the others. For demos and tests.';
  readonly paramsSchema = {
    type: 'object',
    additionalProperties: false,
    properties: {
      delay_ms: {
        type: 'integer',
        minimum: 0,
        maximum: 60_000,
        default: 0,
        description: 'Wait per item, in milliseconds.',
      },
      fail_targets: {
        type: 'array',
        items: { type: 'string', minLength: 1, maxLength: 512 },
        maxItems: 100_000,
        default: [],
        description: 'Target ids whose items fail (code SIMULATED_FAILURE, not retried).',
      },
    },
  };

  /** fail_targets as a set, built once per claimed batch (each claim has its own params object). */
  private readonly failSets = new WeakMap<SimulateParams, Set<string>>();

  async execute(ctx: ActionContext<SimulateParams>): Promise<unknown> {
    const { delay_ms: wait = 0 } = ctx.params;
    if (wait > 0) await delay(wait, undefined, { signal: ctx.signal });
    if (this.failTargets(ctx.params).has(ctx.targetId)) {
      throw new ActionFailure('SIMULATED_FAILURE', `target ${ctx.targetId} is listed in fail_targets`, false);
    }
    return null;
  }

  private failTargets(params: SimulateParams): Set<string> {
    let set = this.failSets.get(params);
    if (!set) {
      set = new Set(params.fail_targets ?? []);
      this.failSets.set(params, set);
    }
    return set;
  }
}
