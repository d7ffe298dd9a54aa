/**
 * RFC 8785 JSON Canonicalization Scheme (JCS), written here rather than taken from a package because the
 * signature of every hook call depends on it byte for byte.
 *
 * - object members sorted by their keys' UTF-16 code units (not code points, not locale);
 * - numbers in ECMAScript Number::toString form (`String(n)` is exactly that; -0 becomes `0`);
 * - strings with the minimal escaping of RFC 8785 §3.2.2.2: `\"`, `\\`, `\b \f \n \r \t`, other controls as
 *   `\u00xx` (lowercase hex); everything else, DEL and U+2028 included, as is; no Unicode normalisation;
 * - no whitespace.
 *
 * Input must be JSON data: null, booleans, finite numbers, well-formed strings, arrays and plain objects.
 * Anything else is refused rather than guessed at (JCS is defined on JSON, not on arbitrary JS values).
 */
import { MAX_JSON_DEPTH, firstLoneSurrogate } from './strict-json.js';

export type JcsReason = 'UNSUPPORTED_TYPE' | 'NUMBER_NOT_FINITE' | 'LONE_SURROGATE' | 'TOO_DEEP';

export class JcsError extends Error {
  constructor(
    readonly reason: JcsReason,
    message: string,
  ) {
    super(message);
    this.name = 'JcsError';
  }
}

export interface JcsOptions {
  /** Most containers open at once (default 32, as the strict parser). */
  maxDepth?: number;
}

/** Returns the RFC 8785 canonical form of a JSON value. @throws JcsError on anything that is not JSON data. */
export function canonicalize(value: unknown, options: JcsOptions = {}): string {
  const parts: string[] = [];
  write(value, parts, 0, options.maxDepth ?? MAX_JSON_DEPTH);
  return parts.join('');
}

/** ECMAScript Number::toString for a finite number, which is JCS's number form (-0 → "0"). */
export function serializeNumber(n: number): string {
  if (!Number.isFinite(n)) throw new JcsError('NUMBER_NOT_FINITE', 'JSON numbers must be finite');
  return Object.is(n, -0) ? '0' : String(n);
}

/** A JSON string literal with RFC 8785's minimal escaping. */
export function serializeString(s: string): string {
  if (firstLoneSurrogate(s) >= 0) throw new JcsError('LONE_SURROGATE', 'string contains an unpaired surrogate');
  let out = '"';
  let runStart = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(runStart, i) + escapeOf(c);
    runStart = i + 1;
  }
  return out + s.slice(runStart) + '"';
}

function escapeOf(c: number): string {
  switch (c) {
    case 0x22:
      return '\\"';
    case 0x5c:
      return '\\\\';
    case 0x08:
      return '\\b';
    case 0x09:
      return '\\t';
    case 0x0a:
      return '\\n';
    case 0x0c:
      return '\\f';
    case 0x0d:
      return '\\r';
    default:
      return '\\u' + c.toString(16).padStart(4, '0');
  }
}

/** Orders strings by UTF-16 code units, which is what `<` on JS strings compares. */
export function compareUtf16(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function write(value: unknown, out: string[], depth: number, maxDepth: number): void {
  switch (typeof value) {
    case 'string':
      out.push(serializeString(value));
      return;
    case 'number':
      out.push(serializeNumber(value));
      return;
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'object':
      break;
    default:
      throw new JcsError('UNSUPPORTED_TYPE', `${typeof value} is not JSON data`);
  }
  if (value === null) {
    out.push('null');
    return;
  }
  if (depth >= maxDepth) throw new JcsError('TOO_DEEP', `nesting deeper than ${maxDepth}`);
  if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(',');
      write(value[i], out, depth + 1, maxDepth);
    }
    out.push(']');
    return;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== null && proto !== Object.prototype) {
    throw new JcsError('UNSUPPORTED_TYPE', 'only plain objects and arrays are JSON data');
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort(compareUtf16);
  out.push('{');
  keys.forEach((key, i) => {
    if (i > 0) out.push(',');
    out.push(serializeString(key), ':');
    write(record[key], out, depth + 1, maxDepth);
  });
  out.push('}');
}
