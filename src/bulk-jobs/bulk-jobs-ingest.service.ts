import { Injectable } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import type { Readable } from 'node:stream';
import type { Principal } from '../auth/scopes';
import { Env, maxUploads } from '../config/env';
import { RequestTimeoutError, ValidationFailedError } from '../common/problem-details/domain-error';
import { MAX_JSON_DEPTH, nestsDeeperThan, TOO_DEEP } from '../common/json-depth';
import { flattenValidationErrors } from '../common/validation';
import { chunksWithin, drainWithin, exemptFromRequestTimeout } from '../limits/body-timeout';
import { ConcurrencyLimiter } from '../limits/concurrency-limiter';
import { BulkJobCreator, type CreateResult, type ItemWriter, type JobSpec } from './bulk-job-creator';
import { TooManyUploadsError } from './bulk-jobs.errors';
import { BulkJobsRepository, type Transaction } from './bulk-jobs.repository';
import { CreateBulkJobSpecDto, targetProblem, type TargetInput } from './dto/create-bulk-job.dto';
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
 *
 * A stream holds a pooled connection for as long as its body arrives, so
 * streams are capped: per owner (BULK_JOBS_MAX_UPLOADS_PER_OWNER) and per
 * process (BULK_JOBS_MAX_UPLOADS, below the pool size), and a body that stops
 * arriving for BODY_IDLE_TIMEOUT_MS is answered with a 408 and rolled back.
 */
@Injectable()
export class BulkJobsIngestService {
  private readonly uploads: ConcurrencyLimiter;

  constructor(
    private readonly creator: BulkJobCreator,
    private readonly jobs: BulkJobsRepository,
    private readonly env: Env,
  ) {
    this.uploads = new ConcurrencyLimiter(env.BULK_JOBS_MAX_UPLOADS_PER_OWNER, maxUploads(env));
  }

  /** Streamed creates in progress in this process (of one owner, or of all). */
  uploadsInProgress(owner?: string): number {
    return this.uploads.inUse(owner);
  }

  async createFromNdjson(
    principal: Principal,
    body: Readable,
    idempotencyKey?: string,
  ): Promise<CreateResult> {
    const idleMs = this.env.BODY_IDLE_TIMEOUT_MS;
    const lines = ndjsonLines(requestChunks(body, idleMs), MAX_LINE_BYTES);
    let release: (() => void) | undefined;
    let timedOut = false;
    try {
      const slot = this.uploads.acquire(principal.sub);
      if (!slot.acquired) throw new TooManyUploadsError(slot.limit, slot.refusedBy);
      release = slot.release;
      // From here the idle clock alone bounds the upload, however long the whole takes.
      exemptFromRequestTimeout(body);
      const first = await lines.next();
      if (first.done) {
        throw new ValidationFailedError({ body: 'is empty; the first line must be the job spec' });
      }
      const spec = await this.parseSpec(first.value.line, first.value.text);
      const items = new StreamedItems(this.jobs, spec, lines, {
        maxTargets: this.env.BULK_JOBS_MAX_TARGETS,
        maxDataBytes: this.env.BULK_JOBS_MAX_TARGET_DATA_BYTES,
      });
      return await this.creator.create(principal, spec, items, idempotencyKey);
    } catch (err) {
      if (err instanceof LineTooLongError) {
        throw new BadLineError(err.line, `is longer than ${MAX_LINE_BYTES} bytes`);
      }
      timedOut = err instanceof RequestTimeoutError;
      throw err;
    } finally {
      release?.();
      // Stops reading (without destroying the request), then drains what the client
      // still sends: a client that writes its whole body before it reads the answer
      // would otherwise stall until the keep-alive timeout and never see the error.
      // A body that stopped arriving is not drained: its 408 closes the connection.
      await lines.return(undefined);
      if (!timedOut) drainWithin(body, idleMs);
    }
  }

  /** The validated spec, its params with their defaults filled in; errors name the line. */
  private async parseSpec(line: number, text: string): Promise<JobSpec> {
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
      return {
        action: spec.action,
        params: this.creator.validParams(spec),
        options: spec.options,
        labels: spec.labels,
      };
    } catch (err) {
      if (err instanceof ValidationFailedError) throw new BadSpecError(line, err.details);
      throw err;
    }
  }
}

/**
 * The item writer of a streamed create: the target lines go into COPY as
 * they arrive, so memory stays bounded however many there are, and each is
 * hashed on the way.
 */
class StreamedItems implements ItemWriter {
  readonly hashedBeforeWrite = false;
  private readonly hasher: RequestHasher;
  private hash: string | undefined;

  constructor(
    private readonly jobs: BulkJobsRepository,
    spec: JobSpec,
    private readonly lines: AsyncGenerator<{ line: number; text: string }>,
    private readonly limits: { maxTargets: number; maxDataBytes: number },
  ) {
    this.hasher = new RequestHasher(spec);
  }

  requestHash(): string {
    this.hash ??= this.hasher.digest();
    return this.hash;
  }

  /** Streams the target lines into COPY; a bad line aborts it (CopyFail) and the create rolls back. */
  async write(tx: Transaction, jobId: string): Promise<number> {
    const { lines, hasher } = this;
    const { maxTargets: max, maxDataBytes } = this.limits;
    let count = 0;
    async function* rows(): AsyncGenerator<string> {
      let chunk = '';
      for await (const { line, text } of lines) {
        const target = parseTarget(line, text, maxDataBytes);
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
    await this.jobs.copyItems(tx, rows);
    if (count === 0) throw new ValidationFailedError({ targets: 'must contain at least one target line' });
    return count;
  }
}

/**
 * The request body as chunks, each within `idleMs` of the reader asking for
 * it (chunksWithin); a client that goes away mid-body is a client error, not a
 * lost database.
 */
async function* requestChunks(body: Readable, idleMs: number): AsyncGenerator<Buffer> {
  try {
    yield* chunksWithin(body, idleMs);
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && CLIENT_GONE_CODES.has(code)) throw new IncompleteBodyError();
    throw err;
  }
}

function parseTarget(line: number, text: string, maxDataBytes: number): TargetInput {
  let target: unknown;
  try {
    target = JSON.parse(text);
  } catch {
    throw new BadLineError(line, 'is not valid JSON');
  }
  if (nestsDeeperThan(target, MAX_JSON_DEPTH)) throw new BadLineError(line, TOO_DEEP);
  const problem = targetProblem(target, maxDataBytes);
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
