import type { FastifyInstance } from 'fastify';
import type { Metrics } from './metrics.js';

/** Route label of requests that matched no route: one series for all of them, whatever the path. */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * Counts every answered request by route template and status, and times it. Register before the routes are:
 * each route's 5xx series then exist at 0 from the start, so an error-rate alert sees the first error.
 */
export function registerHttpMetrics(fastify: FastifyInstance, metrics: Metrics): void {
  fastify.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === 'HEAD') continue;
      for (const status of ['500', '503']) metrics.httpRequests.inc({ method, route: route.url, status }, 0);
    }
  });
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    const method = request.method;
    metrics.httpRequests.inc({ method, route, status: String(reply.statusCode) });
    metrics.httpRequestSeconds.observe({ method, route }, reply.elapsedTime / 1_000);
    done();
  });
}
