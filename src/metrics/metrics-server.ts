import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { buildProblem, PROBLEM_CONTENT_TYPE, reasonPhrase } from '../common/problem-details/problem-details';
import { Env } from '../config/env';
import { StartupError } from '../config/startup-error';
import { Metrics } from './metrics';
import { metricsAuthorized } from './metrics-token';

/**
 * GET /metrics on a port of its own: a bare node:http listener on
 * HOST:METRICS_PORT, in any process when METRICS_PORT is set (the API's port
 * then serves none). Same body and same METRICS_TOKEN rule as the API's
 * /metrics; not rate limited, since it is meant to be reachable by the
 * scraper alone.
 */
@Injectable()
export class MetricsServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Metrics');
  private server: Server | undefined;

  constructor(
    private readonly metrics: Metrics,
    private readonly env: Env,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (this.env.METRICS_PORT === 0) return;
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          err.code === 'EADDRINUSE'
            ? new StartupError(
                `Cannot serve /metrics on ${this.env.HOST}:${this.env.METRICS_PORT}: the port is in use (EADDRINUSE). ` +
                  'Set METRICS_PORT to a free port (not PORT).',
              )
            : err,
        ),
      );
      server.listen(this.env.METRICS_PORT, this.env.HOST, () => resolve());
    });
    this.server = server;
    this.logger.log(`metrics at http://${this.env.HOST}:${this.env.METRICS_PORT}/metrics`);
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The port actually listened on (METRICS_PORT, or the one the OS chose for 0 in tests). */
  get port(): number | undefined {
    const address = this.server?.address();
    return address && typeof address === 'object' ? address.port : undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      return problem(res, 404, 'Only GET /metrics is served here.', path);
    }
    if (!metricsAuthorized(this.env.METRICS_TOKEN, req.headers.authorization)) {
      res.setHeader('www-authenticate', 'Bearer realm="bulk-jobs"');
      return problem(res, 401, 'The metrics token is required.', path);
    }
    try {
      const body = await this.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      this.logger.error(`could not render metrics: ${(err as Error).message}`);
      problem(res, 500, 'The metrics could not be rendered.', path);
    }
  }
}

/** A problem with the envelope every other response has (legacy members and requestId included). */
function problem(res: ServerResponse, status: number, detail: string, instance: string): void {
  const requestId = randomUUID();
  const mapping = { status, type: 'about:blank', title: reasonPhrase(status), detail };
  res.writeHead(status, { 'content-type': PROBLEM_CONTENT_TYPE, 'x-request-id': requestId });
  res.end(JSON.stringify(buildProblem(mapping, instance, requestId)));
}
