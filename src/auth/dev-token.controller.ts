import { Body, Controller, ForbiddenException, HttpCode, Post, Req } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import jwt from 'jsonwebtoken';
import { isIP } from 'node:net';
import {
  ApiExactProblemResponses,
  problemResponse,
} from '../common/problem-details/api-problem-responses.decorator';
import { ValidationFailedError } from '../common/problem-details/domain-error';
import { Env } from '../config/env';
import { Public } from './auth.decorators';
import { DevTokenRequestDto, DevTokenResponseDto } from './dto/dev-token.dto';
import { resolveJwtSecret } from './jwt-secret';
import { SCOPES } from './scopes';

export const DEV_TOKEN_PATH = 'api/dev/token';

/** As long as `npm run token` gives by default. */
const TTL_SECONDS = 3600;

const NOT_LOOPBACK =
  'Development tokens are given only to clients on this machine (a loopback address). Use npm run token.';

/** 127.0.0.0/8, ::1, and IPv4 loopback written as IPv6 (::ffff:127.x.y.z). */
export function isLoopback(address: string | undefined): boolean {
  if (!address || isIP(address) === 0) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4 === '::1' || (isIP(v4) === 4 && v4.startsWith('127.'));
}

/**
 * POST /api/dev/token: a signed token for a name, so that the dashboard's
 * sign-in works in development without `npm run token`. The module adds this
 * controller only while the server signs with the secret it generated itself
 * (usesGeneratedSecret: not in production, no AUTH_JWT_SECRET, no JWKS), so
 * it is neither routed nor documented anywhere else. It answers only clients
 * on this machine: the default HOST listens on every interface, and a token
 * for any name, admin included, is not for the whole network.
 */
@ApiTags('development')
// No token: this is where one comes from.
@ApiSecurity({})
@Controller(DEV_TOKEN_PATH)
export class DevTokenController {
  private readonly secret: string;

  constructor(private readonly env: Env) {
    const secret = resolveJwtSecret(env);
    if (!secret) throw new Error('development tokens need the generated secret');
    this.secret = secret;
  }

  @Post()
  @Public()
  @HttpCode(200)
  @ApiOperation({
    operationId: 'createDevelopmentToken',
    summary: 'Get a development token (development only)',
    description:
      'Exists only when NODE_ENV is not production and neither AUTH_JWT_SECRET nor AUTH_JWKS_URL is set, ' +
      'i.e. while the server signs with the secret it generated under DATA_DIR; otherwise this path is a 404. ' +
      'Answers only clients on a loopback address. The token grants bulk-jobs:read and bulk-jobs:write ' +
      `(and bulk-jobs:admin when asked) for ${TTL_SECONDS / 60} minutes, like \`npm run token\`.`,
  })
  @ApiOkResponse({
    type: DevTokenResponseDto,
    example: {
      access_token: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl',
      token_type: 'Bearer',
      expires_in: TTL_SECONDS,
      scope: `${SCOPES.read} ${SCOPES.write}`,
    },
  })
  @ApiExactProblemResponses(
    problemResponse('`sub` is missing or not valid (`/problems/validation-error`).', {
      invalidSub: [
        'No sub',
        new ValidationFailedError({ sub: 'sub must be longer than or equal to 1 characters' }),
      ],
    }),
    problemResponse('The client is not on this machine.', {
      notLoopback: ['A client on another machine', new ForbiddenException(NOT_LOOPBACK)],
    }),
    415,
    500,
  )
  issue(@Body() body: DevTokenRequestDto, @Req() request: FastifyRequest): DevTokenResponseDto {
    if (!isLoopback(request.socket.remoteAddress)) throw new ForbiddenException(NOT_LOOPBACK);
    const scope = [SCOPES.read, SCOPES.write, ...(body.admin ? [SCOPES.admin] : [])].join(' ');
    const accessToken = jwt.sign({ sub: body.sub, scope }, this.secret, {
      algorithm: 'HS256',
      expiresIn: TTL_SECONDS,
      ...(this.env.AUTH_JWT_ISSUER ? { issuer: this.env.AUTH_JWT_ISSUER } : {}),
      ...(this.env.AUTH_JWT_AUDIENCE ? { audience: this.env.AUTH_JWT_AUDIENCE } : {}),
    });
    return { access_token: accessToken, token_type: 'Bearer', expires_in: TTL_SECONDS, scope };
  }
}
