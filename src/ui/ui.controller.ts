import { Controller, Get, Head, NotFoundException, Param, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Public } from '../auth/auth.decorators';
import { securityHeaders } from '../common/security-headers';
import { UiFiles, type UiFile } from './ui-files';

export const UI_PATH = 'ui';

/**
 * The dashboard's own policy: its scripts and styles come from this origin
 * only, in files (no inline script or style element), and it talks to this
 * origin only. Style attributes set from script (progress bar widths) are
 * CSSOM, which style-src does not govern.
 */
export const UI_SECURITY_HEADERS = securityHeaders({
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'none'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'", 'data:'],
      connectSrc: ["'self'"],
      baseUri: ["'none'"],
      formAction: ["'none'"],
      frameAncestors: ["'none'"],
    },
  },
  frameguard: { action: 'deny' },
});

/** Hashed file names change with their content: a year, never revalidated. */
const ASSET_CACHE = 'public, max-age=31536000, immutable';
/** index.html names the current assets, so it is fetched anew every time. */
const INDEX_CACHE = 'no-store';

/**
 * GET /ui: the operator's dashboard, a single page whose routes (/ui,
 * /ui/jobs/{id}) all answer index.html, and its hashed assets. No token: the
 * page asks for one and calls the API with it.
 */
@ApiExcludeController()
@Public()
@Controller(UI_PATH)
export class UiController {
  constructor(private readonly files: UiFiles) {}

  @Get()
  @Head()
  index(@Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    this.send(request, reply, this.files.index, INDEX_CACHE);
  }

  @Get('jobs/:id')
  @Head('jobs/:id')
  jobPage(@Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    this.send(request, reply, this.files.index, INDEX_CACHE);
  }

  @Get('assets/:name')
  @Head('assets/:name')
  asset(@Param('name') name: string, @Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    this.send(request, reply, this.files.asset(name), ASSET_CACHE);
  }

  private send(request: FastifyRequest, reply: FastifyReply, file: UiFile | undefined, cache: string): void {
    if (!file) throw new NotFoundException();
    void reply.headers(UI_SECURITY_HEADERS).header('cache-control', cache).header('etag', file.etag);
    void reply.header('vary', 'accept-encoding').type(file.contentType);
    if (request.headers['if-none-match'] === file.etag) {
      void reply.code(304).send();
      return;
    }
    const gzip = file.gzip && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
    if (gzip) void reply.header('content-encoding', 'gzip');
    void reply.send(gzip ? file.gzip : file.body);
  }
}
