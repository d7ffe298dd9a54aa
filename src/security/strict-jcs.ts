/**
 * Strict I-JSON validation and RFC 8785 canonicalization in one pass, without building the value: the hot path of
 * hook verification. Accepts and refuses exactly what {@link parseStrictJson} does (same reason, same offset) and
 * produces byte for byte what `canonicalize(parseStrictJson(x))` does; a property test holds the two together.
 *
 * The control flow mirrors strict-json's Parser on purpose (checks happen in the same order); only the outputs
 * differ. Fast paths: a string without escapes is its own canonical form (raw slice, quotes included), an integer
 * literal of up to 15 digits is its own number form, and object members are sorted only when they are out of order.
 *
 * Besides the canonical text it reports what the service needs without a tree: whether any string or key holds
 * U+0000, and the root object's members whose values are scalars (for the body binding and `seq`).
 */
import { serializeString } from './jcs.js';
import {
  MAX_JSON_DEPTH,
  numberProblem,
  scanNumber,
  StrictJsonError,
  decodeUtf8Strict,
  firstLoneSurrogate,
  type NumberProfile,
  type StrictJsonOptions,
  type StrictJsonReason,
} from './strict-json.js';

/** A root-object member's value: scalars as themselves, containers as this marker. */
export const CONTAINER: unique symbol = Symbol('container');
export type TopValue = string | number | boolean | null | typeof CONTAINER;

export interface CanonicalJson {
  /** RFC 8785 form of the value. */
  readonly canonical: string;
  /** The value is a JSON object (the root). */
  readonly isObject: boolean;
  /** Members of the root object (null prototype); empty when the root is not an object. */
  readonly top: Readonly<Record<string, TopValue>>;
  /** Some string value or member name holds U+0000. */
  readonly hasNul: boolean;
}

/**
 * Validates `input` as strict I-JSON and returns its RFC 8785 canonical form.
 * @throws StrictJsonError exactly where parseStrictJson would.
 */
export function canonicalizeStrictJson(input: Uint8Array | string, options: StrictJsonOptions = {}): CanonicalJson {
  const text = typeof input === 'string' ? input : decodeUtf8Strict(input);
  const ascii = typeof input !== 'string' && text.length === input.length;
  return new CanonicalParser(text, options.maxDepth ?? MAX_JSON_DEPTH, options.numbers ?? 'safe-range', ascii).parse();
}

interface ObjectFrame {
  readonly kind: 0;
  /** Decoded member names, in input order. */
  readonly keys: string[];
  /** Canonical `"name":value` members, in input order. */
  readonly members: string[];
  /** Canonical form of the current member's name. */
  keyText: string;
  /** Lookup for duplicate names once the object is large. */
  seen: Set<string> | undefined;
  /** Members are in canonical order so far (no sort needed). */
  sorted: boolean;
}

interface ArrayFrame {
  readonly kind: 1;
  out: string;
}

type Frame = ObjectFrame | ArrayFrame;

const CH_TAB = 0x09;
const CH_LF = 0x0a;
const CH_CR = 0x0d;
const CH_SPACE = 0x20;
const CH_QUOTE = 0x22;
const CH_COMMA = 0x2c;
const CH_MINUS = 0x2d;
const CH_0 = 0x30;
const CH_9 = 0x39;
const CH_COLON = 0x3a;
const CH_LBRACKET = 0x5b;
const CH_BACKSLASH = 0x5c;
const CH_RBRACKET = 0x5d;
const CH_LBRACE = 0x7b;
const CH_RBRACE = 0x7d;

/** A backslash or a control character: what ends a string's fast path. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is what this expression is for
const SPECIAL = /[\\\u0000-\u001f]/;

/** Objects with more members than this use a Set for the duplicate check. */
const LINEAR_KEY_SCAN = 12;

