import { describe, expect, it } from 'vitest';
import { type Json, Rng, randomJson, randomSafeNumber, spellJson } from '../../test/support/json-gen.js';
import { canonicalize } from './jcs.js';
import { CONTAINER, canonicalizeAsciiFast, canonicalizeStrictJson } from './strict-jcs.js';
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

/** What the reference says about the root members (`top`), or null when it refuses the text or the root is no object. */
function referenceTop(text: string | Uint8Array, numbers: NumberProfile): Record<string, unknown> | null {
  try {
    const value = parseStrictJson(text, { numbers });
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v !== null && typeof v === 'object' ? CONTAINER : v] as const));
  } catch {
    return null;
  }
}

/**
 * ASCII JSON without escapes: what the byte path decides by itself. Names and strings from a small alphabet (so
 * duplicates and shared prefixes happen), numbers in the spellings whose ECMAScript form differs from the text.
 */
const ASCII_NAMES = ['a', 'b', 'ab', 'a b', 'A', 'Z_', 'seq', 'type', 'matchId', 'm1', 'm10', 'm2', '__proto__', 'x!', 'x', ''];
const NUMBER_SPELLINGS = [
  '0',
  '-0',
  '0.0',
  '-0.0',
  '1',
  '-1',
  '1.0',
  '1.50',
  '1.25',
  '-0.5',
  '0.000001',
  '0.0000001',
  '0.0000005',
  '5e-7',
  '1e21',
  '1E21',
  '1e20',
  '1e15',
  '1e+2',
  '1E-2',
  '2.5e3',
  '123456789012345',
  '-123456789012345',
  '1234567890123456',
  '9007199254740991',
  '-9007199254740991',
  '9007199254740992',
  '9007199254740993',
  '12345678901234.5',
  '123456789012345.6',
  '0.123456789012345',
  '0.1234567890123456',
  '0.000001234567890123',
  '333333333.33333329',
  '1e400',
  '-1e400',
  '1e-400',
  '0e-400',
  '100',
  '10.01',
  '1764245000731',
];
function asciiJson(rng: Rng, depth: number): string {
  const ws = () => rng.pick(['', '', '', ' ', '\n', '\t', '\r\n ']);
  const kind = depth <= 0 ? rng.int(4) : rng.int(6);
  switch (kind) {
    case 0:
      return ws() + rng.pick(['true', 'false', 'null']) + ws();
    case 1:
      return ws() + rng.pick(NUMBER_SPELLINGS) + ws();
    case 2:
    case 3:
      return ws() + JSON.stringify(rng.pick(ASCII_NAMES) + rng.pick(['', 'x', ' y/z', '~'])) + ws();
    case 4:
      return ws() + '[' + Array.from({ length: rng.int(5) }, () => asciiJson(rng, depth - 1)).join(',') + ws() + ']' + ws();
    default: {
      const members = Array.from({ length: rng.int(rng.bool(0.2) ? 40 : 7) }, (_, i) => {
        const name = rng.bool(0.3) ? `k${rng.int(60)}` : rng.pick(ASCII_NAMES) + (rng.bool(0.3) ? String(i) : '');
        return ws() + JSON.stringify(name) + ws() + ':' + asciiJson(rng, depth - 1);
      });
      return ws() + '{' + members.join(',') + ws() + '}' + ws();
    }
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
        const bytes = Buffer.from(text, 'utf8');
        expect({ i, text, r: fused(bytes, numbers) }).toEqual({ i, text, r: reference(bytes, numbers) });
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
      const bytes = Buffer.from(text, 'utf8');
      expect({ i, text, r: fused(bytes, 'safe-range') }).toEqual({ i, text, r: reference(bytes, 'safe-range') });
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

  it.each(['safe-range', 'i-json'] as const)(
    'byte path (ASCII, no escapes): decides most bodies itself, and whatever it decides is what the reference answers (%s)',
    (numbers) => {
      const rng = new Rng(0xa5c1 + numbers.length);
      let decided = 0;
      let refusedByReference = 0;
      for (let i = 0; i < 4000; i++) {
        let text = asciiJson(rng, 4);
        if (rng.bool(0.3)) text = mutate(rng, text);
        const bytes = Buffer.from(text, 'utf8');
        const expected = reference(bytes, numbers);
        if (!('canonical' in expected)) refusedByReference++;
        // The public entry point always agrees with the reference (reason and offset included).
        expect({ i, text, r: fused(bytes, numbers) }).toEqual({ i, text, r: expected });
        const fast = canonicalizeAsciiFast(bytes, 32, numbers);
        if (fast === undefined) continue;
        decided++;
        // Anything the byte path decides, the reference accepts, with the same bytes and the same root members.
        expect({ i, text, canonical: fast.canonical }).toEqual({ i, text, canonical: 'canonical' in expected ? expected.canonical : null });
        const top = referenceTop(bytes, numbers);
        expect(fast.isObject).toBe(top !== null);
        if (top !== null) {
          expect({ i, text, top: { ...fast.top } }).toEqual({ i, text, top });
          for (const name of [...Object.keys(top), 'type', 'matchId', 'missing']) {
            expect(fast.rootMember(name)).toEqual(Object.hasOwn(top, name) ? top[name] : undefined);
          }
        }
      }
      // Most generated bodies are decided by the byte path; the mutations make the reference refuse many others.
      expect(decided).toBeGreaterThan(2000);
      expect(refusedByReference).toBeGreaterThan(300);
    },
  );

  it('byte path hands over to the general parser on what it does not decide (same answer either way)', () => {
    const cases = [
      '{"a":"\\n"}', // an escape
      '{"é":1}', // a byte ≥ 0x80
      '{"a":1,"b":2,"a":3}', // a duplicate, not adjacent
      '{"b":1,"a":2,"b":3}',
      '{"a":1,"a":2}',
      '[1e400]',
      '[9007199254740993]',
      '[1e-400]',
      '[' + '['.repeat(40) + ']'.repeat(40) + ']',
      '{"a":1} x',
      '{"a":1,}',
      '[1,]',
      '[01]',
      '[-]',
      '[1.]',
      '[1e]',
      '["a\u0001"]',
      '["a' + '\u0001'.slice(0, 0) + '\t"]',
      '',
      '   ',
      '\ufeff{}',
    ];
    for (const text of cases) {
      const bytes = Buffer.from(text, 'utf8');
      expect({ text, fast: canonicalizeAsciiFast(bytes, 32, 'safe-range') }).toEqual({ text, fast: undefined });
      expect({ text, r: fused(bytes, 'safe-range') }).toEqual({ text, r: reference(bytes, 'safe-range') });
    }
    const deep: Json = JSON.parse('{"z":' + '{"y":[1,{"b":2,"a":1}],"x":'.repeat(20) + '0' + '}'.repeat(21));
    const text = JSON.stringify(deep);
    expect(canonicalizeAsciiFast(Buffer.from(text), 32, 'safe-range')?.canonical).toBe(canonicalize(parseStrictJson(text)));
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
