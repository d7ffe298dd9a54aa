import { describePath, findNul, isInt4 } from '../infra/db/storable.js';
import type { JsonObject } from '../security/strict-json.js';

/** Why a verified hook body cannot be applied (answered 400 with this reason; the caller is authenticated). */
export type HookCallProblem = 'BODY_NOT_STORABLE' | 'SEQ_INVALID';

export type HookCallReading =
  | { readonly ok: true; readonly seq: number | null }
  | { readonly ok: false; readonly reason: HookCallProblem; readonly field: string };

/** What the policy reads of a verified call (see VerifiedHook). */
export interface HookCallFacts {
  readonly hasNul: boolean;
  readonly fields: Readonly<Record<string, unknown>>;
  /** Read only to name the field holding a NUL. */
  readonly body: JsonObject;
}

/**
 * Reads what the service stores of a verified hook body. The signature proves who sent it, not that PostgreSQL
 * can hold it: NUL in any string or key, and a `seq` that is not a 32-bit integer (the column's range), are refused.
 */
export function readHookCall(call: HookCallFacts): HookCallReading {
  if (call.hasNul) return { ok: false, reason: 'BODY_NOT_STORABLE', field: describePath('body', findNul(call.body) ?? []) };
  if (!Object.hasOwn(call.fields, 'seq')) return { ok: true, seq: null };
  const seq = call.fields.seq;
  if (seq === null) return { ok: true, seq: null };
  if (!isInt4(seq)) return { ok: false, reason: 'SEQ_INVALID', field: 'body.seq' };
  return { ok: true, seq };
}

/** A verified hook call the service refuses to apply (bad input, never a fault). */
export class HookCallRejected extends Error {
  constructor(
    readonly reason: HookCallProblem,
    readonly field: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'HookCallRejected';
  }
}
