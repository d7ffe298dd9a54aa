import { parseArgs, type ParseArgsConfig } from 'node:util';

/** What a CLI command may touch: arguments in, text out, an exit code back. Tests pass their own. */
export interface CliIo {
  readonly env: Record<string, string | undefined>;
  readStdin(): Promise<string>;
  /** Stdin as bytes, for commands that must report invalid UTF-8 rather than replace it. */
  readStdinBytes(): Promise<Buffer>;
  /** Writes exactly `text` (no newline added). */
  write(text: string): void;
  stdout(text: string): void;
  stderr(text: string): void;
}

/** A bad argument or input: one line on stderr, exit 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

export function processIo(): CliIo {
  return {
    env: process.env,
    async readStdin() {
      return (await this.readStdinBytes()).toString('utf8');
    },
    async readStdinBytes() {
      if (process.stdin.isTTY) return Buffer.alloc(0);
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    },
    write: (text) => void process.stdout.write(text),
    stdout: (text) => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    stderr: (text) => void process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  };
}

/**
 * Rewrites `--name value` to `--name=value` for the given string options, so a value that starts with `-`
 * (a base64url secret does, about once in 64) is taken as the value, not refused as an ambiguous flag.
 */
export function bindOptionValues(args: readonly string[], stringOptions: Iterable<string>): string[] {
  const names = new Set([...stringOptions].map((name) => `--${name}`));
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    if (names.has(arg) && next !== undefined) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** Parses a command's flags strictly (unknown flags and stray arguments are a UsageError). */
export function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, allowPositionals = true) {
  const stringOptions = Object.entries(options).flatMap(([name, o]) => (o.type === 'string' ? [name] : []));
  try {
    return parseArgs({ args: bindOptionValues(args, stringOptions), options, allowPositionals, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'bad arguments');
  }
}
