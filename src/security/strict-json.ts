/**
 * A strict I-JSON (RFC 7493) parser for signed request bodies.
 *
 * Stricter than `JSON.parse` on purpose: two parties that disagree about what a body means must not agree on its
 * signature. It rejects duplicate keys, numbers a double cannot hold, integer literals beyond ±(2^53−1), lone
 * surrogates (raw or escaped), nesting deeper than 32, invalid UTF-8, a byte-order mark and trailing data.
 *
 * Number rules (decided here, documented in docs/security.md):
 * - a literal whose value overflows a double (`1e400`, `-1e400`), or a non-zero literal that underflows to zero
 *   (`1e-400`), is rejected (`NUMBER_OUT_OF_RANGE`) in every profile: parsers disagree about what it means;
 * - profile `safe-range` (the default; hook bodies and the signer): any number whose value is an integer beyond
 *   ±(2^53−1) is rejected (`UNSAFE_INTEGER`), however it is written: `9007199254740993`, `9007199254740993.0`,
 *   `1e20`, `1E30`. Every double that large is an integer, so in effect all numbers lie within ±(2^53−1). This
 *   is hmac-v1's rule read on values, and it makes the canonical form of an accepted body parse again;
 * - profile `i-json` (the `canonicalize` command, RFC 7493): only integer literals written without fraction or
 *   exponent beyond ±(2^53−1) are rejected, since a double cannot hold the exact integer they name; doubles in
 *   exponent form such as `1E30` (used by RFC 8785's own examples) are accepted.
 *
 * Depth: the outermost container is depth 1; more than `maxDepth` (32) open containers → `TOO_DEEP`. The parser
 * is iterative (an explicit stack), so hostile input cannot exhaust the call stack; it stops at the first
 * container beyond the limit.
 *
 * Results are safe to hand to any code: objects have a null prototype and every key is an own data property
 * (`__proto__`, `constructor`, `toJSON` are plain keys), and every object and array is frozen.
 */

export const MAX_JSON_DEPTH = 32;

/** A JSON value as produced by {@link parseStrictJson}: deeply frozen, objects with a null prototype. */
export type JsonValue = null | boolean | number | string | JsonArray | JsonObject;
export type JsonArray = readonly JsonValue[];
export interface JsonObject {
  readonly [key: string]: JsonValue;
}

export type StrictJsonReason =
  | 'INVALID_UTF8'
  | 'EMPTY'
  | 'SYNTAX'
  | 'TRAILING_DATA'
  | 'DUPLICATE_KEY'
  | 'NUMBER_OUT_OF_RANGE'
  | 'UNSAFE_INTEGER'
  | 'LONE_SURROGATE'
  | 'CONTROL_CHARACTER'
  | 'TOO_DEEP';

/** Why a text is not accepted; `offset` counts UTF-16 code units into the decoded text (0 for UTF-8 errors). */
export class StrictJsonError extends Error {
  constructor(
    readonly reason: StrictJsonReason,
    readonly offset: number,
    message: string,
  ) {
    super(`${message} (at offset ${offset})`);
    this.name = 'StrictJsonError';
  }
}

/** Which large numbers are accepted (see the module comment). */
export type NumberProfile = 'safe-range' | 'i-json';

export interface StrictJsonOptions {
  /** Most containers open at once (default 32). */
  maxDepth?: number;
  /** Default `safe-range`. */
  numbers?: NumberProfile;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes UTF-8, rejecting every ill-formed sequence (overlong forms, encoded surrogates, truncation). */
export function decodeUtf8Strict(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new StrictJsonError('INVALID_UTF8', 0, 'body is not valid UTF-8');
  }
}

/** Index of the first unpaired surrogate in `s`, or -1 when `s` is well-formed UTF-16. */
export function firstLoneSurrogate(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
    }
    return i;
  }
  return -1;
}

type Frame =
  | { readonly kind: 'object'; readonly value: Record<string, JsonValue>; key: string }
  | { readonly kind: 'array'; readonly value: JsonValue[] };

/**
 * Parses `input` (raw UTF-8 bytes, or an already decoded string) as strict I-JSON.
 * @throws StrictJsonError with a reason code on anything that is not accepted.
 */
export function parseStrictJson(input: Uint8Array | string, options: StrictJsonOptions = {}): JsonValue {
  const text = typeof input === 'string' ? input : decodeUtf8Strict(input);
  return new Parser(text, options.maxDepth ?? MAX_JSON_DEPTH, options.numbers ?? 'safe-range').parse();
}

