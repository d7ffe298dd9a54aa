import { describe, expect, it } from 'vitest';
import {
  StrictJsonError,
  decodeUtf8Strict,
  firstLoneSurrogate,
  parseStrictJson,
  type JsonObject,
  type StrictJsonReason,
} from './strict-json.js';

function reasonOf(input: string | Uint8Array): StrictJsonReason | 'accepted' {
  try {
    parseStrictJson(input);
    return 'accepted';
  } catch (err) {
    if (err instanceof StrictJsonError) return err.reason;
    throw err;
  }
}

describe('parseStrictJson: accepts JSON', () => {
  it.each([
    ['null', null],
    ['true', true],
    ['false', false],
    ['0', 0],
    ['-0', -0],
    ['4.50', 4.5],
    ['2e-3', 0.002],
    ['333333333.33333329', 333333333.3333333],
    ['9007199254740991', 9007199254740991],
    ['-9007199254740991', -9007199254740991],
    ['5e-324', 5e-324],
    ['0e99999', 0],
    ['"a\\u0041\\n\\/"', 'aA\n/'],
    ['"\\ud83d\\ude02"', '😂'],
    [' \t\r\n[ 1 , {"a" : [ ] } , "x" ]\n ', [1, { a: [] }, 'x']],
  ])('%s', (text, expected) => {
    expect(parseStrictJson(text)).toEqual(expected);
  });

  it('reads UTF-8 bytes', () => {
    expect(parseStrictJson(Buffer.from('{"mvp":"Zoë","e":"😂"}'))).toEqual({ mvp: 'Zoë', e: '😂' });
  });

  it('agrees with JSON.parse on ordinary documents', () => {
    const text = JSON.stringify({ a: [1, 2.5, -3e-7, 'x\u2028y', { b: null, c: true }], '': 'empty key', é: '\u0000' });
    expect(parseStrictJson(text)).toEqual(JSON.parse(text));
  });
});

describe('parseStrictJson: rejects what is not I-JSON', () => {
  it.each<[string, string | Uint8Array, StrictJsonReason]>([
    ['duplicate keys', '{"a":1,"a":2}', 'DUPLICATE_KEY'],
    ['duplicate keys spelled differently', '{"a":1,"\\u0061":2}', 'DUPLICATE_KEY'],
    ['duplicate nested keys', '{"x":{"b":1,"b":1}}', 'DUPLICATE_KEY'],
    ['an integer beyond 2^53-1', '9007199254740993', 'UNSAFE_INTEGER'],
    ['2^53 itself', '9007199254740992', 'UNSAFE_INTEGER'],
    ['a negative integer beyond', '-9007199254740993', 'UNSAFE_INTEGER'],
    ['1e20 written out', '100000000000000000000', 'UNSAFE_INTEGER'],
    ['an integral decimal beyond', '9007199254740993.0', 'UNSAFE_INTEGER'],
    ['1e20 with an exponent', '1e20', 'UNSAFE_INTEGER'],
    ['1E30', '[1E30]', 'UNSAFE_INTEGER'],
    ['-1.5e300', '-1.5e300', 'UNSAFE_INTEGER'],
    ['just past 2^53-1 as a decimal', '9007199254740991.5', 'UNSAFE_INTEGER'],
    ['1e400', '1e400', 'NUMBER_OUT_OF_RANGE'],
    ['-1e400', '[-1e400]', 'NUMBER_OUT_OF_RANGE'],
    ['a long integer overflowing', '1' + '0'.repeat(400), 'NUMBER_OUT_OF_RANGE'],
    ['an underflow', '1e-400', 'NUMBER_OUT_OF_RANGE'],
    ['an escaped lone high surrogate', '"\\ud800"', 'LONE_SURROGATE'],
    ['an escaped lone low surrogate', '"a\\udc00b"', 'LONE_SURROGATE'],
    ['a reversed pair', '"\\ude02\\ud83d"', 'LONE_SURROGATE'],
    ['a lone surrogate in a key', '{"\\ud800":1}', 'LONE_SURROGATE'],
    ['a raw lone surrogate', '"\ud800"', 'LONE_SURROGATE'],
    ['a raw high surrogate then an escaped low one', '"\ud83d\\ude02"', 'LONE_SURROGATE'],
    ['an encoded surrogate (CESU-8)', Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]), 'INVALID_UTF8'],
    ['an overlong encoding', Buffer.from([0x22, 0xc0, 0xaf, 0x22]), 'INVALID_UTF8'],
    ['a truncated sequence', Buffer.from([0x22, 0xe2, 0x82, 0x22]), 'INVALID_UTF8'],
    ['latin-1', Buffer.from([0x22, 0xe9, 0x22]), 'INVALID_UTF8'],
    ['a byte-order mark', Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), 'SYNTAX'],
    ['nesting 33 deep', '['.repeat(33) + ']'.repeat(33), 'TOO_DEEP'],
    ['an empty object at depth 33', '['.repeat(32) + '{}' + ']'.repeat(32), 'TOO_DEEP'],
    ['trailing garbage', '{} x', 'TRAILING_DATA'],
    ['two documents', '{}{}', 'TRAILING_DATA'],
    ['a NUL after the value', '{}\u0000', 'TRAILING_DATA'],
    ['empty input', '', 'EMPTY'],
    ['whitespace only', ' \n', 'EMPTY'],
    ['a raw control character', '"a\nb"', 'CONTROL_CHARACTER'],
    ['a leading zero', '01', 'TRAILING_DATA'],
    ['a plus sign', '+1', 'SYNTAX'],
    ['a bare dot', '1.', 'SYNTAX'],
    ['a bare exponent', '1e', 'SYNTAX'],
    ['a leading dot', '.5', 'SYNTAX'],
    ['NaN', 'NaN', 'SYNTAX'],
    ['Infinity', '-Infinity', 'SYNTAX'],
    ['a trailing comma in an array', '[1,]', 'SYNTAX'],
    ['a trailing comma in an object', '{"a":1,}', 'SYNTAX'],
    ['single quotes', "{'a':1}", 'SYNTAX'],
    ['an unquoted key', '{a:1}', 'SYNTAX'],
    ['a bad escape', '"\\x41"', 'SYNTAX'],
    ['a short unicode escape', '"\\u12"', 'SYNTAX'],
    ['an unterminated string', '"abc', 'SYNTAX'],
    ['an unterminated array', '[1, 2', 'SYNTAX'],
    ['an unterminated object', '{"a":1', 'SYNTAX'],
    ['a comment', '{} // no', 'TRAILING_DATA'],
    ['a non-JSON space', '\u00a0{}', 'SYNTAX'],
    ['truncated literal', 'tru', 'SYNTAX'],
  ])('%s', (_name, input, reason) => {
    expect(reasonOf(input)).toBe(reason);
  });

  it('profile i-json accepts large doubles but not integer literals a double cannot hold', () => {
    const iJson = (text: string) => {
      try {
        return parseStrictJson(text, { numbers: 'i-json' });
      } catch (err) {
        return (err as StrictJsonError).reason;
      }
    };
    expect(iJson('[1E30, 1e21, 1e20, 9007199254740993.0, -1.5e300]')).toEqual([1e30, 1e21, 1e20, 9007199254740992, -1.5e300]);
    expect(iJson('9007199254740993')).toBe('UNSAFE_INTEGER');
    expect(iJson('100000000000000000000')).toBe('UNSAFE_INTEGER');
    expect(iJson('1e400')).toBe('NUMBER_OUT_OF_RANGE');
    expect(iJson('1e-400')).toBe('NUMBER_OUT_OF_RANGE');
  });

  it('accepts exactly 32 levels', () => {
    expect(reasonOf('['.repeat(32) + ']'.repeat(32))).toBe('accepted');
    expect(reasonOf('{"a":'.repeat(32) + '1' + '}'.repeat(32))).toBe('accepted');
    expect(reasonOf('{"a":'.repeat(33) + '1' + '}'.repeat(33))).toBe('TOO_DEEP');
  });

  it('rejects 32 000-deep nesting without exhausting the stack, and quickly', () => {
    const started = performance.now();
    expect(reasonOf('['.repeat(32_000) + ']'.repeat(32_000))).toBe('TOO_DEEP');
    expect(reasonOf('{"a":'.repeat(32_000) + '1' + '}'.repeat(32_000))).toBe('TOO_DEEP');
    expect(reasonOf('['.repeat(1_000_000))).toBe('TOO_DEEP');
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('reports offsets', () => {
    try {
      parseStrictJson('{"a":1,"a":2}');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(StrictJsonError);
      expect((err as StrictJsonError).offset).toBe(7);
      expect((err as StrictJsonError).message).toContain('offset 7');
    }
  });
});

