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
  /** One member of the root object, as in `top`, without making all of `top` (undefined when absent). */
  rootMember(name: string): TopValue | undefined;
}

/** What the general parser found (it builds `top` as it goes). */
class TreeCanonical implements CanonicalJson {
  constructor(
    readonly canonical: string,
    readonly isObject: boolean,
    readonly top: Readonly<Record<string, TopValue>>,
    readonly hasNul: boolean,
  ) {}

  rootMember(name: string): TopValue | undefined {
    return Object.hasOwn(this.top, name) ? this.top[name] : undefined;
  }
}

/**
 * Validates `input` as strict I-JSON and returns its RFC 8785 canonical form.
 * @throws StrictJsonError exactly where parseStrictJson would.
 */
export function canonicalizeStrictJson(input: Uint8Array | string, options: StrictJsonOptions = {}): CanonicalJson {
  if (typeof input !== 'string') {
    const fast = canonicalizeAsciiFast(input, options.maxDepth ?? MAX_JSON_DEPTH, options.numbers ?? 'safe-range');
    if (fast) return fast;
  }
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
    return new TreeCanonical(result, rootIsObject, this.top, this.hasNul);
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

// ---------------------------------------------------------------------------------------------------------------
// Byte fast path. Most hook bodies are ASCII without a single escape: their canonical form is the input with the
// whitespace dropped, object members reordered and non-canonical numbers rewritten. This path reads the bytes,
// writes the canonical bytes directly into one buffer (object members are moved into order when an object closes)
// and decides only what it can decide cheaply. Anything else (a byte ≥ 0x80, a backslash, a number whose ECMAScript
// form must be computed and is refused, a syntax error, a duplicate name, too deep) makes it give up, and the
// general parser above runs from the start: it alone produces refusals, with their exact reason and offset.
// ---------------------------------------------------------------------------------------------------------------

/** Deepest nesting the byte path handles itself (deeper limits go to the general parser). */
const FAST_MAX_DEPTH = 64;

/** Per open container: 0 object / 1 array, first member index, output offset of the opening bracket, sorted. */
const fastKind = new Uint8Array(FAST_MAX_DEPTH);
const fastBase = new Int32Array(FAST_MAX_DEPTH);
const fastOpen = new Int32Array(FAST_MAX_DEPTH);
const fastSorted = new Uint8Array(FAST_MAX_DEPTH);
/** Per object member (open objects only): name start and end in the input, member start and end in the output. */
let fastMembers = new Int32Array(4 * 256);
/** Per root object member: name start and end, value kind, value start and end (strings: inside the quotes). */
let fastRoots: Int32Array = new Int32Array(5 * 64);
/** Member order while sorting. */
let fastOrder = new Int32Array(256);
/**
 * The canonical bytes being written, and room to reorder them: at least twice the input (only the string made from
 * them leaves this module).
 */
let fastOut: Buffer = Buffer.allocUnsafe(4096);

/**
 * The byte path: the canonical form of `b` and what the service needs, or undefined when this path cannot decide
 * (then {@link CanonicalParser} must run). Exported for the property test, which checks that it decides often.
 */
export function canonicalizeAsciiFast(b: Uint8Array, maxDepth: number, numbers: NumberProfile): CanonicalJson | undefined {
  if (maxDepth > FAST_MAX_DEPTH) return undefined;
  const n = b.length;
  if (fastOut.length < 2 * n + 64) fastOut = Buffer.allocUnsafe(2 * n + 64);
  let out = fastOut;
  let w = 0;
  let p = 0;
  let depth = 0;
  let members = 0;
  /** Latin-1 (here: ASCII) text of the input, made once when a root member needs a string. */
  let text: string | undefined;
  /** The last value read, for the root object's members: its kind and where it is in the input. */
  let kind = KIND_NULL;
  let valueStart = 0;
  let valueEnd = 0;
  let rootMembers = 0;

  while (p < n && isWs(b[p] as number)) p++;
  if (p >= n) return undefined;
  const rootIsObject = b[p] === CH_LBRACE;

  for (;;) {
    // A value starts at p (whitespace already skipped).
    let c = b[p] as number;
    if (c === CH_QUOTE) {
      const start = p;
      out[w++] = c;
      for (p++; ; p++) {
        if (p >= n) return undefined;
        c = b[p] as number;
        if (c === CH_QUOTE) break;
        if (c < 0x20 || c === CH_BACKSLASH || c >= 0x80) return undefined;
        out[w++] = c;
      }
      out[w++] = CH_QUOTE;
      p++;
      kind = KIND_STRING;
      valueStart = start + 1;
      valueEnd = p - 1;
    } else if (c === CH_MINUS || (c >= CH_0 && c <= CH_9)) {
      // Number grammar, then its ECMAScript form: copied when the literal already is that form.
      const start = p;
      if (c === CH_MINUS) p++;
      const intStart = p;
      c = b[p] as number;
      if (c === CH_0) p++;
      else if (c >= CH_1 && c <= CH_9) while (p < n && isDigit(b[p] as number)) p++;
      else return undefined;
      const intDigits = p - intStart;
      let fracStart = -1;
      if (b[p] === CH_DOT) {
        p++;
        fracStart = p;
        while (p < n && isDigit(b[p] as number)) p++;
        if (p === fracStart) return undefined;
      }
      const e = b[p];
      let exponent = false;
      if (e === CH_E_LOWER || e === CH_E_UPPER) {
        exponent = true;
        p++;
        if (b[p] === CH_PLUS || b[p] === CH_MINUS) p++;
        const digits = p;
        while (p < n && isDigit(b[p] as number)) p++;
        if (p === digits) return undefined;
      }
      kind = KIND_NUMBER;
      valueStart = start;
      valueEnd = p;
      let verbatim = false;
      if (!exponent) {
        if (fracStart < 0) {
          // An integer literal of up to 15 digits: its own form (the grammar has no leading zeros), but -0 is 0.
          verbatim = intDigits <= 15 && !(intDigits === 1 && b[intStart] === CH_0 && start !== intStart);
        } else if (b[p - 1] !== CH_0) {
          // A decimal fraction with no trailing zero and at most 15 significant digits is the shortest text of its
          // double (two such decimals never share a double), and ECMAScript writes it out this way from 1e-6 up.
          if (intDigits === 1 && b[intStart] === CH_0) {
            let zeros = 0;
            while (b[fracStart + zeros] === CH_0) zeros++;
            verbatim = zeros <= 5 && p - fracStart - zeros <= 15;
          } else {
            verbatim = intDigits + (p - fracStart) <= 15;
          }
        }
      }
      if (verbatim) {
        for (let i = start; i < p; i++) out[w++] = b[i] as number;
      } else {
        if (text === undefined) text = latin1(b);
        const lexeme = text.slice(start, p);
        const value = Number(lexeme);
        if (numberProblem(value, lexeme, fracStart < 0 && !exponent, numbers)) return undefined;
        const form = value === 0 ? '0' : String(value);
        // Room for this form and for the rest of the input copied as it is.
        if (2 * (w + form.length + (n - p)) + 2 > out.length) out = grow(out, w, 2 * (form.length + (n - p)) + w + 2);
        for (let i = 0; i < form.length; i++) out[w++] = form.charCodeAt(i);
      }
    } else if (c === CH_LBRACE || c === CH_LBRACKET) {
      if (depth >= maxDepth) return undefined;
      out[w++] = c;
      p++;
      while (p < n && isWs(b[p] as number)) p++;
      const close = c === CH_LBRACE ? CH_RBRACE : CH_RBRACKET;
      if (b[p] === close) {
        out[w++] = close;
        p++;
        kind = KIND_CONTAINER;
      } else {
        fastKind[depth] = c === CH_LBRACE ? 0 : 1;
        fastBase[depth] = members;
        fastOpen[depth] = w - 1;
        fastSorted[depth] = 1;
        depth++;
        if (c === CH_LBRACKET) continue;
        p = fastKey(b, p, out, w, members);
        if (p < 0) return undefined;
        w = fastMembers[4 * members + 3] as number;
        members++;
        continue;
      }
    } else if (c === 0x74 && b[p + 1] === 0x72 && b[p + 2] === 0x75 && b[p + 3] === 0x65) {
      out[w++] = 0x74;
      out[w++] = 0x72;
      out[w++] = 0x75;
      out[w++] = 0x65;
      p += 4;
      kind = KIND_TRUE;
    } else if (c === 0x66 && b[p + 1] === 0x61 && b[p + 2] === 0x6c && b[p + 3] === 0x73 && b[p + 4] === 0x65) {
      out[w++] = 0x66;
      out[w++] = 0x61;
      out[w++] = 0x6c;
      out[w++] = 0x73;
      out[w++] = 0x65;
      p += 5;
      kind = KIND_FALSE;
    } else if (c === 0x6e && b[p + 1] === 0x75 && b[p + 2] === 0x6c && b[p + 3] === 0x6c) {
      out[w++] = 0x6e;
      out[w++] = 0x75;
      out[w++] = 0x6c;
      out[w++] = 0x6c;
      p += 4;
      kind = KIND_NULL;
    } else {
      return undefined;
    }

    // A value is complete: attach it, and close every container that ends here.
    for (;;) {
      if (depth === 0) {
        while (p < n && isWs(b[p] as number)) p++;
        if (p < n) return undefined;
        const canonical = out.toString('latin1', 0, w);
        return new FastCanonical(canonical, rootIsObject, text ?? latin1(b), fastRoots.slice(0, 5 * rootMembers));
      }
      const d = depth - 1;
      const isObject = fastKind[d] === 0;
      if (isObject) {
        fastMembers[4 * (members - 1) + 3] = w;
        if (depth === 1) {
          const slot = members - 1;
          if (5 * slot + 5 > fastRoots.length) fastRoots = growInts(fastRoots, 5 * slot + 5);
          fastRoots[5 * slot] = fastMembers[4 * slot] as number;
          fastRoots[5 * slot + 1] = fastMembers[4 * slot + 1] as number;
          fastRoots[5 * slot + 2] = kind;
          fastRoots[5 * slot + 3] = valueStart;
          fastRoots[5 * slot + 4] = valueEnd;
        }
      }
      while (p < n && isWs(b[p] as number)) p++;
      c = b[p] as number;
      if (c === CH_COMMA) {
        out[w++] = CH_COMMA;
        p++;
        if (isObject) {
          p = fastKey(b, p, out, w, members);
          if (p < 0) return undefined;
          w = fastMembers[4 * members + 3] as number;
          const m = 4 * members;
          const order = compareNames(
            b,
            fastMembers[m - 4] as number,
            fastMembers[m - 3] as number,
            fastMembers[m] as number,
            fastMembers[m + 1] as number,
          );
          if (order === 0) return undefined;
          if (order > 0) fastSorted[d] = 0;
          members++;
        }
        break;
      }
      if (c === (isObject ? CH_RBRACE : CH_RBRACKET)) {
        p++;
        if (isObject && fastSorted[d] === 0) {
          if (2 * w + 2 > out.length) out = grow(out, w, w + 2);
          if (!reorder(b, out, fastOpen[d] as number, fastBase[d] as number, members, w)) return undefined;
        }
        if (isObject) {
          if (d === 0) rootMembers = members;
          members = fastBase[d] as number;
        }
        out[w++] = c;
        depth--;
        kind = KIND_CONTAINER;
        continue;
      }
      return undefined;
    }
    while (p < n && isWs(b[p] as number)) p++;
    if (p >= n) return undefined;
  }
}

/**
 * Reads `"name" :` at p (after whitespace) into member slot `m` and copies `"name":` to the output at w.
 * Returns the input offset after the colon and leaves the output offset in the slot's last field, or -1.
 */
function fastKey(b: Uint8Array, p: number, out: Uint8Array, w: number, m: number): number {
  const n = b.length;
  while (p < n && isWs(b[p] as number)) p++;
  if (b[p] !== CH_QUOTE) return -1;
  if (4 * m + 4 > fastMembers.length) {
    const bigger = new Int32Array(fastMembers.length * 2);
    bigger.set(fastMembers);
    fastMembers = bigger;
  }
  const slot = 4 * m;
  fastMembers[slot + 2] = w;
  out[w++] = CH_QUOTE;
  const start = ++p;
  for (; ; p++) {
    if (p >= n) return -1;
    const c = b[p] as number;
    if (c === CH_QUOTE) break;
    if (c < 0x20 || c === CH_BACKSLASH || c >= 0x80) return -1;
    out[w++] = c;
  }
  fastMembers[slot] = start;
  fastMembers[slot + 1] = p;
  out[w++] = CH_QUOTE;
  p++;
  while (p < n && isWs(b[p] as number)) p++;
  if (b[p] !== CH_COLON) return -1;
  out[w++] = CH_COLON;
  fastMembers[slot + 3] = w;
  return p + 1;
}

/** Byte order of two ASCII names in the input: the order of their UTF-16 code units. */
function compareNames(b: Uint8Array, as: number, ae: number, bs: number, be: number): number {
  const la = ae - as;
  const lb = be - bs;
  const l = Math.min(la, lb);
  for (let i = 0; i < l; i++) {
    const d = (b[as + i] as number) - (b[bs + i] as number);
    if (d !== 0) return d;
  }
  return la - lb;
}

/**
 * Puts the members of the object whose `{` is at output offset `open` (member slots base…end) in name order, in
 * place; `free` is where unused output space starts. False when two names are equal (a duplicate: the general
 * parser reports it).
 */
function reorder(b: Uint8Array, out: Buffer, open: number, base: number, end: number, free: number): boolean {
  const count = end - base;
  if (count > fastOrder.length) fastOrder = new Int32Array(count * 2);
  const order = fastOrder;
  const M = fastMembers;
  // Binary insertion sort of member slots by name: few comparisons, and moving int32s is cheap.
  for (let i = 0; i < count; i++) {
    const slot = 4 * (base + i);
    const ks = M[slot] as number;
    const ke = M[slot + 1] as number;
    let lo = 0;
    let hi = i;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const other = 4 * (order[mid] as number);
      const cmp = compareNames(b, M[other] as number, M[other + 1] as number, ks, ke);
      if (cmp === 0) return false;
      if (cmp < 0) lo = mid + 1;
      else hi = mid;
    }
    for (let j = i; j > lo; j--) order[j] = order[j - 1] as number;
    order[lo] = base + i;
  }
  // Move the members' bytes past the used output (the buffer holds twice the input), then back in order.
  const from = open + 1;
  const length = (M[4 * (end - 1) + 3] as number) - from;
  const shift = free - from;
  out.copyWithin(free, from, from + length);
  let w = from;
  for (let i = 0; i < count; i++) {
    if (i > 0) out[w++] = CH_COMMA;
    const slot = 4 * (order[i] as number);
    const s = (M[slot + 2] as number) + shift;
    const e = (M[slot + 3] as number) + shift;
    if (e - s > 32) {
      out.copyWithin(w, s, e);
      w += e - s;
    } else {
      for (let j = s; j < e; j++) out[w++] = out[j] as number;
    }
  }
  return true;
}