const CH_TAB = 0x09;
const CH_LF = 0x0a;
const CH_CR = 0x0d;
const CH_SPACE = 0x20;
const CH_QUOTE = 0x22;
const CH_PLUS = 0x2b;
const CH_COMMA = 0x2c;
const CH_MINUS = 0x2d;
const CH_DOT = 0x2e;
const CH_0 = 0x30;
const CH_1 = 0x31;
const CH_9 = 0x39;
const CH_COLON = 0x3a;
const CH_E_UPPER = 0x45;
const CH_LBRACKET = 0x5b;
const CH_BACKSLASH = 0x5c;
const CH_RBRACKET = 0x5d;
const CH_E_LOWER = 0x65;
const CH_LBRACE = 0x7b;
const CH_RBRACE = 0x7d;

class Parser {
  private pos = 0;
  private readonly stack: Frame[] = [];

  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
    private readonly numbers: NumberProfile,
  ) {}

  parse(): JsonValue {
    const lone = firstLoneSurrogate(this.text);
    if (lone >= 0) this.fail('LONE_SURROGATE', 'unpaired surrogate in the text', lone);
    this.skipWhitespace();
    if (this.pos >= this.text.length) this.fail('EMPTY', 'no JSON value');

    let result: JsonValue | undefined;
    // Each turn reads one value; finished values bubble up through the closing brackets that follow them.
    for (;;) {
      let value = this.readValueOrOpen();
      if (value === undefined) continue; // a container was opened; read its first member next
      for (;;) {
        const top = this.stack[this.stack.length - 1];
        if (top === undefined) {
          result = value;
          break;
        }
        this.attach(top, value);
        this.skipWhitespace();
        const c = this.text.charCodeAt(this.pos);
        if (c === CH_COMMA) {
          this.pos++;
          if (top.kind === 'object') this.readKey(top);
          break;
        }
        if ((top.kind === 'array' && c === CH_RBRACKET) || (top.kind === 'object' && c === CH_RBRACE)) {
          this.pos++;
          this.stack.pop();
          value = Object.freeze(top.value);
          continue;
        }
        this.fail('SYNTAX', top.kind === 'array' ? 'expected "," or "]"' : 'expected "," or "}"');
      }
      if (result !== undefined) break;
    }

    this.skipWhitespace();
    if (this.pos < this.text.length) this.fail('TRAILING_DATA', 'data after the JSON value');
    return result;
  }

  /** Reads a scalar, or opens a container (returning undefined, or the value itself when it is empty). */
  private readValueOrOpen(): JsonValue | undefined {
    this.skipWhitespace();
    const c = this.text.charCodeAt(this.pos);
    if (c === CH_LBRACE || c === CH_LBRACKET) {
      if (this.stack.length >= this.maxDepth) this.fail('TOO_DEEP', `nesting deeper than ${this.maxDepth}`);
      this.pos++;
      this.skipWhitespace();
      if (c === CH_LBRACKET) {
        if (this.text.charCodeAt(this.pos) === CH_RBRACKET) {
          this.pos++;
          return Object.freeze([]);
        }
        this.stack.push({ kind: 'array', value: [] });
        return undefined;
      }
      const value = Object.create(null) as Record<string, JsonValue>;
      if (this.text.charCodeAt(this.pos) === CH_RBRACE) {
        this.pos++;
        return Object.freeze(value);
      }
      const frame: Frame = { kind: 'object', value, key: '' };
      this.stack.push(frame);
      this.readKey(frame);
      return undefined;
    }
    if (c === CH_QUOTE) return this.readString();
    if (c === CH_MINUS || (c >= CH_0 && c <= CH_9)) return this.readNumber();
    if (this.text.startsWith('true', this.pos)) return this.literal(4, true);
    if (this.text.startsWith('false', this.pos)) return this.literal(5, false);
    if (this.text.startsWith('null', this.pos)) return this.literal(4, null);
    return this.fail('SYNTAX', Number.isNaN(c) ? 'unexpected end of input' : 'unexpected character');
  }

  private literal(length: number, value: JsonValue): JsonValue {
    this.pos += length;
    return value;
  }

  /** Reads `"key" :` for the object on top of the stack, rejecting a key it already holds. */
  private readKey(frame: Frame & { kind: 'object' }): void {
    this.skipWhitespace();
    const at = this.pos;
    if (this.text.charCodeAt(this.pos) !== CH_QUOTE) this.fail('SYNTAX', 'expected a string key');
    const key = this.readString();
    if (Object.hasOwn(frame.value, key)) this.fail('DUPLICATE_KEY', 'duplicate key', at);
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) !== CH_COLON) this.fail('SYNTAX', 'expected ":"');
    this.pos++;
    frame.key = key;
  }

  private attach(frame: Frame, value: JsonValue): void {
    if (frame.kind === 'array') {
      frame.value.push(value);
      return;
    }
    // defineProperty, not assignment: "__proto__" must become an own key, never a prototype change.
    Object.defineProperty(frame.value, frame.key, { value, enumerable: true, writable: true, configurable: true });
  }

  private readString(): string {
    const start = this.pos;
    this.pos++; // opening quote
    let out = '';
    let runStart = this.pos;
    for (;;) {
      const c = this.text.charCodeAt(this.pos);
      if (Number.isNaN(c)) this.fail('SYNTAX', 'unterminated string', start);
      if (c === CH_QUOTE) {
        out += this.text.slice(runStart, this.pos);
        this.pos++;
        break;
      }
      if (c < 0x20) this.fail('CONTROL_CHARACTER', 'unescaped control character in a string');
      if (c !== CH_BACKSLASH) {
        this.pos++;
        continue;
      }
      out += this.text.slice(runStart, this.pos);
      out += this.readEscape();
      runStart = this.pos;
    }
    const lone = firstLoneSurrogate(out);
    if (lone >= 0) this.fail('LONE_SURROGATE', 'string contains an unpaired surrogate', start);
    return out;
  }

  private readEscape(): string {
    const e = this.text[this.pos + 1];
    this.pos += 2;
    switch (e) {
      case '"':
        return '"';
      case '\\':
        return '\\';
      case '/':
        return '/';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'u': {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (!/^[0-9A-Fa-f]{4}$/.test(hex)) this.fail('SYNTAX', 'invalid \\u escape', this.pos - 2);
        this.pos += 4;
        return String.fromCharCode(parseInt(hex, 16));
      }
      default:
        return this.fail('SYNTAX', 'invalid escape', this.pos - 2);
    }
  }

  private readNumber(): number {
    const start = this.pos;
    const scanned = scanNumber(this.text, start);
    if (scanned < 0) this.fail('SYNTAX', 'invalid number', start);
    this.pos = scanned >> 1;
    const lexeme = this.text.slice(start, this.pos);
    const value = Number(lexeme);
    const problem = numberProblem(value, lexeme, (scanned & 1) === 1, this.numbers);
    if (problem) this.fail(problem[0], problem[1], start);
    return value;
  }

  private skipWhitespace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== CH_SPACE && c !== CH_LF && c !== CH_CR && c !== CH_TAB) return;
      this.pos++;
    }
  }

  private fail(reason: StrictJsonReason, message: string, offset: number = this.pos): never {
    throw new StrictJsonError(reason, offset, message);
  }
}

