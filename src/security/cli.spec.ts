import { describe, expect, it } from 'vitest';
import { CANONICALIZE_HELP, SIGN_HELP, runCanonicalize, runSign, type CliIo } from './cli.js';

function run(fn: typeof runSign, args: string[], stdin: string | Uint8Array, extra: Partial<CliIo> = {}) {
  let stdout = '';
  let stderr = '';
  const code = fn(args, { stdin, stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), ...extra });
  return { code, stdout, stderr };
}

const VECTOR = {
  args: [
    '--key-id',
    'ovl_m-123_1767225600000',
    '--secret',
    'Tyiu2Eowx1yh3uYKhJGMK3WVh8NKPhOoxGAnDX82SPU',
    '--ts',
    '1767225630000',
    '--nonce',
    'q3v5X9bJ2kT8pZr1wYd0Ag',
  ],
  body: '{"type":"gameplay.progress","matchId":"m-123","seq":7,"data":{"score":[3,1],"mvp":"Zoë"}}\n',
  canonical:
    'v1|ovl_m-123_1767225600000|1767225630000|q3v5X9bJ2kT8pZr1wYd0Ag|m-123|gameplay.progress|{"data":{"mvp":"Zoë","score":[3,1]},"matchId":"m-123","seq":7,"type":"gameplay.progress"}',
  signature: 'b39772de65df5fe1414d2dcdc71618dcf0627882ab8bbd3ce7ab58aedf58b7da',
};

describe('sign', () => {
  it('prints the four headers of the published vector', () => {
    const out = run(runSign, VECTOR.args, Buffer.from(VECTOR.body));
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(
      'content-type: application/json\n' +
        'x-flock-key-id: ovl_m-123_1767225600000\n' +
        'x-flock-ts: 1767225630000\n' +
        'x-flock-nonce: q3v5X9bJ2kT8pZr1wYd0Ag\n' +
        `x-flock-signature: ${VECTOR.signature}\n`,
    );
    expect(out.stderr).toBe('');
  });

  it('shows the canonical string on request (stderr), and always in --json', () => {
    const shown = run(runSign, [...VECTOR.args, '--show-canonical'], VECTOR.body);
    expect(shown.stderr).toBe(`canonical: ${VECTOR.canonical}\n`);
    const json = run(runSign, [...VECTOR.args, '--json'], VECTOR.body);
    expect(JSON.parse(json.stdout)).toEqual({
      headers: {
        'content-type': 'application/json',
        'x-flock-key-id': 'ovl_m-123_1767225600000',
        'x-flock-ts': '1767225630000',
        'x-flock-nonce': 'q3v5X9bJ2kT8pZr1wYd0Ag',
        'x-flock-signature': VECTOR.signature,
      },
      canonical: VECTOR.canonical,
    });
  });

  it('takes the secret from FLOCK_HMAC_SECRET and defaults ts and nonce', () => {
    const args = ['--key-id', 'ovl_m-123_1767225600000'];
    const out = run(runSign, args, VECTOR.body, {
      env: { FLOCK_HMAC_SECRET: 'Tyiu2Eowx1yh3uYKhJGMK3WVh8NKPhOoxGAnDX82SPU' },
      clock: { now: () => 1767225699999 },
    });
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^x-flock-ts: 1767225699999$/m);
    expect(out.stdout).toMatch(/^x-flock-nonce: [A-Za-z0-9_-]{22}$/m);
  });

  it('takes a secret that starts with "-" in both spellings', () => {
    const dashed = '-yiu2Eowx1yh3uYKhJGMK3WVh8NKPhOoxGAnDX82SPU';
    const args = (secretArgs: string[]) => [
      '--key-id',
      'ovl_m-123_1767225600000',
      ...secretArgs,
      '--ts',
      '1767225630000',
      '--nonce',
      'q3v5X9bJ2kT8pZr1wYd0Ag',
      '--json',
    ];
    const spaced = run(runSign, args(['--secret', dashed]), VECTOR.body);
    const joined = run(runSign, args([`--secret=${dashed}`]), VECTOR.body);
    expect([spaced.code, spaced.stderr]).toEqual([0, '']);
    expect(spaced.stdout).toBe(joined.stdout);
    expect(JSON.parse(spaced.stdout).headers['x-flock-signature']).not.toBe(VECTOR.signature);
    expect(JSON.parse(spaced.stdout).headers['x-flock-signature']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reads the body from --file instead of stdin', () => {
    const files: Record<string, Uint8Array> = { 'body.json': Buffer.from(VECTOR.body) };
    const readFile = (path: string) => {
      const bytes = files[path];
      if (!bytes) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
      return bytes;
    };
    const fromFile = run(runSign, [...VECTOR.args, '--file', 'body.json'], '', { readFile });
    expect(fromFile.code).toBe(0);
    expect(fromFile.stdout).toContain(`x-flock-signature: ${VECTOR.signature}\n`);
    const missing = run(runSign, [...VECTOR.args, '--file', 'nope.json'], '', { readFile });
    expect([missing.code, missing.stderr]).toEqual([2, 'sign: cannot read nope.json: ENOENT\n']);
  });

  it('prints help', () => {
    const out = run(runSign, ['--help'], '');
    expect([out.code, out.stdout]).toEqual([0, SIGN_HELP]);
  });

  it.each([
    [['--key-id', 'ovl_m-123_1767225600000'], VECTOR.body, /--secret/],
    [['--secret', 'x'], VECTOR.body, /--key-id is required/],
    [[...VECTOR.args, '--bogus'], VECTOR.body, /bogus/],
    [[...VECTOR.args, 'extra'], VECTOR.body, /extra/],
    [VECTOR.args, '', /no body/],
    [VECTOR.args, '{"type":"x","type":"y","matchId":"m-123"}', /BODY_INVALID_JSON/],
    [VECTOR.args, '{"type":"overlay.heartbeat","matchId":"m-9"}', /MATCH_ID_MISMATCH/],
    [VECTOR.args.map((a) => (a === '1767225630000' ? '1767225630' : a)), VECTOR.body, /TS_INVALID/],
    [VECTOR.args.map((a) => (a === '1767225630000' ? '-5' : a)), VECTOR.body, /--ts/],
    [VECTOR.args.map((a) => (a.startsWith('Tyiu') ? a + '=' : a)), VECTOR.body, /SECRET_INVALID/],
  ])('exits 2 with a one-line reason: %j', (args, stdin, message) => {
    const out = run(runSign, args as string[], stdin);
    expect(out.code).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr).toMatch(message);
    expect(out.stderr.trimEnd().split('\n')).toHaveLength(1);
  });
});

