import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { ROOT } from './infra.js';
import { eventually } from './kafka-tap.js';

/** A service instance as a real child process (`node dist/src/main.js start`), for crash and multi-process tests. */
export class ServiceProcess {
  readonly output: string[] = [];
  private exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    child.stdout?.on('data', (d: Buffer) => this.output.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => this.output.push(d.toString()));
  }

  /** Resolves once `waitFor` answers 200: `/readyz` (default: consuming) or `/healthz` (process up and listening). */
  static async start(env: Record<string, string>, port: number, waitFor: '/readyz' | '/healthz' = '/readyz'): Promise<ServiceProcess> {
    const node = join(ROOT, 'node_modules', 'node', 'bin', 'node');
    const child = spawn(node, [join(ROOT, 'dist', 'src', 'main.js'), 'start'], {
      env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc = new ServiceProcess(child, `http://127.0.0.1:${port}`);
    // A start that times out must not leave its process behind (it would keep consuming for the next test).
    const killOnFailure = (error: unknown) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      throw error;
    };
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}: ${proc.output.join('').slice(-2000)}`);
        const r = await fetch(`${proc.url}${waitFor}`).catch(() => undefined);
        return r?.status === 200;
      },
      60_000,
      `service process ${waitFor} 200`,
    ).catch(killOnFailure);
    return proc;
  }

  kill(signal: NodeJS.Signals): Promise<number | null> {
    this.child.kill(signal);
    return this.exited;
  }
}

/** A port the kernel just handed out as free (bound, then released) — not a guess from a range. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
