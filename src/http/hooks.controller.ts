import { Controller, HttpCode, Inject, Post, UseGuards } from '@nestjs/common';
import { HmacGuard, HmacRoute, Verified } from '../security/hmac.guard.js';
import type { VerifiedHook } from '../security/hook-verifier.js';
import { HookSignalsService } from '../hooks/hook-signals.service.js';

/** Signed calls from game-server admin plugins and overlay agents (HMAC v1). The guard did all the checking. */
@Controller('v1')
export class HooksController {
  constructor(@Inject(HookSignalsService) private readonly hookSignals: HookSignalsService) {}

  @Post('hooks/admin')
  @HttpCode(202)
  @HmacRoute('admin')
  @UseGuards(HmacGuard)
  async admin(@Verified() hook: VerifiedHook) {
    await this.hookSignals.apply(hook);
    return { ok: true };
  }

  @Post('overlay/events')
  @HttpCode(202)
  @HmacRoute('overlay')
  @UseGuards(HmacGuard)
  async overlay(@Verified() hook: VerifiedHook) {
    await this.hookSignals.apply(hook);
    return { ok: true };
  }
}