describe('parseStrictJson: safe results', () => {
  it('keeps __proto__, constructor and toJSON as plain keys', () => {
    const value = parseStrictJson('{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},"toJSON":"nope"}') as JsonObject;
    expect(Object.getPrototypeOf(value)).toBeNull();
    expect(Object.keys(value)).toEqual(['__proto__', 'constructor', 'toJSON']);
    expect(Object.getOwnPropertyDescriptor(value, '__proto__')?.value).toEqual({ polluted: true });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect((Object.prototype as unknown as Record<string, unknown>)['polluted']).toBeUndefined();
    // toJSON is data, so serializing does not call it.
    expect(JSON.stringify(value)).toBe('{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},"toJSON":"nope"}');
  });

  it('treats "__proto__" twice as a duplicate key', () => {
    expect(reasonOf('{"__proto__":1,"__proto__":2}')).toBe('DUPLICATE_KEY');
  });

  it('returns deeply frozen values', () => {
    const value = parseStrictJson('{"a":[{"b":[1]}],"c":{}}') as JsonObject;
    const a = value['a'] as readonly JsonObject[];
    const inner = a[0] as JsonObject;
    expect(Object.isFrozen(value)).toBe(true);
    expect(Object.isFrozen(a)).toBe(true);
    expect(Object.isFrozen(inner)).toBe(true);
    expect(Object.isFrozen(inner['b'])).toBe(true);
    expect(Object.isFrozen(value['c'])).toBe(true);
    expect(() => {
      (value as Record<string, unknown>)['a'] = 1;
    }).toThrow(TypeError);
  });
});

describe('helpers', () => {
  it('decodeUtf8Strict keeps a BOM rather than hiding it', () => {
    expect(decodeUtf8Strict(Buffer.from([0xef, 0xbb, 0xbf, 0x31]))).toBe('\ufeff1');
  });

  it('firstLoneSurrogate', () => {
    expect(firstLoneSurrogate('ok 😂')).toBe(-1);
    expect(firstLoneSurrogate('a\ud800')).toBe(1);
    expect(firstLoneSurrogate('\udc00')).toBe(0);
  });
});
