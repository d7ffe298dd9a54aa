import { describe, expect, it } from 'vitest';
import { canonicalizeStrictJson } from '../security/strict-jcs.js';
import { parseStrictJson, type JsonObject } from '../security/strict-json.js';
import { readHookCall, type HookCallFacts } from './hook-call.policy.js';

/** The facts of a body as the verifier hands them over. */
function body(text: string): HookCallFacts {
  const parsed = canonicalizeStrictJson(text);
  return { hasNul: parsed.hasNul, fields: parsed.top, body: parseStrictJson(text) as JsonObject };
}

describe('readHookCall', () => {
  it('reads seq when it is a 32-bit integer, and null when absent or null', () => {
    expect(readHookCall(body('{"seq":2147483647}'))).toEqual({ ok: true, seq: 2147483647 });
    expect(readHookCall(body('{"seq":-2147483648}'))).toEqual({ ok: true, seq: -2147483648 });
    expect(readHookCall(body('{"a":1}'))).toEqual({ ok: true, seq: null });
    expect(readHookCall(body('{"seq":null}'))).toEqual({ ok: true, seq: null });
  });

  it.each(['2147483648', '-2147483649', '9007199254740991', '1.5', '"7"', 'true', '[1]'])('seq %s → SEQ_INVALID', (seq) => {
    expect(readHookCall(body(`{"seq":${seq}}`))).toEqual({ ok: false, reason: 'SEQ_INVALID', field: 'body.seq' });
  });

  it('NUL in a value or a key, at any depth → BODY_NOT_STORABLE with its path (NUL shown escaped)', () => {
    expect(readHookCall(body('{"a":{"b":["x","y\\u0000"]}}'))).toEqual({ ok: false, reason: 'BODY_NOT_STORABLE', field: 'body.a.b.1' });
    expect(readHookCall(body('{"a":{"k\\u0000":1}}'))).toEqual({ ok: false, reason: 'BODY_NOT_STORABLE', field: 'body.a.k\\u0000' });
    // A backslash followed by "u0000" is ordinary text.
    expect(readHookCall(body('{"a":"\\\\u0000"}'))).toEqual({ ok: true, seq: null });
  });
});
