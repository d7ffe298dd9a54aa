import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../../src/app.module.js';
import type { FakePanel } from '../fakes/pterodactyl-panel.js';
import { randomName } from '../support/infra.js';
import { eventually } from '../support/kafka-tap.js';
import { internalApi, matchBody, realStack, serviceEnv, startTestService, type RealStack } from '../support/service.js';

// A panel with a large budget: the instance runs 4 poll passes side by side (pollPlan). Each provision is still
// claimed by one pass at a time: every match goes READY with exactly one server.ready, and none fails.
let real: RealStack;
let panel: FakePanel;
let service: RunningService;
let api: ReturnType<typeof internalApi>;

beforeAll(async () => {
  real = await realStack({ rateLimitPerMin: 100_000 });
  panel = real.panel;
  service = await startTestService(
    serviceEnv(real.stack, {
      PANEL_LIST_EVERY_MS: '0',
      PTERO_RATE_LIMIT_PER_MIN: '12000',
      READY_DEADLINE_MS: '60000',
      POLL_EVERY_MS: '100',
    }),
  );
  api = internalApi(service);
});

afterAll(async () => {
  await service?.close();
  await real?.close();
});

describe('poll passes side by side', () => {
  it('150 provisions under 4 passes: each READY once, one server.ready each', async () => {
    const matches = Array.from({ length: 150 }, (_, i) => ({
      matchId: `pass-${i}-${randomName('')}`,
      serverId: panel.addServer({ installAfterMs: 300 }),
    }));
    for (const { matchId } of matches) {
      expect((await api('PUT', `/v1/internal/matches/${matchId}`, matchBody(matchId))).status).toBe(201);
      await service.services.provisioning.recordReadinessSignal(matchId, { adminHooksOk: true });
    }
    await Promise.all(
      matches.map(async ({ matchId, serverId }) => {
        const { status } = await api('POST', '/v1/internal/events/server.reserved', {
          v: 'v1',
          eventId: randomUUID(),
          matchId,
          panelServerId: serverId,
        });
        expect(status).toBe(202);
      }),
    );
    const db = service.services.db;
    const ids = matches.map((m) => m.matchId);
    await eventually(
      async () => {
        const { n } = await db
          .selectFrom('provisions')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('match_id', 'in', ids)
          .where('state', '=', 'READY')
          .executeTakeFirstOrThrow();
        return Number(n) === matches.length;
      },
      45_000,
      'all ready',
    );
    const ready = await db.selectFrom('outbox').select(['key']).where('topic', 'like', '%server.ready').where('key', 'in', ids).execute();
    expect(ready).toHaveLength(matches.length);
    expect(new Set(ready.map((r) => r.key)).size).toBe(matches.length);
    const failed = await db.selectFrom('outbox').select('key').where('topic', 'like', '%server.failed').where('key', 'in', ids).execute();
    expect(failed).toEqual([]);
  });
});
