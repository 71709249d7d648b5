import type { DynamicModule, Type } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import request, { type Response, type Test as SupertestTest } from 'supertest';
import type { DataSource } from 'typeorm';
import { AppModule } from '../../src/app.module';
import { configureApp, createFastifyAdapter, OPENAPI_PATH } from '../../src/app.setup';
import { type AppLogger, createAppLogger } from '../../src/logging/app-logger';
import { responseValidatorFor, type ResponseValidator } from './openapi-validator';
import { testEnv } from './test-env';

export interface TestApp {
  app: NestFastifyApplication;
  db: DataSource;
  /**
   * supertest bound to the app's HTTP server. Every response it gets is checked against the
   * OpenAPI document the app serves: a response that breaks it fails the request's promise.
   */
  http: () => ReturnType<typeof request>;
  close: () => Promise<void>;
}

export interface BootOptions {
  /** The database to use (default: the run's test database). */
  databaseUrl?: string;
  /** Run a worker in the process, as `npm start` does. */
  worker?: boolean;
  env?: Record<string, string>;
  /** The logger (default: pino at the tests' LOG_LEVEL=error, i.e. quiet). */
  logger?: AppLogger;
  /** Extra modules, as an embedding application adds them. */
  imports?: (Type | DynamicModule)[];
  /** Providers replaced by these values (Nest's overrideProvider), e.g. the Clock. */
  overrides?: ProviderOverride[];
}

export interface ProviderOverride {
  /** The provider's token: a class (an abstract one too), a string or a symbol. */
  provide: unknown;
  useValue: unknown;
}

/**
 * The real AppModule set up exactly as main.ts does it (pino, no urlencoded
 * body parser, configureApp), with what a spec may choose: any database (one
 * it starts and stops itself), a worker, a logger whose lines it reads, extra
 * modules, and providers replaced (a clock the spec moves itself).
 */
export async function bootTestApp(opts: BootOptions = {}): Promise<TestApp> {
  const env = testEnv({ ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}), ...opts.env });
  const builder = Test.createTestingModule({
    imports: [
      AppModule.forRoot({ env, databaseUrl: env.DATABASE_URL!, api: true, worker: opts.worker ?? false }),
      ...(opts.imports ?? []),
    ],
  });
  for (const { provide, useValue } of opts.overrides ?? [])
    builder.overrideProvider(provide).useValue(useValue);
  const moduleRef = await builder.compile();
  const logger = opts.logger ?? createAppLogger(env);
  const app = moduleRef.createNestApplication<NestFastifyApplication>(createFastifyAdapter(env), {
    logger,
    bodyParser: false,
  });
  await configureApp(app, env, logger);
  const fastify = app.getHttpAdapter().getInstance();
  await fastify.ready();
  const db = app.get<DataSource>(getDataSourceToken());
  const served = await fastify.inject({ method: 'GET', url: `/${OPENAPI_PATH}-json` });
  if (served.statusCode !== 200) throw new Error(`/${OPENAPI_PATH}-json answered ${served.statusCode}`);
  const validator = responseValidatorFor(served.body);
  const server = app.getHttpServer();
  return { app, db, http: () => checkedAgainst(validator, request(server)), close: () => app.close() };
}

/** The response of a supertest request, as superagent keeps it. */
interface SentResponse extends Response {
  req: { method: string; path: string };
}

/** A response that breaks the OpenAPI document: the operation, the status and what is wrong. */
class OpenApiContractError extends Error {
  override readonly name = 'OpenApiContractError';
}

const HTTP_METHODS = new Set(['get', 'post', 'put', 'patch', 'delete', 'del', 'head', 'options']);

/** The agent, with every request it starts checked against the document once answered. */
function checkedAgainst<A extends object>(validator: ResponseValidator, agent: A): A {
  const check = (res: Response) => {
    const { req } = res as SentResponse;
    const problem = validator.check({
      method: req.method,
      path: req.path,
      status: res.status,
      headers: res.headers,
      // A test that parses the body itself (as text) leaves res.text unset.
      text: typeof res.body === 'string' ? res.body : res.text,
    });
    if (problem) throw new OpenApiContractError(`The response breaks the OpenAPI document: ${problem}`);
  };
  return new Proxy(agent, {
    get(target, key, receiver) {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof key !== 'string' || !HTTP_METHODS.has(key) || typeof value !== 'function') return value;
      return (url: string) => (value as (url: string) => SupertestTest).call(target, url).expect(check);
    },
  });
}

/** The API on the run's test database, with these settings. */
export function createTestApp(envOverrides: Record<string, string> = {}): Promise<TestApp> {
  return bootTestApp({ env: envOverrides });
}
