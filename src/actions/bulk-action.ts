import { SetMetadata } from '@nestjs/common';

/** A JSON Schema (draft 2020-12 subset that Ajv understands) for an action's params. */
export type JsonSchema = Record<string, unknown>;

/** What an action is given for one item. */
export interface ActionContext<P = Record<string, unknown>> {
  jobId: string;
  /** The item's position in the job. */
  seq: number;
  targetId: string;
  data: Record<string, unknown> | null;
  params: P;
  /** 1 for the first attempt; a retry, or a re-run after a crash or a lost lease, counts up. */
  attempt: number;
  /**
   * One key per item of the job, the same on every attempt: `<job id>:<seq>`
   * (printable ASCII, under 64 characters). Items of other jobs never share
   * it. Delivery is at least once, so an action may run twice for one item; an
   * action that talks to another system passes this on, so that the other
   * side applies the item's effect once and answers a repeat with the first
   * result.
   */
  idempotencyKey: string;
  /** Aborted when the worker shuts down or the item's lease is lost. */
  signal: AbortSignal;
}

/**
 * A registered action. Implement it as a Nest provider decorated with
 * `@BulkAction()`; the registry discovers it at start-up.
 */
export interface BulkActionHandler<P = Record<string, unknown>> {
  readonly name: string;
  readonly description: string;
  readonly paramsSchema: JsonSchema;
  /** Resolves with an optional JSON result; throws to fail the attempt. */
  execute(ctx: ActionContext<P>): Promise<unknown>;
  /**
   * Checks that JSON Schema cannot express (e.g. a URL's host against an
   * allow-list), after the schema passed. Returns per-field messages keyed
   * `params.<field>`, or null when the params are valid.
   */
  validateParams?(params: P): Record<string, string> | null;
}

export const BULK_ACTION_METADATA = 'bulk-jobs:action';

/** Marks a provider as a bulk action handler. */
export const BulkAction = (): ClassDecorator => SetMetadata(BULK_ACTION_METADATA, true);

/**
 * The error an action throws to say how an attempt failed. Any other error is
 * treated as retryable with code `ACTION_ERROR`.
 */
export class ActionFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    /** A minimum delay before the next attempt (e.g. from Retry-After). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ActionFailure';
  }
}
