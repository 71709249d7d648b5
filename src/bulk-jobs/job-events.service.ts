import { Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Principal } from '../auth/scopes';
import {
  type DomainError,
  InvalidTokenError,
  ServiceUnavailableError,
} from '../common/problem-details/domain-error';
import { buildProblem, mapDomainError } from '../common/problem-details/problem-details';
import { Env } from '../config/env';
import { isTerminal } from '../jobs/job-status';
import { ConcurrencyLimiter } from '../limits/concurrency-limiter';
import { toJobResponse } from './bulk-job.mapper';
import { BulkJobNotFoundError, TooManyStreamsError } from './bulk-jobs.errors';
import { BulkJobsRepository } from './bulk-jobs.repository';
import { BulkJobsService } from './bulk-jobs.service';
import type { BulkJobResponseDto } from './dto/bulk-job-response.dto';
import { isWritable, SSE_HEARTBEAT, sseEvent, startEventStream } from './sse';
import { loggableMessage } from '../database/database-errors';

/** Timers may fire a millisecond early; an event due at the tick is not put off by that. */
const TIMER_SLACK_MS = 2;

const TOKEN_EXPIRED = 'The bearer token has expired. Reconnect with a new one.';

/** The longest delay setTimeout takes (about 24.8 days); a later expiry is reached in several steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Subscriber {
  jobId: string;
  res: ServerResponse;
  /** Version of the job state this client has seen last (its Last-Event-ID at first). */
  version: string | undefined;
  /** When it was last sent a progress event (performance.now()). */
  sentAt: number;
  /** For the problem event of a job that vanishes, or of a token that expires. */
  instance: string;
  requestId: string;
  /** Frees the stream's slot under the caps (SSE_MAX_STREAMS_PER_OWNER, SSE_MAX_STREAMS). */
  release: () => void;
  /** Ends the stream when its token expires. */
  expiry?: NodeJS.Timeout;
}

export interface JobEventsStats {
  /** Open streams. */
  subscribers: number;
  /** Distinct jobs they follow. */
  jobs: number;
  /** Poll ticks so far; each reads every followed job with one query. */
  ticks: number;
  /** True while the poller or the heartbeat is scheduled. */
  active: boolean;
}

/** Identifies a job state: every member of the representation but updated_at. */
export function jobVersion(job: BulkJobResponseDto): string {
  const { updated_at: _ignored, ...state } = job;
  return createHash('sha1').update(JSON.stringify(state)).digest('base64url').slice(0, 16);
}

/**
 * Live progress of jobs as Server-Sent Events (GET /jobs/{id}/events).
 *
 * One poller per process serves every open stream: each tick reads all the
 * jobs that have subscribers with a single query and fans the rows out, so
 * the database load depends on how often it ticks, not on how many clients
 * listen. The poller and the heartbeat run only while someone listens.
 * Polling rather than LISTEN/NOTIFY: the counters change with every result
 * batch of every worker, a notification per batch would cost more than one
 * primary-key read per tick, and it would need a dedicated connection.
 *
 * A stream holds no database connection (the poller's query returns before
 * anything is written), but it holds a socket and memory: streams are capped
 * per owner and per process, and a stream ends when its token expires.
 */
@Injectable()
export class JobEventsService implements OnModuleDestroy {
  private readonly logger = new Logger('JobEvents');
  private readonly byJob = new Map<string, Set<Subscriber>>();
  private count = 0;
  private ticks = 0;
  private pollTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private pollFailing = false;
  private closing = false;
  private readonly streams: ConcurrencyLimiter;

  constructor(
    private readonly repository: BulkJobsRepository,
    private readonly jobs: BulkJobsService,
    private readonly env: Env,
  ) {
    this.streams = new ConcurrencyLimiter(env.SSE_MAX_STREAMS_PER_OWNER, env.SSE_MAX_STREAMS);
  }

  /**
   * Opens the stream of one job. A caller at a cap of open streams gets a 429
   * problem, before anything else is looked at. The job is looked up as GET
   * does, so an unknown, another owner's or purged job is a 404 problem, not
   * a stream. A finished job gets its `end` event at once.
   */
  async open(principal: Principal, id: string, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (this.closing)
      throw new ServiceUnavailableError(1, 'The server is shutting down. Retry on another instance.');
    // Taken before the lookup is awaited, so that concurrent opens cannot all see room for one more.
    const slot = this.streams.acquire(principal.sub);
    if (!slot.acquired) throw new TooManyStreamsError(slot.limit, slot.refusedBy);
    let kept = false;
    try {
      const job = await this.jobs.get(principal, id);
      const res = startEventStream(reply);
      if (request.method === 'HEAD') {
        res.end();
        return;
      }
      const version = jobVersion(job);
      if (isTerminal(job.status)) {
        res.end(sseEvent('end', version, job));
        return;
      }
      const lastEventId = request.headers['last-event-id'];
      const sub: Subscriber = {
        jobId: job.id,
        res,
        version: typeof lastEventId === 'string' ? lastEventId : undefined,
        sentAt: -Infinity,
        instance: (request.url ?? '/').split('?', 1)[0],
        requestId: String(request.id),
        release: slot.release,
      };
      // A client reconnecting with the id of the current state gets the next change, not a repeat.
      if (sub.version !== version)
        this.sendProgress(sub, version, sseEvent('progress', version, job), performance.now());
      if (!isWritable(res)) return;
      res.on('close', () => this.remove(sub));
      this.add(sub);
      this.endAt(sub, principal.expiresAt);
      kept = true;
    } finally {
      if (!kept) slot.release();
    }
  }