const KIND_STRING = 0;
const KIND_NUMBER = 1;
const KIND_TRUE = 2;
const KIND_FALSE = 3;
const KIND_NULL = 4;
const KIND_CONTAINER = 5;

/** What the byte path found: the root members are kept as offsets into the text and made into values on demand. */
class FastCanonical implements CanonicalJson {
  readonly hasNul = false;
  #top: Record<string, TopValue> | undefined;

  constructor(
    readonly canonical: string,
    readonly isObject: boolean,
    /** The input as text (ASCII). */
    private readonly text: string,
    /** Five numbers per root member, see `fastRoots`. */
    private readonly roots: Int32Array,
  ) {}

  get top(): Readonly<Record<string, TopValue>> {
    if (this.#top === undefined) {
      const top = Object.create(null) as Record<string, TopValue>;
      for (let i = 0; i < this.roots.length; i += 5) {
        top[this.text.slice(this.roots[i] as number, this.roots[i + 1] as number)] = this.valueAt(i);
      }
      this.#top = top;
    }
    return this.#top;
  }

  rootMember(name: string): TopValue | undefined {
    const { roots, text } = this;
    for (let i = 0; i < roots.length; i += 5) {
      const start = roots[i] as number;
      if ((roots[i + 1] as number) - start === name.length && text.startsWith(name, start)) return this.valueAt(i);
    }
    return undefined;
  }

  private valueAt(i: number): TopValue {
    const start = this.roots[i + 3] as number;
    const end = this.roots[i + 4] as number;
    switch (this.roots[i + 2]) {
      case KIND_STRING:
        return this.text.slice(start, end);
      case KIND_NUMBER:
        return Number(this.text.slice(start, end));
      case KIND_TRUE:
        return true;
      case KIND_FALSE:
        return false;
      case KIND_NULL:
        return null;
      default:
        return CONTAINER;
    }
  }
}

function growInts(a: Int32Array, needed: number): Int32Array {
  const bigger = new Int32Array(Math.max(needed, 2 * a.length));
  bigger.set(a);
  return bigger;
}

function grow(out: Buffer, used: number, more: number): Buffer {
  const bigger = Buffer.allocUnsafe(out.length + more + 64);
  out.copy(bigger, 0, 0, used);
  fastOut = bigger;
  return bigger;
}

function latin1(b: Uint8Array): string {
  const buffer = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return buffer.toString('latin1', 0, buffer.length);
}

function isWs(c: number): boolean {
  return c === CH_SPACE || c === CH_LF || c === CH_CR || c === CH_TAB;
}

function isDigit(c: number): boolean {
  return c >= CH_0 && c <= CH_9;
}
