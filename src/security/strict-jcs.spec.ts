import { describe, expect, it } from 'vitest';
import { Rng, randomJson, randomSafeNumber, spellJson } from '../../test/support/json-gen.js';
import { canonicalize } from './jcs.js';
import { CONTAINER, canonicalizeStrictJson } from './strict-jcs.js';
import { StrictJsonError, parseStrictJson, type NumberProfile } from './strict-json.js';

/** What the reference implementation (strict parse, then JCS of the tree) answers, as comparable data. */
function reference(text: string | Uint8Array, numbers: NumberProfile): { canonical: string } | { reason: string; offset: number } {
  try {
    return { canonical: canonicalize(parseStrictJson(text, { numbers }), { maxDepth: 64 }) };
  } catch (err) {
    if (err instanceof StrictJsonError) return { reason: err.reason, offset: err.offset };
    throw err;
  }
}

function fused(text: string | Uint8Array, numbers: NumberProfile): { canonical: string } | { reason: string; offset: number } {
  try {
    return { canonical: canonicalizeStrictJson(text, { numbers }).canonical };
  } catch (err) {
    if (err instanceof StrictJsonError) return { reason: err.reason, offset: err.offset };
    throw err;
  }
}

/** Small edits that turn valid JSON into every kind of invalid (or differently valid) JSON. */
const FRAGMENTS = [
  '"',
  '\\',
  '\\u',
  '\\u00',
  '\\ud800',
  '\\udc00',
  '\\u0000',
  ',',
  ':',
  '{',
  '}',
  '[',
  ']',
  '-',
  '0',
  '1e400',
  '1e-400',
  '9007199254740993',
  '1E30',
  '-0',
  '.5',
  '01',
  'tru',
  'null',
  ' ',
  '\u0001',
  '\ud800',
  '😂',
  '\ufeff',
  '"a":1',
  '{"a":1,"a":2}',
];

function mutate(rng: Rng, text: string): string {
  let out = text;
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const at = rng.int(out.length + 1);
    switch (rng.int(3)) {
      case 0:
        out = out.slice(0, at) + rng.pick(FRAGMENTS) + out.slice(at);
        break;
      case 1:
        out = out.slice(0, at) + out.slice(at + 1 + rng.int(3));
        break;
      default:
        out = out.slice(0, at) + rng.pick(FRAGMENTS) + out.slice(at + 1);
    }
  }
  return out;
}

describe('canonicalizeStrictJson ≡ canonicalize(parseStrictJson(…))', () => {
  it.each(['safe-range', 'i-json'] as const)(
    'same decision, same reason and offset, byte-identical output over generated JSON (%s)',
    (numbers) => {
      const rng = new Rng(0x1c14 + numbers.length);
      let accepted = 0;
      for (let i = 0; i < 3000; i++) {
        const text = spellJson(rng, randomJson(rng, 4, numbers === 'safe-range' ? randomSafeNumber : undefined));
        const expected = reference(text, numbers);
        if ('canonical' in expected) accepted++;
        expect({ i, text, r: fused(text, numbers) }).toEqual({ i, text, r: expected });
      }
      expect(accepted).toBeGreaterThan(2500);
    },
  );

  it('same decision, reason and offset, and output over mutated JSON (valid and invalid)', () => {
    const rng = new Rng(0xfa11);
    const outcomes = new Set<string>();
    for (let i = 0; i < 6000; i++) {
      const text = mutate(rng, spellJson(rng, randomJson(rng, 3, randomSafeNumber)));
      const expected = reference(text, 'safe-range');
      outcomes.add('reason' in expected ? expected.reason : 'OK');
      expect({ i, text, r: fused(text, 'safe-range') }).toEqual({ i, text, r: expected });
    }
    // The mutations must reach every way of failing, or the comparison proves little.
    expect([...outcomes].sort()).toEqual(
      [
        'CONTROL_CHARACTER',
        'DUPLICATE_KEY',
        'EMPTY',
        'LONE_SURROGATE',
        'NUMBER_OUT_OF_RANGE',
        'OK',
        'SYNTAX',
        'TRAILING_DATA',
        'UNSAFE_INTEGER',
      ].sort(),
    );
  });

  it('agrees on bytes: invalid UTF-8, BOM, depth, large objects (Set-based duplicate check), sorting', () => {
    const cases: (string | Uint8Array)[] = [
      Buffer.from([0x7b, 0xc0, 0xaf, 0x7d]),
      Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]),
      Buffer.from('{"a":"\xed\xa0\x80"}', 'latin1'),
      '['.repeat(32) + ']'.repeat(32),
      '['.repeat(33) + ']'.repeat(33),
      '{"d":' + '{"x":'.repeat(31) + '1' + '}'.repeat(32),
      JSON.stringify(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${(i * 7) % 40}`, i]))),
      '{' + Array.from({ length: 30 }, (_, i) => `"k${i}":${i}`).join(',') + ',"k17":0}',
      '{' + Array.from({ length: 50 }, (_, i) => `"k${(i * 37) % 50}":${i}`).join(',') + '}',
      '{' + Array.from({ length: 20 }, (_, i) => `"k${20 - i}":-${i}`).join(',') + '}',
      '{"\\u20ac":5,"\\ud83d\\ude02":2,"\\ufb33":1,"\\u00f6":4}',
      '[333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001]',
      '[-0, 1e21, 1e20, 1e-7, 0.000001, -0.0, 123456789012345, -12345678901234, 1234567890123456]',
      '"\\u0000\\u0008\\u001f\\u007f\\u2028/"',
    ];
    for (const text of cases) {
      for (const numbers of ['safe-range', 'i-json'] as const) {
        expect({ text: String(text), r: fused(text, numbers) }).toEqual({ text: String(text), r: reference(text, numbers) });
      }
    }
  });

  it('reports the root members that are scalars, containers as a marker, and whether any string or key holds NUL', () => {
    const r = canonicalizeStrictJson(
      '{"type":"overlay.heartbeat","matchId":"m\\u002d1","seq":7,"data":{"a":[1]},"n":null,"__proto__":true}',
    );
    expect(Object.entries(r.top)).toEqual([
      ['type', 'overlay.heartbeat'],
      ['matchId', 'm-1'],
      ['seq', 7],
      ['data', CONTAINER],
      ['n', null],
      ['__proto__', true],
    ]);
    expect(Object.getPrototypeOf(r.top)).toBeNull();
    expect(r.isObject).toBe(true);
    expect(r.hasNul).toBe(false);
    expect(canonicalizeStrictJson('{"a":{"k\\u0000":1}}').hasNul).toBe(true);
    expect(canonicalizeStrictJson('{"a":["\\u0000"]}').hasNul).toBe(true);
    expect(canonicalizeStrictJson('{"a":"\\\\u0000"}').hasNul).toBe(false);
    expect(canonicalizeStrictJson('[1]').isObject).toBe(false);
  });
});
