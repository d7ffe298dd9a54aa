import type { DynamicModule, Provider } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomUUID } from 'node:crypto';
import { CONFIG, type Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import { registerHttpMetrics } from '../observability/http-metrics.js';
import { Metrics } from '../observability/metrics.js';
import { registerRawJsonParser } from '../security/raw-body.js';
import { ConsoleController } from './console.controller.js';
import { ErrorFilter } from './error.filter.js';
import { HealthController, READINESS_CHECK, type ReadinessCheck } from './health.controller.js';
import { HooksController } from './hooks.controller.js';
import { InternalApiController } from './internal-api.controller.js';
import { InternalTokenGuard } from './internal-token.guard.js';
import { type ProblemReply, sendProblem, toProblem } from './problem.js';
import { type RegisteredRoute, RouteTable } from './route-table.js';
import { TwitchEventSubController } from './twitch-eventsub.controller.js';

export const HTTP_CONTROLLERS = [HealthController, InternalApiController, HooksController, TwitchEventSubController, ConsoleController];

/** What the HTTP layer itself needs; the features' services come from their own wiring. */
export function httpProviders(parts: { config: Config; metrics: Metrics; readiness: ReadinessCheck }): Provider[] {
  return [
    { provide: CONFIG, useValue: parts.config },
    { provide: Metrics, useValue: parts.metrics },
    { provide: READINESS_CHECK, useValue: parts.readiness },
    InternalTokenGuard,
  ];
}

/** Polled every few seconds by orchestrators and scrapers: logged at debug so they do not drown the rest. */
const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

const REQUEST_ID = /^[A-Za-z0-9_.:-]{8,128}$/;

function isHookRoute(url: string): boolean {
  const path = url.split('?')[0] ?? '';
  return path === '/v1/hooks/admin' || path === '/v1/overlay/events' || path === '/v1/twitch/eventsub';
}

const routeTables = new WeakMap<NestFastifyApplication, RouteTable>();

/** Every route the application's Fastify instance registered (method and pattern), in registration order. */
export function registeredRoutes(app: NestFastifyApplication): readonly RegisteredRoute[] {
  return routeTables.get(app)?.routes ?? [];
}

/** The Fastify-backed Nest application of `module`, initialised but not yet listening. */
export async function createHttpApp(
  module: DynamicModule,
  config: Config,
  logger: Logger,
  metrics: Metrics,
): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    loggerInstance: logger.child({ component: 'http' }),
    // Access lines are written below: probes at debug, the rest at info, under the same key as application lines.
    disableRequestLogging: true,
    requestIdLogLabel: 'requestId',
    bodyLimit: 1_048_576,
    trustProxy: false,
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Requests the router cannot even parse (a malformed URL) are answered here, before any hook: same error shape.
    frameworkErrors: (
      error: Error & { statusCode?: number },
      request: { id: string },
      reply: { header(n: string, v: string): unknown },
    ) => {
      reply.header('x-request-id', request.id);
      const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
      void sendProblem(reply as unknown as ProblemReply, toProblem(status, error.message));
    },
  });
  const app = await NestFactory.create<NestFastifyApplication>(module, adapter, { logger: false, abortOnError: false, bodyParser: false });
  const fastify = app.getHttpAdapter().getInstance();
  const routes = RouteTable.listen(fastify);
  routeTables.set(app, routes);
  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  fastify.addHook('onResponse', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const line = { method: request.method, url: request.url, statusCode: reply.statusCode, responseTimeMs: Math.round(reply.elapsedTime) };
    if (PROBE_PATHS.has(path)) request.log.debug(line, 'request completed');
    else request.log.info(line, 'request completed');
  });
  // The console's page is /console (its files are /console/<name>); a typed trailing slash finds it too.
  fastify.get('/console/', (_request, reply) => reply.redirect('/console', 308));
  // Hook routes get the raw bytes (the guard verifies them); every other route gets strictly parsed JSON.
  registerRawJsonParser(app.getHttpAdapter().getInstance(), config.MAX_BODY_BYTES, { rawWhen: (req) => isHookRoute(req.url) });
  registerHttpMetrics(app.getHttpAdapter().getInstance(), metrics);
  app.useGlobalFilters(new ErrorFilter(logger.child({ component: 'http' }), metrics, routes));
  await app.init();
  return app;
}
