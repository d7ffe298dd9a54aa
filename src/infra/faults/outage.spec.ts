import { describe, expect, it } from 'vitest';
import { KvUnavailableError } from '../kv/kv-store.js';
import { dependencyOutage, isDependencyOutage, isTransientInfrastructureError } from './outage.js';

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

describe('dependencyOutage and isTransientInfrastructureError', () => {
  it('names the dependency, also inside an AggregateError', () => {
    expect(dependencyOutage(new KvUnavailableError('down'))).toBe('redis');
    const refused = Object.assign(new Error('connect ECONNREFUSED ::1:5432'), { code: 'ECONNREFUSED' });
    expect(dependencyOutage(new AggregateError([refused], 'all addresses failed'))).toBe('database');
    expect(dependencyOutage(new Error('duplicate key'))).toBeNull();
  });

  it('retries serialization failures and deadlocks beside outages, never a statement error', () => {
    expect(isTransientInfrastructureError(Object.assign(new Error('could not serialize'), { code: '40001' }))).toBe(true);
    expect(isTransientInfrastructureError(Object.assign(new Error('deadlock detected'), { code: '40P01' }))).toBe(true);
    expect(isDependencyOutage(Object.assign(new Error('deadlock detected'), { code: '40P01' }))).toBe(false);
    expect(isTransientInfrastructureError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isTransientInfrastructureError(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
  });
});
