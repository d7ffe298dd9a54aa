/** What a CLI command may touch: arguments in, text out, an exit code back. Tests pass their own. */
export interface CliIo {
  readonly env: Record<string, string | undefined>;
  readStdin(): Promise<string>;
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
      if (process.stdin.isTTY) return '';
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
    stdout: (text) => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    stderr: (text) => void process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  };
}
