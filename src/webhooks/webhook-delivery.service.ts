import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { parseAllowedHosts, webhookUrlProblem, type AllowedHost } from '../actions/http-url';
import { toJobResponse } from '../bulk-jobs/bulk-job.mapper';
import { Env } from '../config/env';
import { retryDelayMs } from '../engine/backoff';
import { signatureHeaders, signingKey } from './webhook-signing';
import { WebhooksRepository, type ClaimedWebhook, type WebhookOutcome } from './webhooks.repository';

export const WEBHOOK_EVENT_TYPE = 'bulk_job.finished';

/** At most this long between two attempts of an event, whatever the doubling says. */
const MAX_RETRY_DELAY_MS = 3_600_000;
/** Events claimed at once by one worker. */
const BATCH = 16;
/** A claim's lease beyond the attempt's timeout: time to record the outcome. */
const LEASE_MARGIN_MS = 30_000;

/**
 * Delivers the webhook outbox, in each worker process, on the API's pool of
 * that process (not the engine's, so that a slow receiver never holds up
 * claims or results). Every WEBHOOKS_POLL_MS it claims due events (SKIP
 * LOCKED, with a lease: several workers never send one event at once, and a
 * worker that dies mid-attempt leaves it to the others once its lease runs
 * out), POSTs each, signed, and records the outcome: a 2xx ends it, a 410
 * stops it, anything else is retried after a doubling delay with jitter,
 * until WEBHOOKS_RETRY_FOR_MS after the job's end. Delivery is at least
 * once: a worker that dies after the receiver's 2xx but before recording it
 * sends the event again, under the same webhook-id.
 */
@Injectable()
export class WebhookDeliveryService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Webhooks');
  private readonly allowed: AllowedHost[];
  private readonly key: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly inFlight = new Set<AbortController>();

  constructor(
    private readonly outbox: WebhooksRepository,
    private readonly env: Env,
  ) {
    this.allowed = parseAllowedHosts(env.ACTIONS_HTTP_ALLOWED_HOSTS);
    this.key = env.WEBHOOKS_SIGNING_SECRET ? signingKey(env.WEBHOOKS_SIGNING_SECRET) : undefined;
  }

  onApplicationBootstrap(): void {
    this.schedule(0);
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const attempt of this.inFlight) attempt.abort();
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => (this.running = undefined));
    }, delayMs);
  }

  private async tick(): Promise<void> {
    let full = false;
    try {
      const leaseMs = this.env.WEBHOOKS_TIMEOUT_MS + LEASE_MARGIN_MS;
      const claimed = await this.outbox.claimDue(BATCH, leaseMs);
      full = claimed.length === BATCH;
      await Promise.all(claimed.map((event) => this.deliver(event)));
    } catch (err) {
      this.logger.warn(`webhook delivery round failed: ${(err as Error).message}`);
    }
    this.schedule(full ? 0 : this.env.WEBHOOKS_POLL_MS);
  }

  /** One attempt of one event, and its outcome recorded. */
  async deliver(event: ClaimedWebhook): Promise<void> {
    const outcome = await this.attempt(event);
    const recorded = await this.outbox.record(event.id, event.attempts, outcome);
    if (!recorded) return;
    if (outcome.kind === 'failed')
      this.logger.warn(`webhook ${event.id} of job ${event.jobId} given up: ${outcome.error}`);
  }

  private async attempt(event: ClaimedWebhook): Promise<WebhookOutcome> {
    if (!this.key) return this.retryOrFail(event, 'WEBHOOKS_SIGNING_SECRET is not set on this worker');
    const urlProblem = webhookUrlProblem(event.url, this.allowed);
    if (urlProblem) return { kind: 'failed', error: `the URL ${urlProblem} (on this worker)` };
    const body = event.body ?? (await this.firstBody(event));
    if (body === undefined) return { kind: 'failed', error: 'the job no longer exists' };
    const controller = new AbortController();
    this.inFlight.add(controller);
    const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(this.env.WEBHOOKS_TIMEOUT_MS)]);
    try {
      const res = await fetch(event.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'bulk-action-jobs-webhooks',
          ...signatureHeaders(this.key, event.id, Math.floor(Date.now() / 1000), body),
        },
        body,
        redirect: 'manual',
        signal,
      });
      // The answer's body is never used: cancelling it frees the connection without reading it.
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return { kind: 'delivered' };
      if (res.status === 410) return { kind: 'failed', error: 'HTTP 410: the receiver asked for no more' };
      return this.retryOrFail(event, `HTTP ${res.status}`);
    } catch (err) {
      return this.retryOrFail(event, requestError(err, signal, this.env.WEBHOOKS_TIMEOUT_MS));
    } finally {
      this.inFlight.delete(controller);
    }
  }

  /** The event's body, fixed at its first attempt: the job as GET shows it, at the time of its end. */
  private async firstBody(event: ClaimedWebhook): Promise<string | undefined> {
    const job = await this.outbox.job(event.jobId);
    if (!job) return undefined;
    const { notification: _notification, ...data } = toJobResponse(job);
    const body = JSON.stringify({
      type: WEBHOOK_EVENT_TYPE,
      timestamp: (job.finishedAt ?? event.createdAt).toISOString(),
      data,
    });
    return this.outbox.fixBody(event.id, body);
  }

  private retryOrFail(event: ClaimedWebhook, error: string): WebhookOutcome {
    const delayMs = retryDelayMs(event.attempts, {
      baseMs: this.env.WEBHOOKS_RETRY_BASE_MS,
      maxMs: MAX_RETRY_DELAY_MS,
    });
    const giveUpAt = event.createdAt.getTime() + this.env.WEBHOOKS_RETRY_FOR_MS;
    if (Date.now() + delayMs > giveUpAt) {
      return { kind: 'failed', error: `${error}; given up after ${event.attempts} attempt(s)` };
    }
    return { kind: 'retry', error, delayMs };
  }
}

/** What went wrong with a request, in a few words (no URL: it is in the job's options). */
function requestError(err: unknown, signal: AbortSignal, timeoutMs: number): string {
  if (signal.aborted) return `no answer within ${timeoutMs} ms`;
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}
