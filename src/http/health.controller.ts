import { Controller, Get, Header, HttpCode, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { CONFIG, type Config } from '../config/config.js';
import { Metrics } from '../observability/metrics.js';

/** Reports each dependency as 'ok' or why not; the composition root knows which adapters there are. */
export type ReadinessCheck = () => Promise<Record<string, string>>;
export const READINESS_CHECK = Symbol('ReadinessCheck');

/** Orchestrator and Prometheus endpoints: no auth, and nothing secret in them. */
@Controller()
export class HealthController {
  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(Metrics) private readonly prometheus: Metrics,
    @Inject(READINESS_CHECK) private readonly readiness: ReadinessCheck,
  ) {}

  @Get('healthz')
  @HttpCode(200)
  healthz() {
    return { status: 'ok', instanceId: this.config.instanceId };
  }

  @Get('readyz')
  async readyz(@Res({ passthrough: true }) reply: FastifyReply) {
    const checks = await this.readiness();
    const ok = Object.values(checks).every((c) => c === 'ok');
    reply.status(ok ? 200 : 503);
    return { status: ok ? 'ready' : 'not_ready', checks };
  }

  @Get('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  async metrics() {
    return this.prometheus.registry.metrics();
  }
}
