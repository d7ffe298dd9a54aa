import { describe, expect, it } from 'vitest';
import { zeroAlertSeries } from './alert-series.js';
import { Metrics } from './observability/metrics.js';

describe('series alerts read', () => {
  it('exist at 0 before the first event, with the build info', async () => {
    const metrics = new Metrics();
    zeroAlertSeries(metrics);
    const text = await metrics.registry.metrics();
    for (const line of [
      'flock_provisioning_outcomes_total{outcome="failed",reason="TIMEOUT"} 0',
      'flock_dead_letters_total{topic="server.reserved",reason="INVALID_JSON"} 0',
      'flock_pterodactyl_requests_total{operation="get_server",status="429"} 0',
      'flock_hmac_verifications_total{result="rejected",reason="SIGNATURE_MISMATCH",route="admin"} 0',
      'flock_hmac_verifications_total{result="rejected",reason="JSON_DUPLICATE_KEY",route="overlay"} 0',
      'flock_hook_replays_detected_total{route="overlay"} 0',
      'flock_grace_episodes_opened_total 0',
      'flock_grace_episodes_closed_total 0',
      'flock_unexpected_errors_total{where="http"} 0',
      'flock_dependency_unavailable_total{dependency="database"} 0',
    ]) {
      expect(text).toContain(line);
    }
    expect(text).toMatch(/flock_build_info\{version="\d+\.\d+\.\d+",nodejs="\d+\.\d+\.\d+"\} 1/);
  });
});
