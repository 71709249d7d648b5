import { Injectable, OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { BULK_ACTION_METADATA, type BulkActionHandler } from './bulk-action';

interface Registered {
  handler: BulkActionHandler;
  validate: ValidateFunction;
}

/** Every action the service can run, discovered from `@BulkAction()` providers. */
@Injectable()
export class ActionsRegistry implements OnModuleInit {
  private readonly actions = new Map<string, Registered>();
  private readonly ajv = addFormats(new Ajv({ allErrors: true, strict: true, useDefaults: true }));

  constructor(private readonly discovery: DiscoveryService) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      const metatype = wrapper.metatype;
      if (!instance || !metatype) continue;
      if (!Reflect.getMetadata(BULK_ACTION_METADATA, metatype)) continue;
      this.register(instance as BulkActionHandler);
    }
  }

  register(handler: BulkActionHandler): void {
    if (!/^[a-z][a-z0-9_.-]{0,63}$/.test(handler.name)) {
      throw new Error(`invalid action name ${JSON.stringify(handler.name)}`);
    }
    if (this.actions.has(handler.name)) {
      throw new Error(`action ${handler.name} is registered twice`);
    }
    this.actions.set(handler.name, { handler, validate: this.ajv.compile(handler.paramsSchema) });
  }

  list(): BulkActionHandler[] {
    return [...this.actions.values()].map((r) => r.handler).sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): BulkActionHandler | undefined {
    return this.actions.get(name)?.handler;
  }

  /**
   * Validates (and fills defaults into) `params` for `action`. Returns per-field
   * messages keyed `params.<path>`, or null when the params are valid.
   */
  validateParams(action: string, params: Record<string, unknown>): Record<string, string> | null {
    const registered = this.actions.get(action);
    if (!registered) return { action: `unknown action "${action}"; see GET /api/actions/bulk/actions` };
    if (!registered.validate(params)) return formatAjvErrors(registered.validate.errors ?? []);
    return registered.handler.validateParams?.(params) ?? null;
  }
}

function formatAjvErrors(errors: ErrorObject[]): Record<string, string> {
  const details: Record<string, string> = {};
  for (const e of errors) {
    const path = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
    let key = path ? `params.${path}` : 'params';
    if (e.keyword === 'additionalProperties') {
      key = `${key}.${String((e.params as { additionalProperty: string }).additionalProperty)}`;
      details[key] ??= 'is not a known parameter';
      continue;
    }
    if (e.keyword === 'required') {
      key = `${key}.${String((e.params as { missingProperty: string }).missingProperty)}`;
      details[key] ??= 'is required';
      continue;
    }
    details[key] ??= e.message ?? 'is not valid';
  }
  return details;
}
