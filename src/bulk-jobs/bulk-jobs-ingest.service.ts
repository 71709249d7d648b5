import { Injectable } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Principal } from '../auth/scopes';
import { Env } from '../config/env';
import { ValidationFailedError } from '../common/problem-details/domain-error';
import { flattenValidationErrors } from '../common/validation';
import { BulkJobsRepository, type Transaction } from './bulk-jobs.repository';
import { BulkJobsService, KeyTakenSignal, type CreateResult } from './bulk-jobs.service';
import {
  CreateBulkJobSpecDto,
  MAX_JSON_DEPTH,
  TOO_DEEP,
  nestsDeeperThan,
  targetProblem,
  type TargetInput,
} from './dto/create-bulk-job.dto';
import { LineTooLongError, ndjsonLines } from './ndjson-lines';
import { RequestHasher } from './request-hash';

/** A line holds one target (at most 512 characters of id plus its data) or the job spec. */
const MAX_LINE_BYTES = 1024 * 1024;
/** Rows are handed to COPY in chunks of about this many characters. */
const COPY_CHUNK_CHARS = 256 * 1024;

/** A bad line; rolls the whole create back. */
class BadLineError extends ValidationFailedError {
  constructor(line: number, problem: string) {
    super({ [`line ${line}`]: problem }, `Line ${line}: ${problem}`);
    this.extensions.line = line;
  }
}

/** A job spec (the first line) with bad fields: details per field, and the line. */
class BadSpecError extends ValidationFailedError {
  constructor(line: number, details: Record<string, string>) {
    super(details, `Line ${line}: the job spec is not valid.`);
    this.extensions.line = line;
  }
}

/** The client closed the connection before the body was complete; nobody reads this answer. */
class IncompleteBodyError extends ValidationFailedError {
  constructor() {
    super({ body: 'ended before it was complete' }, 'The request body ended before it was complete.');
  }
}