describe('canonicalize', () => {
  it('prints JCS of stdin', () => {
    expect(run(runCanonicalize, [], '{"b":[1E30, 4.50], "a":"\\u00e9"}')).toEqual({
      code: 0,
      stdout: '{"a":"é","b":[1e+30,4.5]}\n',
      stderr: '',
    });
    expect(run(runCanonicalize, ['--no-newline'], '[-0, 1e21, 1e20, 1e-7, 0.000001]').stdout).toBe(
      '[0,1e+21,100000000000000000000,1e-7,0.000001]',
    );
  });

  it('exits 2 with a one-line reason on input that is not I-JSON', () => {
    for (const [stdin, reason] of [
      ['{"a":1,"a":2}', 'DUPLICATE_KEY'],
      ['9007199254740993', 'UNSAFE_INTEGER'],
      ['1e400', 'NUMBER_OUT_OF_RANGE'],
      ['"\\ud800"', 'LONE_SURROGATE'],
      ['['.repeat(32_000), 'TOO_DEEP'],
      [Buffer.from([0x22, 0xff, 0x22]), 'INVALID_UTF8'],
      ['', 'EMPTY'],
      ['{} {}', 'TRAILING_DATA'],
    ] as const) {
      const out = run(runCanonicalize, [], stdin);
      expect(out.code).toBe(2);
      expect(out.stderr).toMatch(new RegExp(`^canonicalize: input is not I-JSON: ${reason}: .*\\n$`));
    }
  });

  it('prints help and refuses unknown options', () => {
    expect(run(runCanonicalize, ['-h'], '').stdout).toBe(CANONICALIZE_HELP);
    expect(run(runCanonicalize, ['--pretty'], '{}').code).toBe(2);
  });
});
