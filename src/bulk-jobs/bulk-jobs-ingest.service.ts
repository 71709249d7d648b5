import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { DataSource } from 'typeorm';
import type { Principal } from '../auth/scopes';
import { Env } from '../config/env';
import { ValidationFailedError } from '../common/problem-details/domain-error';
import { flattenValidationErrors } from '../common/validation';
import { BulkJobsService, KeyTakenSignal, type CreateResult } from './bulk-jobs.service';
import { CreateBulkJobSpecDto, targetProblem } from './dto/create-bulk-job.dto';
import { LineTooLongError, ndjsonLines } from './ndjson-lines';
import { RequestHasher } from './request-hash';

/** A line holds one target (at most 512 characters of id plus its data) or the job spec. */
const MAX_LINE_BYTES = 1024 * 1024;
/** Rows are handed to COPY in chunks of about this many characters. */
const COPY_CHUNK_CHARS = 256 * 1024;

/** Thrown for a bad line; rolls the whole create back. */
class BadLineError extends ValidationFailedError {
  constructor(line: number, problem: string) {
    super({ [`line ${line}`]: problem }, `Line ${line}: ${problem}`);
    this.extensions.line = line;
  }
}

/**
 * Streaming create (`application/x-ndjson`): the first line is the job spec,
 * every further line one target. The targets go into the items table through
 * COPY inside one transaction, so a bad line leaves nothing behind, and memory
 * stays bounded however many targets arrive.
 */
@Injectable()
export class BulkJobsIngestService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly jobs: BulkJobsService,
    private readonly env: Env,
  ) {}

  async createFromNdjson(principal: Principal, body: Readable, idempotencyKey?: string): Promise<CreateResult> {
    const lines = ndjsonLines(body, MAX_LINE_BYTES);
    const runner = this.db.createQueryRunner();
    const id = randomUUID();
    let hash = '';
    try {
      const first = await lines.next();
      if (first.done) throw new ValidationFailedError({ body: 'is empty; the first line must be the job spec' });
      const spec = await this.parseSpec(first.value.line, first.value.text);
      const params = this.jobs.validSpec(spec);
      const hasher = new RequestHasher(spec);

      const client = (await runner.connect()) as PoolClient;
      await runner.startTransaction();
      await runner.query(
        `INSERT INTO bulk_jobs (id, owner, action, params, options, total_items) VALUES ($1, $2, $3, $4, $5, 0)`,
        [id, principal.sub, spec.action, params, spec.options ?? {}],
      );
      const count = await this.copyTargets(client, id, lines, hasher);
      if (count === 0) throw new ValidationFailedError({ targets: 'must contain at least one target line' });
      await runner.query(`UPDATE bulk_jobs SET total_items = $2 WHERE id = $1`, [id, count]);
      hash = hasher.digest();
      if (idempotencyKey) await this.jobs.claimIdempotencyKey(runner.manager, principal.sub, idempotencyKey, hash, id);
      await runner.commitTransaction();
    } catch (err) {
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      if (err instanceof KeyTakenSignal) return this.jobs.replay(principal, idempotencyKey!, hash);
      if (err instanceof LineTooLongError) throw new BadLineError(err.line, `is longer than ${MAX_LINE_BYTES} bytes`);
      throw err;
    } finally {
      await runner.release();
      // Drain what the client still sends, so that the error response can be read.
      if (!body.readableEnded) body.resume();
    }
    return { job: await this.jobs.get(principal, id), replayed: false };
  }

  private async parseSpec(line: number, text: string): Promise<CreateBulkJobSpecDto> {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new BadLineError(line, 'is not valid JSON; the first line must be the job spec object');
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new BadLineError(line, 'must be the job spec object { "action", "params"?, "options"? }');
    }
    const spec = plainToInstance(CreateBulkJobSpecDto, raw);
    const errors = await validate(spec, { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true });
    if (errors.length > 0) throw new ValidationFailedError(flattenValidationErrors(errors), `Line ${line}: the job spec is not valid.`);
    return spec;
  }

  /** Streams the target lines into COPY with back-pressure; returns how many there were. */
  private async copyTargets(
    client: PoolClient,
    jobId: string,
    lines: AsyncGenerator<{ line: number; text: string }>,
    hasher: RequestHasher,
  ): Promise<number> {
    const copy = client.query(copyFrom('COPY bulk_job_items (job_id, seq, target_id, data) FROM STDIN'));
    const max = this.env.BULK_JOBS_MAX_TARGETS;
    let seq = 0;
    let chunk = '';
    try {
      for await (const { line, text } of lines) {
        let target: unknown;
        try {
          target = JSON.parse(text);
        } catch {
          throw new BadLineError(line, 'is not valid JSON');
        }
        const problem = targetProblem(target);
        if (problem) throw new BadLineError(line, `target ${problem}`);
        if (seq >= max) throw new BadLineError(line, `is past the limit of ${max} targets per job`);
        hasher.addTarget(target);
        chunk += copyRow(jobId, seq++, target as string | { id: string; data?: object });
        if (chunk.length >= COPY_CHUNK_CHARS) {
          if (!copy.write(chunk)) await once(copy, 'drain');
          chunk = '';
        }
      }
      copy.end(chunk);
      await finished(copy);
      return seq;
    } catch (err) {
      // Aborts the COPY; PostgreSQL discards the rows and the caller rolls back.
      copy.destroy(err instanceof Error ? err : new Error(String(err)));
      await finished(copy).catch(() => undefined);
      throw err;
    }
  }
}

const COPY_SPECIALS = /[\\\n\r\t]/;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** A value in COPY's text format. */
function copyText(value: string): string {
  return COPY_SPECIALS.test(value) ? value.replace(/[\\\n\r\t]/g, (c) => COPY_ESCAPES[c]) : value;
}

function copyRow(jobId: string, seq: number, target: string | { id: string; data?: object }): string {
  if (typeof target === 'string') return `${jobId}\t${seq}\t${copyText(target)}\t\\N\n`;
  const data = target.data === undefined ? '\\N' : copyText(JSON.stringify(target.data));
  return `${jobId}\t${seq}\t${copyText(target.id)}\t${data}\n`;
}
