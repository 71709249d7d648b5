import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthenticatedError } from '../common/problem-details/domain-error';
import { PRINCIPAL_KEY, PUBLIC_METADATA, REQUIRED_SCOPE_METADATA } from './auth.decorators';
import { hasScope, type Principal, type Scope } from './scopes';
import { TokenVerifier } from './token-verifier';

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

    const request = context.switchToHttp().getRequest<FastifyRequest & Record<string, unknown>>();
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+([A-Za-z0-9\-_.~+/]+=*)\s*$/i.exec(header) : null;
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
