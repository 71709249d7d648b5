import { createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import type { Principal, Scope } from './scopes';

export const REQUIRED_SCOPE_METADATA = 'bulk-jobs:required-scope';
export const PUBLIC_METADATA = 'bulk-jobs:public';

/** The scope a route needs; every route needs a valid token unless `@Public()`. */
export const RequireScope = (scope: Scope) => SetMetadata(REQUIRED_SCOPE_METADATA, scope);

export const Public = () => SetMetadata(PUBLIC_METADATA, true);

export const PRINCIPAL_KEY = 'principal';

/**
 * The verified caller, set by the AuthGuard. The request by its index (ArgumentsHost): switchToHttp() adds
 * three new closures to the context on every call.
 */
export const CurrentPrincipal = createParamDecorator(
  (_: unknown, ctx: ExecutionContext): Principal =>
    ctx.getArgByIndex<Record<string, unknown>>(0)[PRINCIPAL_KEY] as Principal,
);
