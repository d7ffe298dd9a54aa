import { Controller, Get, Header, HttpCode, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { SERVICES, type Services } from '../services.js';

/** Orchestrator and Prometheus endpoints: no auth, and nothing secret in them. */
@Controller()
export class HealthController {
  constructor(@Inject(SERVICES) private readonly services: Services) {}

  @Get('healthz')
  @HttpCode(200)
  healthz() {
    return { status: 'ok', instanceId: this.services.config.instanceId };
  }

  @Get('readyz')
  async readyz(@Res({ passthrough: true }) reply: FastifyReply) {
    const checks = await this.services.readiness();
    const ok = Object.values(checks).every((c) => c === 'ok');
    reply.status(ok ? 200 : 503);
    return { status: ok ? 'ready' : 'not_ready', checks };
  }

  @Get('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  async metrics() {
    return this.services.metrics.registry.metrics();
  }
}
