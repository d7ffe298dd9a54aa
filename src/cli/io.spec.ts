import { describe, expect, it } from 'vitest';
import { bindOptionValues, parse, UsageError } from './io.js';

describe('bindOptionValues', () => {
  it('binds the next argument to a string option even when it starts with "-"', () => {
    expect(bindOptionValues(['--secret', '-abc', '--json'], ['secret'])).toEqual(['--secret=-abc', '--json']);
    expect(bindOptionValues(['--secret=-abc'], ['secret'])).toEqual(['--secret=-abc']);
  });

  it('leaves boolean flags, unknown flags and everything after "--" alone', () => {
    expect(bindOptionValues(['--json', '--bogus', 'x', '--', '--secret', 'y'], ['secret'])).toEqual([
      '--json',
      '--bogus',
      'x',
      '--',
      '--secret',
      'y',
    ]);
  });
});

describe('parse', () => {
  const options = { secret: { type: 'string' }, json: { type: 'boolean', default: false } } as const;

  it('accepts a dashed value in both spellings', () => {
    expect(parse(['--secret', '-abc'], options).values.secret).toBe('-abc');
    expect(parse(['--secret=-abc'], options).values.secret).toBe('-abc');
  });

  it('refuses unknown flags and, when positionals are not allowed, stray arguments', () => {
    expect(() => parse(['--bogus'], options)).toThrow(UsageError);
    expect(() => parse(['stray'], options, false)).toThrow(/stray/);
  });
});
