import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthenticatedError } from '../common/problem-details/domain-error';
import { PRINCIPAL_KEY, PUBLIC_METADATA, REQUIRED_SCOPE_METADATA } from './auth.decorators';
import { hasScope, type Principal, type Scope } from './scopes';
import { TokenVerifier } from './token-verifier';

const BEARER = 'Bearer ';
const BEARER_TOKEN = /^Bearer\s+([A-Za-z0-9\-_.~+/]+=*)\s*$/i;

/** Global guard: a verified bearer token on every route, and the route's scope. */
@Injectable()
export class AuthGuard implements CanActivate {
  /** What each handler requires, looked up once per handler rather than on every request. */
  private readonly requirements = new WeakMap<object, RouteRequirement>();

  constructor(
    private readonly reflector: Reflector,
    private readonly verifier: TokenVerifier,
  ) {}

  /** Synchronous for a token verified recently (TokenVerifier.known): no promise on most requests. */
  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const { isPublic, scope } = this.requirementOf(context);
    if (isPublic) return true;

    // The request by its index (ArgumentsHost), not through switchToHttp(), which adds three new closures
    // to the context on every call.
    const request = context.getArgByIndex<FastifyRequest & Record<string, unknown>>(0);
    const header = request.headers.authorization;
    if (typeof header !== 'string') throw new UnauthenticatedError();
    // The usual form, `Bearer <token>` with a token verified recently, without the pattern: every
    // token TokenVerifier keeps is one the pattern matched, so this admits nothing it would refuse.
    if (header.startsWith(BEARER)) {
      const recent = this.verifier.known(header.slice(BEARER.length));
      if (recent) return admit(request, recent, scope);
    }
    const match = BEARER_TOKEN.exec(header);
    if (!match) throw new UnauthenticatedError();
    const known = this.verifier.known(match[1]);
    if (known) return admit(request, known, scope);
    return this.verifier.verify(match[1]).then((principal) => admit(request, principal, scope));
  }

  private requirementOf(context: ExecutionContext): RouteRequirement {
    const handler = context.getHandler();
    let requirement = this.requirements.get(handler);
    if (!requirement) {
      const targets = [handler, context.getClass()];
      requirement = {
        isPublic: this.reflector.getAllAndOverride<boolean>(PUBLIC_METADATA, targets) === true,
        scope: this.reflector.getAllAndOverride<Scope | undefined>(REQUIRED_SCOPE_METADATA, targets),
      };
      this.requirements.set(handler, requirement);
    }
    return requirement;
  }
}

interface RouteRequirement {
  isPublic: boolean;
  scope: Scope | undefined;
}

/** The principal's request, if its token grants the route's scope. */
function admit(request: Record<string, unknown>, principal: Principal, scope: Scope | undefined): true {
  if (scope && !hasScope(principal, scope)) throw new ForbiddenError(scope);
  request[PRINCIPAL_KEY] = principal;
  return true;
}
