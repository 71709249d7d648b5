import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { loggableStack } from '../../database/database-errors';
import { DomainError } from './domain-error';
import { mapDomainError, mapHttpException, mapUnknownError, type ProblemMapping } from './problem-details';
import { sendProblem } from './transport-errors';

/**
 * The one place that turns errors into HTTP responses: every error leaves the
 * service as application/problem+json. Unknown errors are logged with the
 * request id and answered with a generic 500 that reveals nothing internal.
 */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  private readonly logger = new Logger('ProblemDetails');

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    const mapping = this.map(exception);
    const requestId = String(request.id);
    const instance = (request.url ?? '/').split('?', 1)[0];

    if (mapping.unexpected) {
      this.logger.error(
        `${request.method} ${instance} failed with ${mapping.status} (requestId=${requestId})`,
        // A database error's message can quote a statement's parameters: logged without them.
        loggableStack(exception),
      );
    } else if (mapping.status >= 500) {
      // Expected outages (database or key server away): one line each, no stack.
      this.logger.warn(
        `${request.method} ${instance} answered ${mapping.status}: ${mapping.detail} (requestId=${requestId})`,
      );
    }
    if (!reply.sent) sendProblem(request, reply, mapping);
  }

  private map(exception: unknown): ProblemMapping {
    if (exception instanceof DomainError) return mapDomainError(exception);
    if (exception instanceof HttpException) return mapHttpException(exception);
    const fastifyStatus = fastifyClientErrorStatus(exception);
    if (fastifyStatus)
      return mapHttpException(new HttpException(String((exception as Error).message), fastifyStatus));
    return mapUnknownError(exception);
  }
}

/** Fastify's own client errors (FST_* codes with a 4xx statusCode) that were not wrapped. */
function fastifyClientErrorStatus(exception: unknown): number | undefined {
  const { code, statusCode } = (exception ?? {}) as { code?: unknown; statusCode?: unknown };
  if (typeof code === 'string' && code.startsWith('FST_') && typeof statusCode === 'number') {
    return statusCode >= 400 && statusCode < 500 ? statusCode : undefined;
  }
  return undefined;
}
