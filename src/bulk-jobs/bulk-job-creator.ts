import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { ActionsRegistry } from '../actions/actions.registry';
import { parseAllowedHosts, webhookUrlProblem, type AllowedHost } from '../actions/http-url';
import type { Principal } from '../auth/scopes';
import { ValidationFailedError } from '../common/problem-details/domain-error';
import { isUnstorableJsonText } from '../common/storable-json';
import { Env } from '../config/env';
import type { JobOptions } from '../jobs/job-types';
import { toJobResponse } from './bulk-job.mapper';
import { BulkJobNotFoundError, IdempotencyKeyReusedError, TooManyActiveJobsError } from './bulk-jobs.errors';
import { BulkJobsRepository, type Transaction } from './bulk-jobs.repository';
import type { BulkJobResponseDto } from './dto/bulk-job-response.dto';

export interface CreateResult {
  job: BulkJobResponseDto;
  /** True when an Idempotency-Key replay returned an earlier job. */
  replayed: boolean;
}

/** A job to create, its params validated (BulkJobCreator.validParams). */
export interface JobSpec {
  action: string;
  params: Record<string, unknown>;
  options?: JobOptions;
  labels?: Record<string, string>;
  /** The job whose items a retry takes. */
  retryOf?: string;
}

/**
 * Writes a create's items inside its transaction, one writer per body
 * format: `unnest` batches for a JSON body, COPY for an NDJSON stream.
 */
export interface ItemWriter {
  /** Writes the items of job `jobId`; returns how many there were. */
  write(tx: Transaction, jobId: string): Promise<number>;
  /** The request's fingerprint (request-hash.ts); complete once write() has returned. */
  requestHash(): string;
  /**
   * The fingerprint is complete before write(): the Idempotency-Key is then
   * claimed first, so that a replay writes no item. A stream's is known only
   * once every line has been read, so its key is claimed after the items.
   */
  readonly hashedBeforeWrite: boolean;
}

/** A live record holds the Idempotency-Key: rolls the create back, which then answers as a replay. */
class KeyTaken extends Error {}

/**
 * Creates jobs, from a JSON body or an NDJSON stream alike: one transaction
 * (the job's row, its items, their count, the Idempotency-Key, the
 * active-jobs check), one replay of an earlier request with the same key.
 */
@Injectable()
export class BulkJobCreator {
  private readonly allowedHosts: AllowedHost[];

  constructor(
    private readonly jobs: BulkJobsRepository,
    private readonly actions: ActionsRegistry,
    private readonly env: Env,
  ) {
    this.allowedHosts = parseAllowedHosts(env.ACTIONS_HTTP_ALLOWED_HOSTS);
  }

  /**
   * The spec's params, validated against its action's schema (defaults filled
   * in). Their size is checked first, before a schema walks them: every
   * representation of the job carries them, every page and event included.
   */
  validParams(spec: {
    action: string;
    params?: Record<string, unknown>;
    options?: JobOptions;
  }): Record<string, unknown> {
    if (spec.options?.notify) this.checkNotify(spec.options.notify.url);
    const params = spec.params ?? {};
    const json = JSON.stringify(params);
    const max = this.env.BULK_JOBS_MAX_PARAMS_BYTES;
    if (json.length > max / 3 && Buffer.byteLength(json) > max) {
      throw new ValidationFailedError(
        {
          params: `are ${Buffer.byteLength(json)} bytes as JSON, more than BULK_JOBS_MAX_PARAMS_BYTES (${max})`,
        },
        `The params are larger than this service accepts: at most ${max} bytes as JSON.`,
      );
    }
    const problems = this.actions.validateParams(spec.action, params);
    if (problems) throw new ValidationFailedError(problems);
    if (isUnstorableJsonText(json)) {
      throw new ValidationFailedError({ params: 'must not contain \\u0000 or unpaired surrogates' });
    }
    return params;
  }