/** How the request stream fails when its client goes away mid-body. */
const CLIENT_GONE_CODES = new Set(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR']);

/**
 * Streaming create (`application/x-ndjson`): the first line is the job spec,
 * every further line one target. The targets go into the items table through
 * COPY inside one transaction, so a bad line leaves nothing behind, and memory
 * stays bounded however many targets arrive.
 */
@Injectable()
export class BulkJobsIngestService {
  constructor(
    private readonly repository: BulkJobsRepository,
    private readonly jobs: BulkJobsService,
    private readonly env: Env,
  ) {}

  async createFromNdjson(
    principal: Principal,
    body: Readable,
    idempotencyKey?: string,
  ): Promise<CreateResult> {
    const lines = ndjsonLines(requestChunks(body), MAX_LINE_BYTES);
    const id = randomUUID();
    let hash = '';
    try {
      const first = await lines.next();
      if (first.done) {
        throw new ValidationFailedError({ body: 'is empty; the first line must be the job spec' });
      }
      const { spec, params } = await this.parseSpec(first.value.line, first.value.text);
      // Unless this is a replay, a caller at the active-jobs cap hears so before sending its targets.
      if (!idempotencyKey) await this.jobs.precheckActiveJobRoom(principal.sub);
      const hasher = new RequestHasher({ ...spec, params });

      await this.repository.transaction(async (tx) => {
        await this.repository.insertJob(tx, {
          id,
          owner: principal.sub,
          action: spec.action,
          params,
          options: spec.options ?? {},
        });
        const count = await this.copyTargets(tx, id, lines, hasher);
        if (count === 0)
          throw new ValidationFailedError({ targets: 'must contain at least one target line' });
        await this.repository.setTotalItems(tx, id, count);
        hash = hasher.digest();
        if (idempotencyKey) {
          await this.jobs.claimIdempotencyKey(tx, principal.sub, idempotencyKey, hash, id);
        }
        await this.jobs.assertActiveJobRoom(tx, principal.sub, id);
      });
    } catch (err) {
      if (err instanceof KeyTakenSignal) return this.jobs.replay(principal, idempotencyKey!, hash);
      if (err instanceof LineTooLongError) {
        throw new BadLineError(err.line, `is longer than ${MAX_LINE_BYTES} bytes`);
      }
      throw err;
    } finally {
      // Stops reading (without destroying the request), then drains what the client
      // still sends: a client that writes its whole body before it reads the answer
      // would otherwise stall until the keep-alive timeout and never see the error.
      await lines.return(undefined);
      if (!body.readableEnded && !body.destroyed) body.resume();
    }
    return { job: await this.jobs.get(principal, id), replayed: false };
  }

  /** The validated spec and its params (defaults filled in); errors name the line. */
  private async parseSpec(
    line: number,
    text: string,
  ): Promise<{ spec: CreateBulkJobSpecDto; params: Record<string, unknown> }> {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new BadLineError(line, 'is not valid JSON; the first line must be the job spec object');
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new BadLineError(line, 'must be the job spec object { "action", "params"?, "options"? }');
    }
    if (nestsDeeperThan(raw, MAX_JSON_DEPTH)) throw new BadLineError(line, TOO_DEEP);
    const spec = plainToInstance(CreateBulkJobSpecDto, raw);
    const errors = await validate(spec, {
      whitelist: true,
      forbidNonWhitelisted: true,
      forbidUnknownValues: true,
    });
    if (errors.length > 0) throw new BadSpecError(line, flattenValidationErrors(errors));
    try {
      return { spec, params: this.jobs.validSpec(spec) };
    } catch (err) {
      if (err instanceof ValidationFailedError) throw new BadSpecError(line, err.details);
      throw err;
    }
  }

  /**
   * Streams the target lines into COPY; returns how many there were. The
   * stream applies back-pressure both ways: a bad line aborts the COPY
   * (CopyFail, then the transaction rolls back).
   */
  private async copyTargets(
    tx: Transaction,
    jobId: string,
    lines: AsyncGenerator<{ line: number; text: string }>,
    hasher: RequestHasher,
  ): Promise<number> {
    const max = this.env.BULK_JOBS_MAX_TARGETS;
    let count = 0;
    async function* rows(): AsyncGenerator<string> {
      let chunk = '';
      for await (const { line, text } of lines) {
        const target = parseTarget(line, text);
        if (count >= max) throw new BadLineError(line, `is past the limit of ${max} targets per job`);
        hasher.addTarget(target);
        chunk += copyRow(jobId, count++, target);
        if (chunk.length >= COPY_CHUNK_CHARS) {
          yield chunk;
          chunk = '';
        }
      }
      if (chunk) yield chunk;
    }
    await this.repository.copyItems(tx, rows);
    return count;
  }
}

/**
 * The request body as chunks. Stopping early does not destroy the request (the
 * default of a stream's iterator), which would stop reading the socket; and a
 * client that goes away mid-body is a client error, not a lost database.
 */
async function* requestChunks(body: Readable): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body.iterator({ destroyOnReturn: false })) yield chunk as Buffer;
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && CLIENT_GONE_CODES.has(code)) throw new IncompleteBodyError();
    throw err;
  }
}

function parseTarget(line: number, text: string): TargetInput {
  let target: unknown;
  try {
    target = JSON.parse(text);
  } catch {
    throw new BadLineError(line, 'is not valid JSON');
  }
  if (nestsDeeperThan(target, MAX_JSON_DEPTH)) throw new BadLineError(line, TOO_DEEP);
  const problem = targetProblem(target);
  if (problem) throw new BadLineError(line, `target ${problem}`);
  return target as TargetInput;
}

const COPY_SPECIALS = /[\\\n\r\t]/;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** A value in COPY's text format. */
function copyText(value: string): string {
  return COPY_SPECIALS.test(value) ? value.replace(/[\\\n\r\t]/g, (c) => COPY_ESCAPES[c]) : value;
}

function copyRow(jobId: string, seq: number, target: TargetInput): string {
  if (typeof target === 'string') return `${jobId}\t${seq}\t${copyText(target)}\t\\N\n`;
  const data = target.data === undefined ? '\\N' : copyText(JSON.stringify(target.data));
  return `${jobId}\t${seq}\t${copyText(target.id)}\t${data}\n`;
}
