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