  /**
   * A webhook is taken only to a URL the http action could call, and only
   * when this server signs webhooks: an unsigned event could be forged by
   * anyone who learns the URL, so none is ever sent.
   */
  private checkNotify(url: string): void {
    if (!this.env.WEBHOOKS_SIGNING_SECRET) {
      throw new ValidationFailedError({
        'options.notify':
          'cannot be delivered: this server has no WEBHOOKS_SIGNING_SECRET to sign webhooks with',
      });
    }
    const problem = webhookUrlProblem(url, this.allowedHosts);
    if (problem) throw new ValidationFailedError({ 'options.notify.url': problem });
  }

  /**
   * Creates the job and its items in one transaction, so that a bad item
   * leaves nothing behind. With an Idempotency-Key taken by an earlier
   * request, nothing is created: the answer is that request's job (or a 422
   * when it had another body). Without a key, a caller at the active-jobs cap
   * hears so before any item is written (for a stream, before its targets are
   * read); the check that decides runs in the transaction.
   */
  async create(
    principal: Principal,
    spec: JobSpec,
    items: ItemWriter,
    idempotencyKey?: string,
  ): Promise<CreateResult> {
    const owner = principal.sub;
    if (!idempotencyKey) await this.assertActiveJobRoom(owner, null);
    const id = randomUUID();
    try {
      await this.jobs.transaction(async (tx) => {
        await this.jobs.insertJob(tx, {
          id,
          owner,
          action: spec.action,
          params: spec.params,
          options: spec.options ?? {},
          retryOf: spec.retryOf ?? null,
          labels: spec.labels ?? {},
        });
        const claimKey = async () => {
          const record = { owner, key: idempotencyKey!, requestHash: items.requestHash(), jobId: id };
          if (!(await this.jobs.claimIdempotencyKey(tx, record))) throw new KeyTaken();
        };
        if (idempotencyKey && items.hashedBeforeWrite) await claimKey();
        await this.jobs.setTotalItems(tx, id, await items.write(tx, id));
        if (idempotencyKey && !items.hashedBeforeWrite) await claimKey();
        await this.assertActiveJobRoom(owner, id, tx);
      });
    } catch (err) {
      if (err instanceof KeyTaken) return this.replay(owner, idempotencyKey!, items.requestHash());
      throw err;
    }
    return { job: await this.jobOf(owner, id), replayed: false };
  }

  /**
   * Refuses the job `jobId` when its owner already has
   * BULK_JOBS_MAX_ACTIVE_PER_OWNER pending, running, paused or cancelling jobs. In
   * the create's transaction `tx`, the count is taken under a lock on the
   * owner's creates, held until it commits: two creates of one owner count
   * one after the other, so that they cannot both see room for one more job.
   */
  private async assertActiveJobRoom(owner: string, jobId: string | null, tx?: Transaction): Promise<void> {
    const max = this.env.BULK_JOBS_MAX_ACTIVE_PER_OWNER;
    if (max === 0) return;
    if (tx) await this.jobs.lockOwnerCreates(tx, owner);
    if ((await this.jobs.countActiveJobs(owner, jobId, tx)) >= max) throw new TooManyActiveJobsError(max);
  }

  /** The job an earlier request with this key created, or 422 when the key came with another body. */
  private async replay(owner: string, key: string, requestHash: string): Promise<CreateResult> {
    const record = await this.jobs.findIdempotencyKey(owner, key);
    // No record: it expired or its job was purged in between; very unlikely, and safe to report.
    if (!record || record.requestHash !== requestHash) throw new IdempotencyKeyReusedError();
    return { job: await this.jobOf(owner, record.jobId), replayed: true };
  }

  private async jobOf(owner: string, id: string): Promise<BulkJobResponseDto> {
    const job = await this.jobs.findJob(owner, id);
    if (!job) throw new BulkJobNotFoundError(id);
    return toJobResponse(job);
  }
}
