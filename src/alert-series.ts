import type { DeadLetterReason } from './infra/bus/consumer-runtime.js';
import { INPUT_TOPICS } from './events/topics.js';
import type { PanelOperation } from './integrations/pterodactyl/panel-error.js';
import type { FailureReason } from './provisioning/policy.js';
import type { HmacFailureReason, HookRoute } from './security/hook-verifier.js';
import type { StrictJsonReason } from './security/strict-json.js';
import { RETENTION_TABLES } from './scheduling/retention.repository.js';
import type { Metrics } from './observability/metrics.js';

/** Compiles only when `List` names every member of `Union`: a new reason cannot be forgotten here. */
type Complete<Union, List extends readonly Union[]> = [Exclude<Union, List[number]>] extends [never] ? List : never;
const complete =
  <Union>() =>
  <const List extends readonly Union[]>(list: Complete<Union, List>): List =>
    list;

const PROVISION_FAILURES = complete<FailureReason>()(['TIMEOUT', 'INSTALL_FAILED', 'PANEL_NOT_FOUND', 'PANEL_ERROR']);
const DEAD_LETTER_REASONS = complete<DeadLetterReason>()([
  'INVALID_JSON',
  'NOT_AN_OBJECT',
  'UNSUPPORTED_VERSION',
  'INVALID_FIELDS',
  'UNKNOWN_TOPIC',
  'HANDLER_FAILED',
]);
const PANEL_OPERATIONS = complete<PanelOperation>()([
  'get_server',
  'get_server_by_external_id',
  'list_servers',
  'delete_server',
  'force_delete_server',
  'update_startup',
]);
const HOOK_ROUTES = complete<HookRoute>()(['admin', 'overlay']);
const JSON_REASONS = complete<StrictJsonReason>()([
  'INVALID_UTF8',
  'EMPTY',
  'SYNTAX',
  'TRAILING_DATA',
  'DUPLICATE_KEY',
  'NUMBER_OUT_OF_RANGE',
  'UNSAFE_INTEGER',
  'LONE_SURROGATE',
  'CONTROL_CHARACTER',
  'TOO_DEEP',
]);
const HMAC_REJECTIONS = complete<HmacFailureReason>()([
  'CLIENT_ADDRESS_UNKNOWN',
  'ADDRESS_NOT_ALLOWED',
  'CONTENT_ENCODING_UNSUPPORTED',
  'CONTENT_TYPE_UNSUPPORTED',
  'BODY_TOO_LARGE',
  'CONTENT_LENGTH_INVALID',
  'HEADER_MISSING',
  'HEADER_REPEATED',
  'KEY_ID_MALFORMED',
  'TS_MALFORMED',
  'NONCE_MALFORMED',
  'SIGNATURE_MALFORMED',
  'KEY_WRONG_ROUTE',
  'TS_OUT_OF_WINDOW',
  'KEY_UNKNOWN',
  'KEY_REVOKED',
  'KEY_EXPIRED',
  'KEY_NOT_YET_VALID',
  'KEY_KIND_DISABLED',
  ...JSON_REASONS.map((r) => `JSON_${r}` as const),
  'BODY_NOT_OBJECT',
  'BODY_TYPE_INVALID',
  'BODY_MATCH_ID_INVALID',
  'MATCH_ID_MISMATCH',
  'TYPE_NOT_ALLOWED',
  'SIGNATURE_MISMATCH',
  'REPLAY',
  'STORE_UNAVAILABLE',
]);

/**
 * Creates, at 0, every series an alert rule reads. `increase()` needs a sample before the first event: a series
 * born at 1 after a restart would look like no increase at all, and the alert would miss it.
 */
export function zeroAlertSeries(m: Metrics): void {
  for (const reason of PROVISION_FAILURES) m.provisionOutcomes.inc({ outcome: 'failed', reason }, 0);
  for (const topic of INPUT_TOPICS) for (const reason of DEAD_LETTER_REASONS) m.deadLetters.inc({ topic, reason }, 0);
  for (const operation of PANEL_OPERATIONS) m.panelRequests.inc({ operation, status: '429' }, 0);
  for (const route of HOOK_ROUTES) {
    m.replaysDetected.inc({ route }, 0);
    for (const reason of HMAC_REJECTIONS) m.hmacVerifications.inc({ result: 'rejected', reason, route }, 0);
  }
  m.unexpectedErrors.inc({ where: 'http' }, 0);
  for (const table of RETENTION_TABLES) m.retentionDeleted.inc({ table }, 0);
  for (const dependency of ['database', 'redis']) m.dependencyUnavailable.inc({ dependency }, 0);
}
