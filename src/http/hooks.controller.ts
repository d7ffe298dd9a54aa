import { Controller, HttpCode, Inject, Post, UseGuards } from '@nestjs/common';
import { HmacGuard, HmacRoute, HOOK_VERIFIER, Verified } from '../security/hmac.guard.js';
import type { HookVerifier, VerifiedHook } from '../security/hook-verifier.js';
import { HookSignalsService } from '../hooks/hook-signals.service.js';

/** Signed calls from game-server admin plugins and overlay agents (HMAC v1). The guard did all the checking. */
@Controller('v1')
export class HooksController {
  constructor(
    @Inject(HookSignalsService) private readonly hookSignals: HookSignalsService,
    @Inject(HOOK_VERIFIER) private readonly verifier: HookVerifier,
  ) {}

  @Post('hooks/admin')
  @HttpCode(202)
  @HmacRoute('admin')
  @UseGuards(HmacGuard)
  async admin(@Verified() hook: VerifiedHook) {
    return this.apply(hook);
  }

  @Post('overlay/events')
  @HttpCode(202)
  @HmacRoute('overlay')
  @UseGuards(HmacGuard)
  async overlay(@Verified() hook: VerifiedHook) {
    return this.apply(hook);
  }

  /** A call whose effect failed gives its nonce back, so the caller's identical retry is not taken for a replay. */
  private async apply(hook: VerifiedHook) {
    try {
      await this.hookSignals.apply(hook);
    } catch (error) {
      await this.verifier.releaseNonce(hook);
      throw error;
    }
    return { ok: true };
  }
}