/**
 * Scans the number literal at `start` (JSON grammar). Returns `end << 1 | 1` for an integer literal (no fraction,
 * no exponent), `end << 1` for any other, or -1 when the grammar is broken.
 */
export function scanNumber(t: string, start: number): number {
  let p = start;
  if (t.charCodeAt(p) === CH_MINUS) p++;
  const first = t.charCodeAt(p);
  if (first === CH_0) p++;
  else if (first >= CH_1 && first <= CH_9) p = digitsEnd(t, p);
  else return -1;
  let integer = 1;
  if (t.charCodeAt(p) === CH_DOT) {
    const after = digitsEnd(t, p + 1);
    if (after === p + 1) return -1;
    p = after;
    integer = 0;
  }
  const e = t.charCodeAt(p);
  if (e === CH_E_LOWER || e === CH_E_UPPER) {
    p++;
    const sign = t.charCodeAt(p);
    if (sign === CH_PLUS || sign === CH_MINUS) p++;
    const after = digitsEnd(t, p);
    if (after === p) return -1;
    p = after;
    integer = 0;
  }
  return (p << 1) | integer;
}

/** Why a number literal is refused under `numbers` (reason and message), or null when it is accepted. */
export function numberProblem(
  value: number,
  lexeme: string,
  integerLiteral: boolean,
  numbers: NumberProfile,
): [StrictJsonReason, string] | null {
  if (!Number.isFinite(value)) return ['NUMBER_OUT_OF_RANGE', 'number overflows a double'];
  if (value === 0 && /[1-9]/.test(mantissa(lexeme))) return ['NUMBER_OUT_OF_RANGE', 'non-zero number underflows to zero'];
  if (Math.abs(value) > Number.MAX_SAFE_INTEGER && (numbers === 'safe-range' || integerLiteral))
    return ['UNSAFE_INTEGER', 'integer beyond ±(2^53−1)'];
  return null;
}

function digitsEnd(t: string, p: number): number {
  while (p < t.length) {
    const c = t.charCodeAt(p);
    if (c < CH_0 || c > CH_9) break;
    p++;
  }
  return p;
}

/** The digits before any exponent (used to tell a real zero from an underflow). */
function mantissa(lexeme: string): string {
  const e = lexeme.search(/[eE]/);
  return e < 0 ? lexeme : lexeme.slice(0, e);
}
