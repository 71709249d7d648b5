import { Injectable } from '@nestjs/common';
import { BulkAction, type BulkActionHandler } from './bulk-action';

/** Succeeds at once: for dry runs and benchmarks. */
@BulkAction()
@Injectable()
export class NoopAction implements BulkActionHandler {
  readonly name = 'noop';
  readonly description = 'Does nothing and succeeds at once (dry runs, benchmarks).';
  readonly paramsSchema = { type: 'object', additionalProperties: false, properties: {} };

  execute(): Promise<unknown> {
    return Promise.resolve(null);
  }
}
