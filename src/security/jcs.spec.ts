import { describe, expect, it } from 'vitest';
import { Rng, randomDouble, randomJson, spellJson } from '../../test/support/json-gen.js';
import { JcsError, canonicalize, serializeNumber, serializeString } from './jcs.js';
import { parseStrictJson } from './strict-json.js';

/** Canonical form of a JSON text, read as the `canonicalize` command does (RFC 7493 I-JSON). */
const jcs = (text: string) => canonicalize(parseStrictJson(text, { numbers: 'i-json' }));
/** Canonical form of a JSON text, read as a hook body is. */
const jcsBody = (text: string) => canonicalize(parseStrictJson(text));

describe('RFC 8785 examples (hmac-v1.md), byte for byte', () => {
  it('numbers', () => {
    expect(jcs('[333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001]')).toBe('[333333333.3333333,1e+30,4.5,0.002,1e-27]');
    expect(jcs('[-0, 1e21, 1e20, 1e-7, 0.000001]')).toBe('[0,1e+21,100000000000000000000,1e-7,0.000001]');
  });

  it('sorts keys by UTF-16 code units', () => {
    const out = jcs('{"\\u20ac":5,"\\ud83d\\ude02":2,"\\ufb33":1,"\\u00f6":4}');
    expect(out).toBe('{"\u00f6":4,"\u20ac":5,"\ud83d\ude02":2,"\ufb33":1}');
    expect(Buffer.from(out, 'utf8').toString('hex')).toBe(
      Buffer.from('{"\u00f6":4,"\u20ac":5,"\ud83d\ude02":2,"\ufb33":1}', 'utf8').toString('hex'),
    );
  });

  it('escapes strings minimally', () => {
    expect(jcs('"\\u0000\\u0008\\u001f\\u007f\\u2028/"')).toBe('"\\u0000\\b\\u001f\u007f\u2028/"');
  });

  it('RFC 8785 §3.2.2 sample', () => {
    const input = `{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\"\\/",
      "literals": [null, true, false]
    }`;
    expect(jcs(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it('RFC 8785 §3.2.3 sorting sample', () => {
    const input =
      '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One",' +
      '"\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}';
    expect(jcs(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('RFC 8785 Appendix B number samples', () => {
    const samples: [string, string][] = [
      ['0000000000000000', '0'],
      ['8000000000000000', '0'],
      ['0000000000000001', '5e-324'],
      ['8000000000000001', '-5e-324'],
      ['7fefffffffffffff', '1.7976931348623157e+308'],
      ['ffefffffffffffff', '-1.7976931348623157e+308'],
      ['4340000000000000', '9007199254740992'],
      ['c340000000000000', '-9007199254740992'],
      ['4430000000000000', '295147905179352830000'],
      ['44b52d02c7e14af5', '9.999999999999997e+22'],
      ['44b52d02c7e14af6', '1e+23'],
      ['44b52d02c7e14af7', '1.0000000000000001e+23'],
      ['444b1ae4d6e2ef4e', '999999999999999700000'],
      ['444b1ae4d6e2ef4f', '999999999999999900000'],
      ['444b1ae4d6e2ef50', '1e+21'],
      ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
      ['3eb0c6f7a0b5ed8d', '0.000001'],
      ['41b3de4355555553', '333333333.3333332'],
      ['41b3de4355555554', '333333333.33333325'],
      ['41b3de4355555555', '333333333.3333333'],
      ['41b3de4355555556', '333333333.3333334'],
      ['41b3de4355555557', '333333333.33333343'],
      ['becbf647612f3696', '-0.0000033333333333333333'],
      ['43143ff3c1cb0959', '1424953923781206.2'],
    ];
    for (const [bits, expected] of samples) {
      expect(serializeNumber(Buffer.from(bits, 'hex').readDoubleBE(0)), bits).toBe(expected);
    }
  });
});

/**
 * ECMAScript Number::toString(x) written from the spec text. The shortest digit count comes from toExponential
 * (correctly rounded; the closest candidate reads back whenever any does); when x lies exactly halfway between
 * two shortest candidates, the spec takes the even one where toExponential rounds up, so that case is settled
 * with exact BigInt arithmetic on x = M·2^E.
 */
function esNumberToString(x: number): string {
  if (x === 0) return '0';
  if (x < 0) return '-' + esNumberToString(-x);
  let digits = '';
  let n = 0;
  for (let p = 1; p <= 17; p++) {
    const e = x.toExponential(p - 1);
    if (Number(e) !== x) continue;
    const [mantissa, exponent] = e.split('e') as [string, string];
    digits = mantissa.replace('.', '');
    n = Number(exponent) + 1;
    break;
  }
  const s1 = BigInt(digits);
  if (s1 % 2n === 1n && isHalfwayBelow(x, s1, digits.length - n)) digits = String(s1 - 1n).padStart(digits.length, '0');
  digits = digits.replace(/0+$/, '');
  const k = digits.length;
  if (k <= n && n <= 21) return digits + '0'.repeat(n - k);
  if (0 < n && n <= 21) return digits.slice(0, n) + '.' + digits.slice(n);
  if (-6 < n && n <= 0) return '0.' + '0'.repeat(-n) + digits;
  const exp = n - 1;
  const sign = exp >= 0 ? '+' : '-';
  const head = k === 1 ? digits : digits[0] + '.' + digits.slice(1);
  return `${head}e${sign}${Math.abs(exp)}`;
}

/** True when x·10^q equals s1 − 1/2 exactly. */
function isHalfwayBelow(x: number, s1: bigint, q: number): boolean {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  const m = biased === 0 ? fraction : fraction | (1n << 52n);
  const e = biased === 0 ? -1074 : biased - 1075;
  // 2·M·2^E·10^q  vs  2·s1 − 1, with negative powers moved to the other side.
  const left = 2n * m * (q > 0 ? 10n ** BigInt(q) : 1n) * (e > 0 ? 2n ** BigInt(e) : 1n);
  const right = (2n * s1 - 1n) * (q < 0 ? 10n ** BigInt(-q) : 1n) * (e < 0 ? 2n ** BigInt(-e) : 1n);
  return left === right;
}

describe('number serialization', () => {
  it('matches an independent ECMAScript formatter on 100 000 random doubles', () => {
    const rng = new Rng(8785);
    const mismatches: string[] = [];
    for (let i = 0; i < 100_000; i++) {
      const x = randomDouble(rng);
      const got = serializeNumber(x);
      if (got !== esNumberToString(x) || Number(got) !== x || got !== JSON.stringify(x)) {
        mismatches.push(`${Buffer.from(new Float64Array([x]).buffer).toString('hex')}: ${got}`);
      }
    }
    expect(mismatches.slice(0, 10)).toEqual([]);
  });

  it('rejects non-finite numbers', () => {
    for (const x of [NaN, Infinity, -Infinity]) expect(() => serializeNumber(x)).toThrow(JcsError);
  });
});

function withinSafeRange(value: unknown): boolean {
  if (typeof value === 'number') return Math.abs(value) <= Number.MAX_SAFE_INTEGER;
  if (value !== null && typeof value === 'object') return Object.values(value).every(withinSafeRange);
  return true;
}

describe('canonicalize', () => {
  it('refuses values that are not JSON data', () => {
    const reason = (v: unknown) => {
      try {
        canonicalize(v);
        return 'accepted';
      } catch (err) {
        return (err as JcsError).reason;
      }
    };
    expect(reason(undefined)).toBe('UNSUPPORTED_TYPE');
    expect(reason({ a: undefined })).toBe('UNSUPPORTED_TYPE');
    expect(reason(10n)).toBe('UNSUPPORTED_TYPE');
    expect(reason(new Date(0))).toBe('UNSUPPORTED_TYPE');
    expect(reason(new Map())).toBe('UNSUPPORTED_TYPE');
    expect(reason([NaN])).toBe('NUMBER_NOT_FINITE');
    expect(reason('\ud800')).toBe('LONE_SURROGATE');
    expect(reason({ '\udc00': 1 })).toBe('LONE_SURROGATE');
    const deep: unknown[] = [];
    let cursor = deep;
    for (let i = 0; i < 40; i++) {
      const next: unknown[] = [];
      cursor.push(next);
      cursor = next;
    }
    expect(reason(deep)).toBe('TOO_DEEP');
    expect(reason(Object.create(null))).toBe('accepted');
  });

  it('escapes every control character as JSON.stringify does (both follow ES QuoteJSONString)', () => {
    for (let c = 0; c < 0x80; c++) {
      const s = String.fromCharCode(c);
      expect(serializeString(s)).toBe(JSON.stringify(s));
    }
    expect(serializeString('\u2028\u2029\u007f\ufeff😂')).toBe('"\u2028\u2029\u007f\ufeff😂"');
  });

  it('does not normalise Unicode (NFC and NFD stay different)', () => {
    expect(canonicalize('\u00e9')).not.toBe(canonicalize('e\u0301'));
  });

  it('round-trips: every spelling of a value has the canonical form of the value, and JCS is a fixed point', () => {
    const rng = new Rng(20260101);
    for (let i = 0; i < 2_000; i++) {
      const value = randomJson(rng, 4);
      const canonical = canonicalize(value);
      expect(JSON.parse(canonical)).toEqual(value);
      const spelled = spellJson(rng, value);
      expect(jcs(spelled), spelled).toBe(canonical);
      // Beyond ±(2^53−1) a canonical number below 1e21 is written out in digits, which no profile re-reads.
      if (withinSafeRange(value)) {
        expect(jcs(canonical)).toBe(canonical);
        expect(jcsBody(spelled)).toBe(canonical);
        expect(jcsBody(canonical)).toBe(canonical);
      }
    }
  });
});
