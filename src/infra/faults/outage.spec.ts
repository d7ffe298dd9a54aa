import { describe, expect, it } from 'vitest';
import { KvUnavailableError } from '../kv/kv-store.js';
import { isDependencyOutage } from './outage.js';

describe('isDependencyOutage', () => {
  it.each([
    ['redis unavailable', new KvUnavailableError('down')],
    ['connection refused', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
    ['statement timeout', Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' })],
    ['admin shutdown', Object.assign(new Error('terminating connection'), { code: '57P01' })],
    ['too many connections', Object.assign(new Error('sorry'), { code: '53300' })],
    ['connection exception', Object.assign(new Error('x'), { code: '08006' })],
    ['pg lost connection', new Error('Connection terminated unexpectedly')],
    ['pg pool wait', new Error('timeout exceeded when trying to connect')],
    ['pg client timeout', new Error('Query read timeout')],
    ['wrapped', new Error('outer', { cause: Object.assign(new Error('inner'), { code: 'ECONNRESET' }) })],
  ])('%s → outage', (_label, err) => {
    expect(isDependencyOutage(err)).toBe(true);
  });

  it.each([
    ['unique violation', Object.assign(new Error('duplicate key'), { code: '23505' })],
    ['bad text', Object.assign(new Error('invalid byte sequence'), { code: '22021' })],
    ['int overflow', Object.assign(new Error('out of range'), { code: '22003' })],
    ['plain bug', new TypeError('x is undefined')],
    ['not an error', 'oops'],
  ])('%s → not an outage', (_label, err) => {
    expect(isDependencyOutage(err)).toBe(false);
  });
});
