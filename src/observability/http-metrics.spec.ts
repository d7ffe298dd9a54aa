import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { registerHttpMetrics } from './http-metrics.js';
import { Metrics } from './metrics.js';

describe('HTTP request metrics', () => {
  const app = Fastify();
  afterEach(async () => {
    await app.close();
  });

  it("counts answers by method, route template and status, times them, and starts each route's 5xx at 0", async () => {
    const metrics = new Metrics();
    registerHttpMetrics(app, metrics);
    app.get('/v1/things/:id', async (req, reply) => {
      const { id } = req.params as { id: string };
      if (id === 'boom') return reply.status(500).send({ error: 'internal' });
      return { id };
    });
    await app.ready();

    const before = await metrics.registry.getSingleMetricAsString('flock_http_requests_total');
    expect(before).toContain('flock_http_requests_total{method="GET",route="/v1/things/:id",status="500"} 0');
    expect(before).toContain('flock_http_requests_total{method="GET",route="/v1/things/:id",status="503"} 0');

    for (const id of ['a', 'b', 'boom']) await app.inject({ method: 'GET', url: `/v1/things/${id}` });
    await app.inject({ method: 'GET', url: '/no/such/path/12345' });

    const after = await metrics.registry.getSingleMetricAsString('flock_http_requests_total');
    expect(after).toContain('flock_http_requests_total{method="GET",route="/v1/things/:id",status="200"} 2');
    expect(after).toContain('flock_http_requests_total{method="GET",route="/v1/things/:id",status="500"} 1');
    // Unknown paths share one series: a scanner cannot blow up the label set.
    expect(after).toContain('flock_http_requests_total{method="GET",route="unmatched",status="404"} 1');
    expect(after).not.toContain('12345');
    const latency = await metrics.registry.getSingleMetricAsString('flock_http_request_duration_seconds');
    expect(latency).toContain('flock_http_request_duration_seconds_count{method="GET",route="/v1/things/:id"} 3');
  });
});
