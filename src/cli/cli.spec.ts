import { describe, expect, it } from 'vitest';
import { runCli, type Command } from './cli.js';
import type { CliIo } from './io.js';

function memoryIo(stdin = '', env: Record<string, string> = {}) {
  const out = { stdout: '', stderr: '' };
  const io: CliIo = {
    env,
    readStdin: async () => stdin,
    readStdinBytes: async () => Buffer.from(stdin),
    write: (text) => {
      out.stdout += text;
    },
    stdout: (text) => {
      out.stdout += `${text}\n`;
    },
    stderr: (text) => {
      out.stderr += `${text}\n`;
    },
  };
  return { io, out };
}

const never: Command = async () => {
  throw new Error('not under test');
};
const services = { start: never, demo: never };

describe('runCli', () => {
  it.each([
    ['matches'],
    ['matches', 'show'],
    ['matches', 'create'],
    ['matches', 'list'],
    ['events'],
    ['events', 'publish'],
    ['keys'],
    ['keys', 'issue'],
    ['keys', 'revoke'],
    ['dead-letters'],
    ['dead-letters', 'list'],
    ['dead-letters', 'replay'],
    ['dead-letters', 'discard'],
    ['migrate'],
  ])('%s … --help prints usage and exits 0 (no service needed)', async (...args) => {
    const { io, out } = memoryIo();
    expect(await runCli([...args, '--help'], io, services)).toBe(0);
    expect(out.stdout).toMatch(/^Usage: flock-workers/);
    expect(out.stderr).toBe('');
  });

  it.each([
    [['matches', 'list', '--bogus'], /Unknown option '--bogus'/],
    [['dead-letters', 'list', '--limit', '0'], /--limit must be a positive integer/],
    [['matches', 'frob'], /unknown subcommand "frob"/],
    [['dead-letters', 'replay'], /missing dead-letter ID/],
    [['events', 'publish', 'stream.health.check', '--new-id'], /no JSON given/],
    [['matches', 'show', 'm-1', '--interval-ms', 'soon'], /--interval-ms must be a positive integer/],
    [['matches', 'show', 'm-1', '--timeout-ms', '1000'], /--timeout-ms needs --watch/],
  ])('%j exits 2 with one line', async (args, message) => {
    const { io, out } = memoryIo('', { INTERNAL_API_TOKEN: 't'.repeat(32), PORT: '9' });
    expect(await runCli(args, io, services)).toBe(2);
    expect(out.stderr).toMatch(message);
    expect(out.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('--version prints the package version', async () => {
    const { io, out } = memoryIo();
    expect(await runCli(['--version'], io, services)).toBe(0);
    expect(out.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