class CanonicalParser {
  private pos = 0;
  private readonly stack: Frame[] = [];
  private hasNul = false;
  /** The last scalar read, as a value (for the root object's members). */
  private scalar: TopValue = null;
  private readonly top: Record<string, TopValue> = Object.create(null) as Record<string, TopValue>;
  /** Decoded name of the root object's member being read. */
  private rootKey = '';

  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
    private readonly numbers: NumberProfile,
    /** The text is known to be ASCII (as many bytes as characters): no surrogates to look for. */
    private readonly ascii: boolean,
  ) {}

  parse(): CanonicalJson {
    const lone = this.ascii ? -1 : firstLoneSurrogate(this.text);
    if (lone >= 0) this.fail('LONE_SURROGATE', 'unpaired surrogate in the text', lone);
    this.skipWhitespace();
    if (this.pos >= this.text.length) this.fail('EMPTY', 'no JSON value');
    const rootIsObject = this.text.charCodeAt(this.pos) === CH_LBRACE;

    let result: string | undefined;
    for (;;) {
      let value = this.readValueOrOpen();
      if (value === undefined) continue;
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
          if (top.kind === 0) this.readKey(top);
          break;
        }
        if ((top.kind === 1 && c === CH_RBRACKET) || (top.kind === 0 && c === CH_RBRACE)) {
          this.pos++;
          this.stack.pop();
          value = top.kind === 1 ? top.out + ']' : closeObject(top);
          this.scalar = CONTAINER;
          continue;
        }
        this.fail('SYNTAX', top.kind === 1 ? 'expected "," or "]"' : 'expected "," or "}"');
      }
      if (result !== undefined) break;
    }

    this.skipWhitespace();
    if (this.pos < this.text.length) this.fail('TRAILING_DATA', 'data after the JSON value');
    return { canonical: result, isObject: rootIsObject, top: this.top, hasNul: this.hasNul };
  }

  private readValueOrOpen(): string | undefined {
    this.skipWhitespace();
    const c = this.text.charCodeAt(this.pos);
    if (c === CH_LBRACE || c === CH_LBRACKET) {
      if (this.stack.length >= this.maxDepth) this.fail('TOO_DEEP', `nesting deeper than ${this.maxDepth}`);
      this.pos++;
      this.skipWhitespace();
      this.scalar = CONTAINER;
      if (c === CH_LBRACKET) {
        if (this.text.charCodeAt(this.pos) === CH_RBRACKET) {
          this.pos++;
          return '[]';
        }
        this.stack.push({ kind: 1, out: '[' });
        return undefined;
      }
      if (this.text.charCodeAt(this.pos) === CH_RBRACE) {
        this.pos++;
        return '{}';
      }
      const frame: ObjectFrame = { kind: 0, keys: [], members: [], keyText: '', seen: undefined, sorted: true };
      this.stack.push(frame);
      this.readKey(frame);
      return undefined;
    }
    if (c === CH_QUOTE) {
      const start = this.pos;
      const decoded = this.readString();
      this.scalar = decoded;
      return this.stringText(start, decoded);
    }
    if (c === CH_MINUS || (c >= CH_0 && c <= CH_9)) return this.readNumber();
    if (this.text.startsWith('true', this.pos)) return this.literal(4, true, 'true');
    if (this.text.startsWith('false', this.pos)) return this.literal(5, false, 'false');
    if (this.text.startsWith('null', this.pos)) return this.literal(4, null, 'null');
    return this.fail('SYNTAX', Number.isNaN(c) ? 'unexpected end of input' : 'unexpected character');
  }

  private literal(length: number, value: boolean | null, text: string): string {
    this.pos += length;
    this.scalar = value;
    return text;
  }

  private readKey(frame: ObjectFrame): void {
    this.skipWhitespace();
    const at = this.pos;
    if (this.text.charCodeAt(this.pos) !== CH_QUOTE) this.fail('SYNTAX', 'expected a string key');
    const key = this.readString();
    const keyText = this.stringText(at, key);
    const keys = frame.keys;
    if (frame.seen) {
      if (frame.seen.has(key)) this.fail('DUPLICATE_KEY', 'duplicate key', at);
      frame.seen.add(key);
    } else {
      for (let i = 0; i < keys.length; i++) if (keys[i] === key) this.fail('DUPLICATE_KEY', 'duplicate key', at);
      if (keys.length >= LINEAR_KEY_SCAN) frame.seen = new Set([...keys, key]);
    }
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) !== CH_COLON) this.fail('SYNTAX', 'expected ":"');
    this.pos++;
    if (frame.sorted && keys.length > 0 && (keys[keys.length - 1] as string) > key) frame.sorted = false;
    keys.push(key);
    frame.keyText = keyText;
    if (this.stack.length === 1) this.rootKey = key;
  }

  private attach(frame: Frame, value: string): void {
    if (frame.kind === 1) {
      frame.out += frame.out.length === 1 ? value : ',' + value;
      return;
    }
    frame.members.push(frame.keyText + ':' + value);
    if (this.stack.length === 1) this.top[this.rootKey] = this.scalar;
  }

  /** Canonical text of the string literal that starts at `start` and decodes to `decoded`. */
  private stringText(start: number, decoded: string): string {
    // Without escapes the literal is already canonical: no raw controls, quotes or backslashes can be inside.
    if (this.pos - start === decoded.length + 2) return this.text.slice(start, this.pos);
    return serializeString(decoded);
  }

  private readString(): string {
    const start = this.pos;
    // Fast path: the closing quote comes before any backslash or control character (one native scan each).
    const close = this.text.indexOf('"', start + 1);
    if (close > 0) {
      const candidate = this.text.slice(start + 1, close);
      if (!SPECIAL.test(candidate)) {
        this.pos = close + 1;
        return candidate;
      }
    }
    this.pos++;
    let out = '';
    let runStart = this.pos;
    let escaped = false;
    for (;;) {
      const c = this.text.charCodeAt(this.pos);
      if (Number.isNaN(c)) this.fail('SYNTAX', 'unterminated string', start);
      if (c === CH_QUOTE) {
        if (!escaped) {
          const s = this.text.slice(runStart, this.pos);
          this.pos++;
          // The whole text was checked for lone surrogates; an unescaped string cannot hold a new one.
          return s;
        }
        out += this.text.slice(runStart, this.pos);
        this.pos++;
        break;
      }
      if (c < 0x20) this.fail('CONTROL_CHARACTER', 'unescaped control character in a string');
      if (c !== CH_BACKSLASH) {
        this.pos++;
        continue;
      }
      escaped = true;
      out += this.text.slice(runStart, this.pos);
      out += this.readEscape();
      runStart = this.pos;
    }
    const lone = firstLoneSurrogate(out);
    if (lone >= 0) this.fail('LONE_SURROGATE', 'string contains an unpaired surrogate', start);
    return out;
  }

  private readEscape(): string {
    const e = this.text.charCodeAt(this.pos + 1);
    this.pos += 2;
    switch (e) {
      case 0x22:
        return '"';
      case 0x5c:
        return '\\';
      case 0x2f:
        return '/';
      case 0x62:
        return '\b';
      case 0x66:
        return '\f';
      case 0x6e:
        return '\n';
      case 0x72:
        return '\r';
      case 0x74:
        return '\t';
      case 0x75: {
        const code = hex4(this.text, this.pos);
        if (code < 0) this.fail('SYNTAX', 'invalid \\u escape', this.pos - 2);
        this.pos += 4;
        if (code === 0) this.hasNul = true;
        return String.fromCharCode(code);
      }
      default:
        return this.fail('SYNTAX', 'invalid escape', this.pos - 2);
    }
  }

  private readNumber(): string {
    const t = this.text;
    const start = this.pos;
    const scanned = scanNumber(t, start);
    if (scanned < 0) this.fail('SYNTAX', 'invalid number', start);
    const p = scanned >> 1;
    const integer = (scanned & 1) === 1;
    this.pos = p;
    // A short integer literal is its own ECMAScript form (the grammar has no leading zeros); only -0 differs.
    if (integer && p - start <= 15) {
      let value = 0;
      const negative = t.charCodeAt(start) === CH_MINUS;
      for (let i = negative ? start + 1 : start; i < p; i++) value = value * 10 + (t.charCodeAt(i) - CH_0);
      this.scalar = negative ? -value : value;
      return value === 0 ? '0' : t.slice(start, p);
    }
    const lexeme = t.slice(start, p);
    const value = Number(lexeme);
    this.scalar = value;
    const problem = numberProblem(value, lexeme, integer, this.numbers);
    if (problem) this.fail(problem[0], problem[1], start);
    return value === 0 ? '0' : String(value);
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

/** `{…}` with members in the order of their names' UTF-16 code units (insertion sort for the usual small objects). */
function closeObject(frame: ObjectFrame): string {
  const { keys, members } = frame;
  if (!frame.sorted && keys.length > 32) {
    const order = keys.map((_, i) => i).sort((a, b) => ((keys[a] as string) < (keys[b] as string) ? -1 : 1));
    return '{' + order.map((i) => members[i] as string).join(',') + '}';
  }
  if (!frame.sorted) {
    for (let i = 1; i < keys.length; i++) {
      const key = keys[i] as string;
      const member = members[i] as string;
      let j = i - 1;
      while (j >= 0 && (keys[j] as string) > key) {
        keys[j + 1] = keys[j] as string;
        members[j + 1] = members[j] as string;
        j--;
      }
      keys[j + 1] = key;
      members[j + 1] = member;
    }
  }
  let out = '{' + (members[0] as string);
  for (let i = 1; i < members.length; i++) out += ',' + (members[i] as string);
  return out + '}';
}

/** The value of four hex digits at `p`, or -1. */
function hex4(s: string, p: number): number {
  let v = 0;
  for (let i = p; i < p + 4; i++) {
    const c = s.charCodeAt(i);
    let d: number;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}
