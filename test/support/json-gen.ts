/**
 * Seeded generators of JSON values and of the many texts that spell one value, for property tests of the strict
 * parser, the canonicalizer and HMAC verification. Deterministic per seed, so a failure can be replayed.
 */

/** mulberry32: small, fast, good enough for test data. */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bool(p = 0.5): boolean {
    return this.next() < p;
  }

  uint32(): number {
    return (this.next() * 4294967296) >>> 0;
  }
}

/** A double from a random 64-bit pattern (NaN and infinities re-drawn). */
export function randomDouble(rng: Rng): number {
  const view = new DataView(new ArrayBuffer(8));
  for (;;) {
    view.setUint32(0, rng.uint32());
    view.setUint32(4, rng.uint32());
    const x = view.getFloat64(0);
    if (Number.isFinite(x)) return x;
  }
}

const STRING_ALPHABET = [
  'a',
  'Z',
  '0',
  ' ',
  '"',
  '\\',
  '/',
  '\b',
  '\f',
  '\n',
  '\r',
  '\t',
  '\u0000',
  '\u001f',
  '\u007f',
  '\u0080',
  'é',
  'e\u0301',
  'ö',
  '€',
  '\u2028',
  '\u2029',
  '\ufb33',
  '\ufeff',
  '\uffff',
  '😂',
  '😀',
  '𝄞',
  '|',
  ':',
  ',',
];

export function randomString(rng: Rng, maxLength = 8): string {
  let s = '';
  const length = rng.int(maxLength + 1);
  for (let i = 0; i < length; i++) s += rng.pick(STRING_ALPHABET);
  return s;
}

/** A JSON number the strict parser accepts from its shortest form. */
export function randomNumber(rng: Rng): number {
  switch (rng.int(5)) {
    case 0:
      return rng.int(2001) - 1000;
    case 1:
      return (rng.bool() ? 1 : -1) * Math.floor(rng.next() * Number.MAX_SAFE_INTEGER);
    case 2:
      return Number((rng.next() * 1000 - 500).toFixed(rng.int(6)));
    default:
      return randomDouble(rng);
  }
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A number within ±(2^53−1), as hook bodies require. */
export function randomSafeNumber(rng: Rng): number {
  const x = randomNumber(rng);
  return Math.abs(x) <= Number.MAX_SAFE_INTEGER ? x : x / 2 ** (Math.ceil(Math.log2(Math.abs(x))) - 40);
}

export function randomJson(rng: Rng, depth = 3, number: (rng: Rng) => number = randomNumber): Json {
  const kind = depth <= 0 ? rng.int(4) : rng.int(6);
  switch (kind) {
    case 0:
      return rng.pick([null, true, false]);
    case 1:
      return number(rng);
    case 2:
    case 3:
      return randomString(rng);
    case 4:
      return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth - 1, number));
    default: {
      const obj: { [key: string]: Json } = {};
      const n = rng.int(5);
      for (let i = 0; i < n; i++) obj[randomString(rng, 4)] = randomJson(rng, depth - 1, number);
      return obj;
    }
  }
}

/**
 * One of the many texts of `value`: random whitespace, member order, string escapes and number spellings.
 * Numbers beyond ±(2^53−1) are always written with an exponent, since written out they are rejected.
 */
export function spellJson(rng: Rng, value: Json): string {
  const ws = () => rng.pick(['', '', ' ', '\n', '\t', '\r\n  ']);
  if (value === null || typeof value === 'boolean') return ws() + String(value) + ws();
  if (typeof value === 'number') return ws() + spellNumber(rng, value) + ws();
  if (typeof value === 'string') return ws() + spellString(rng, value) + ws();
  if (Array.isArray(value)) {
    if (value.length === 0) return ws() + '[' + ws() + ']' + ws();
    return ws() + '[' + value.map((v) => spellJson(rng, v)).join(',') + ']' + ws();
  }
  const keys = Object.keys(value);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [keys[i], keys[j]] = [keys[j] as string, keys[i] as string];
  }
  if (keys.length === 0) return ws() + '{' + ws() + '}' + ws();
  return ws() + '{' + keys.map((k) => ws() + spellString(rng, k) + ws() + ':' + spellJson(rng, value[k] as Json)).join(',') + '}' + ws();
}

export function spellNumber(rng: Rng, n: number): string {
  const big = Math.abs(n) > Number.MAX_SAFE_INTEGER;
  const shortest = Object.is(n, -0) ? '-0' : String(n);
  const choice = rng.int(4);
  if (big || choice === 0) {
    const e = n.toExponential();
    return rng.bool() ? e.replace('e', 'E') : e.replace('e+', 'e');
  }
  if (choice === 1 && shortest.includes('.') && !shortest.includes('e')) return shortest + '0'.repeat(1 + rng.int(3));
  if (choice === 2 && !shortest.includes('e') && !shortest.includes('.')) return shortest + '.0';
  return shortest;
}

export function spellString(rng: Rng, s: string): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0) as number;
    const mustEscape = code < 0x20 || ch === '"' || ch === '\\';
    if (!mustEscape && !rng.bool(0.3)) {
      out += ch;
      continue;
    }
    const short: Record<string, string> = {
      '"': '\\"',
      '\\': '\\\\',
      '\b': '\\b',
      '\f': '\\f',
      '\n': '\\n',
      '\r': '\\r',
      '\t': '\\t',
      '/': '\\/',
    };
    const shortForm = short[ch];
    if (shortForm !== undefined && rng.bool()) {
      out += shortForm;
      continue;
    }
    for (let i = 0; i < ch.length; i++) {
      const hex = ch.charCodeAt(i).toString(16).padStart(4, '0');
      out += '\\u' + (rng.bool() ? hex : hex.toUpperCase());
    }
  }
  return out + '"';
}
