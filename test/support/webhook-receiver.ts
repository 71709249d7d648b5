import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A key for the specs: whsec_ and the base64 of 32 bytes. */
export const TEST_WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

/**
 * Verifies a webhook as a receiver following Standard Webhooks does: the
 * HMAC-SHA256 of `id.timestamp.body` under the key behind `whsec_`, against
 * each `v1,` signature of the header, and a timestamp within five minutes.
 * Written here from the specification, apart from the server's code.
 */
export function verifyWebhook(secret: string, headers: IncomingHttpHeaders, body: string): boolean {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signatures !== 'string') return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  return signatures.split(' ').some((s) => {
    const [version, signature] = s.split(',', 2);
    const given = Buffer.from(signature ?? '', 'base64');
    return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
  });
}

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  body: string;
  verified: boolean;
  /** What the receiver answered. */
  status: number;
}

/**
 * A webhook receiver on 127.0.0.1: it checks each request's signature, keeps
 * it, and answers with the next status of `answers` (then `otherwise`).
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  private server: Server | undefined;
  port = 0;

  constructor(
    private readonly secret = TEST_WEBHOOK_SECRET,
    private readonly answers: number[] = [],
    private readonly otherwise = 200,
  ) {}

  /** Listens on `port` (0: any free one); returns the port. */
  async start(port = 0): Promise<number> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = this.answers.shift() ?? this.otherwise;
        this.received.push({
          headers: req.headers,
          body,
          verified: verifyWebhook(this.secret, req.headers, body),
          status,
        });
        res.writeHead(status, { 'content-type': 'text/plain' }).end(String(status));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  url(path = '/hooks/bulk-jobs'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
