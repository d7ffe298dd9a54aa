/**
 * The `sign` and `canonicalize` commands of `flock-workers` (SPEC §6), as pure functions of their arguments and
 * stdin so they can be tested without a process. Exit codes: 0 success, 2 bad input (one-line reason on stderr).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { bindOptionValues } from '../cli/io.js';
import { JcsError, canonicalize } from './jcs.js';
import { SignerError, sign } from './signer.js';
import { StrictJsonError, parseStrictJson } from './strict-json.js';

export interface CliIo {
  /** Everything read from stdin (bytes preferred: invalid UTF-8 is then reported, not replaced). */
  readonly stdin: string | Uint8Array;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Environment, for `FLOCK_HMAC_SECRET` (keeps the secret out of the process list). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Reads `--file` (tests pass their own). */
  readonly readFile?: (path: string) => Uint8Array;
  /** Time source for the default timestamp. */
  readonly clock?: { now(): number };
}

export const SIGNED_CONTENT_TYPE = 'application/json';
export const EXIT_OK = 0;
export const EXIT_BAD_INPUT = 2;

export const SIGN_HELP = `Usage: flock-workers sign --key-id KEY_ID --secret SECRET [--file BODY] [--ts MS] [--nonce NONCE] [--json] [--show-canonical] [< body.json]

Signs a hook request body (HMAC protocol v1) and prints the headers to send with it, one per line as
"name: value": the content-type it was signed for and the four x-flock-* headers (ready for curl -H @file).
The body (from --file, else stdin) must be an I-JSON object with "type" and "matchId"; send it unchanged.

Options:
  --key-id KEY_ID     key id from "keys issue", e.g. ovl_m-123_1767225600000
  --secret SECRET     the key's secret (unpadded base64url; "--secret -abc" works too); default: $FLOCK_HMAC_SECRET
  --file BODY         read the body from this file instead of stdin
  --ts MS             timestamp in ms since the epoch (default: now)
  --nonce NONCE       base64url nonce, 22-128 chars (default: 16 random bytes); never reuse one
  --json              print {"headers":{...},"canonical":"..."} instead (headers include content-type)
  --show-canonical    also print the signed canonical string (on stderr), for debugging a rejection
  -h, --help          show this help
`;

export const CANONICALIZE_HELP = `Usage: flock-workers canonicalize [--no-newline] < any.json

Prints the RFC 8785 canonical form (JCS) of the JSON on stdin, followed by a newline. Input must be I-JSON
(RFC 7493): valid UTF-8, no duplicate keys, no lone surrogates, numbers a double can hold (no integer literal
beyond +-(2^53-1)), nesting up to 32. Exits 2 with a one-line reason otherwise.
Note: hook bodies are stricter: there every number must lie within +-(2^53-1).

Options:
  --no-newline        print the canonical bytes only (for piping into a hash)
  --json              accepted for uniformity (the output is JSON already)
  -h, --help          show this help
`;

type OptionSpec = Record<string, { type: 'string' | 'boolean' }>;
type OptionValues<O extends OptionSpec> = { [K in keyof O]?: O[K]['type'] extends 'string' ? string : boolean };

/** Parses a command's flags strictly; `--help` prints the help. Returns the values, or the exit code to end with. */
function parseCommand<O extends OptionSpec>(
  io: CliIo,
  command: string,
  help: string,
  args: string[],
  options: O,
): OptionValues<O> | number {
  try {
    const stringOptions = Object.keys(options).filter((name) => options[name]?.type === 'string');
    const { values } = parseArgs({
      args: bindOptionValues(args, stringOptions),
      allowPositionals: false,
      strict: true,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
    });
    if ((values as { help?: boolean }).help) {
      io.stdout(help);
      return EXIT_OK;
    }
    return values as OptionValues<O>;
  } catch (err) {
    return fail(io, command, (err as Error).message);
  }
}

/** `flock-workers sign …` */
export function runSign(args: string[], io: CliIo): number {
  const values = parseCommand(io, 'sign', SIGN_HELP, args, {
    'key-id': { type: 'string' },
    secret: { type: 'string' },
    ts: { type: 'string' },
    nonce: { type: 'string' },
    file: { type: 'string' },
    json: { type: 'boolean' },
    'show-canonical': { type: 'boolean' },
  });
  if (typeof values === 'number') return values;
  const keyId = values['key-id'];
  if (keyId === undefined) return fail(io, 'sign', '--key-id is required');
  const secret = values.secret ?? io.env?.['FLOCK_HMAC_SECRET'];
  if (secret === undefined) return fail(io, 'sign', '--secret (or FLOCK_HMAC_SECRET) is required');
  if (values.ts !== undefined && !/^[0-9]+$/.test(values.ts)) return fail(io, 'sign', '--ts must be milliseconds since the epoch');
  let body = io.stdin;
  if (values.file !== undefined) {
    try {
      body = (io.readFile ?? readFileSync)(values.file);
    } catch (err) {
      return fail(io, 'sign', `cannot read ${values.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (isBlank(body)) return fail(io, 'sign', values.file === undefined ? 'no body on stdin (or pass --file)' : `${values.file} is empty`);

  try {
    const signed = sign({
      keyId,
      secret,
      body,
      ...(values.ts === undefined ? {} : { ts: values.ts }),
      ...(values.nonce === undefined ? {} : { nonce: values.nonce }),
      ...(io.clock ? { clock: io.clock } : {}),
    });
    // Hooks accept only JSON (415 otherwise): the content-type belongs to what was signed for.
    const headers = { 'content-type': SIGNED_CONTENT_TYPE, ...signed.headers };
    if (values.json) {
      io.stdout(JSON.stringify({ headers, canonical: signed.canonical }) + '\n');
    } else {
      io.stdout(
        Object.entries(headers)
          .map(([name, value]) => `${name}: ${value}\n`)
          .join(''),
      );
      if (values['show-canonical']) io.stderr(`canonical: ${signed.canonical}\n`);
    }
    return EXIT_OK;
  } catch (err) {
    if (err instanceof SignerError) return fail(io, 'sign', `${err.reason}: ${err.message}`);
    throw err;
  }
}

/** `flock-workers canonicalize …` */
export function runCanonicalize(args: string[], io: CliIo): number {
  const values = parseCommand(io, 'canonicalize', CANONICALIZE_HELP, args, {
    'no-newline': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (typeof values === 'number') return values;
  try {
    const canonical = canonicalize(parseStrictJson(io.stdin, { numbers: 'i-json' }));
    io.stdout(values['no-newline'] ? canonical : canonical + '\n');
    return EXIT_OK;
  } catch (err) {
    if (err instanceof StrictJsonError || err instanceof JcsError) {
      return fail(io, 'canonicalize', `input is not I-JSON: ${err.reason}: ${err.message}`);
    }
    throw err;
  }
}

function fail(io: CliIo, command: string, reason: string): number {
  io.stderr(`${command}: ${reason.replace(/\s*\n\s*/g, ' ')}\n`);
  return EXIT_BAD_INPUT;
}

function isBlank(input: string | Uint8Array): boolean {
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
  return text.trim() === '';
}