  /** Open streams under the caps, of one owner or of all (HEAD requests and finished jobs hold none for long). */
  openStreams(owner?: string): number {
    return this.streams.inUse(owner);
  }

  /** Open streams, of one job or of all. */
  subscriberCount(jobId?: string): number {
    return jobId === undefined ? this.count : (this.byJob.get(jobId)?.size ?? 0);
  }

  stats(): JobEventsStats {
    return {
      subscribers: this.count,
      jobs: this.byJob.size,
      ticks: this.ticks,
      active: this.pollTimer !== undefined || this.polling || this.heartbeatTimer !== undefined,
    };
  }

  /** Ends every stream before the HTTP server closes, which would otherwise wait for them. */
  onModuleDestroy(): void {
    this.closing = true;
    for (const subs of [...this.byJob.values()])
      for (const sub of [...subs]) {
        this.remove(sub);
        sub.res.end();
      }
    this.stopTimers();
  }

  private add(sub: Subscriber): void {
    let subs = this.byJob.get(sub.jobId);
    if (!subs) this.byJob.set(sub.jobId, (subs = new Set()));
    subs.add(sub);
    this.count++;
    this.schedulePoll();
    if (!this.heartbeatTimer) {
      this.heartbeatTimer = setInterval(() => this.heartbeat(), this.env.SSE_HEARTBEAT_MS);
      this.heartbeatTimer.unref();
    }
  }

  private remove(sub: Subscriber): void {
    const subs = this.byJob.get(sub.jobId);
    if (!subs?.delete(sub)) return;
    clearTimeout(sub.expiry);
    sub.release();
    this.count--;
    if (subs.size === 0) this.byJob.delete(sub.jobId);
    if (this.count === 0) this.stopTimers();
  }

  private stopTimers(): void {
    clearTimeout(this.pollTimer);
    clearInterval(this.heartbeatTimer);
    this.pollTimer = undefined;
    this.heartbeatTimer = undefined;
  }

  /** The next tick, one interval after the previous one finished, while anyone listens. */
  private schedulePoll(): void {
    if (this.pollTimer || this.polling || this.count === 0) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      void this.poll();
    }, this.env.SSE_PROGRESS_INTERVAL_MS);
    this.pollTimer.unref();
  }

  private async poll(): Promise<void> {
    this.polling = true;
    try {
      await this.tick();
      if (this.pollFailing) this.logger.log('progress poll works again');
      this.pollFailing = false;
    } catch (err) {
      // The streams stay open (heartbeats go on) and the next tick tries again.
      if (!this.pollFailing) this.logger.warn(`progress poll failed: ${loggableMessage(err)}`);
      this.pollFailing = true;
    } finally {
      this.polling = false;
      this.schedulePoll();
    }
  }

  /** One query for every followed job, then each subscriber gets what is new to it. */
  private async tick(): Promise<void> {
    const ids = [...this.byJob.keys()];
    if (ids.length === 0) return;
    this.ticks++;
    const found = new Map((await this.repository.findJobs(ids)).map((job) => [job.id, job]));
    const now = performance.now();
    for (const id of ids) {
      const subs = this.byJob.get(id);
      if (!subs) continue;
      const row = found.get(id);
      if (!row) {
        // Purged since the stream opened: what GET would answer now, then the end.
        for (const sub of [...subs]) this.finish(sub, this.problemEvent(sub, new BulkJobNotFoundError(id)));
        continue;
      }
      const job = toJobResponse(row);
      const version = jobVersion(job);
      if (isTerminal(job.status)) {
        const end = sseEvent('end', version, job);
        for (const sub of [...subs]) this.finish(sub, end);
        continue;
      }
      let progress: string | undefined;
      for (const sub of subs) {
        if (sub.version === version) continue;
        progress ??= sseEvent('progress', version, job);
        this.sendProgress(sub, version, progress, now);
      }
    }
  }

  /**
   * At most one progress event per interval; none while the client has not
   * read the last ones (the next tick sends the state then current, so a slow
   * client skips states instead of piling them up here).
   */
  private sendProgress(sub: Subscriber, version: string, event: string, now: number): void {
    if (!isWritable(sub.res) || sub.res.writableNeedDrain) return;
    if (now - sub.sentAt < this.env.SSE_PROGRESS_INTERVAL_MS - TIMER_SLACK_MS) return;
    sub.res.write(event);
    sub.version = version;
    sub.sentAt = now;
  }

  /** The last event, then the end of the stream. */
  private finish(sub: Subscriber, event: string): void {
    this.remove(sub);
    if (isWritable(sub.res)) sub.res.end(event);
  }

  /**
   * Ends the stream with a 401 problem event at `at`, when its token expires:
   * a stream must not go on showing a job to a caller the server would no
   * longer let in. Reconnecting takes a fresh token.
   */
  private endAt(sub: Subscriber, at: number): void {
    const wait = at - Date.now();
    sub.expiry = setTimeout(
      () => {
        if (Date.now() < at) this.endAt(sub, at);
        else this.finish(sub, this.problemEvent(sub, new InvalidTokenError(TOKEN_EXPIRED)));
      },
      Math.min(Math.max(0, wait), MAX_TIMER_MS),
    );
    sub.expiry.unref();
  }

  /** The problem a request of this stream would get now, as the stream's last event. */
  private problemEvent(sub: Subscriber, err: DomainError): string {
    return sseEvent('problem', undefined, buildProblem(mapDomainError(err), sub.instance, sub.requestId));
  }

  private heartbeat(): void {
    for (const subs of this.byJob.values()) {
      for (const sub of subs)
        if (isWritable(sub.res) && !sub.res.writableNeedDrain) sub.res.write(SSE_HEARTBEAT);
    }
  }
}
