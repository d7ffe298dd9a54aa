import { describe, expect, it } from 'vitest';
import { backupSweepDue } from './backup-sweep.js';

describe('backupSweepDue', () => {
  const now = Date.UTC(2026, 0, 1, 12);

  it('sweeps when no full sweep is known, or the record is not a time', () => {
    expect(backupSweepDue(null, now, 45_000)).toBe(true);
    expect(backupSweepDue(Number.NaN, now, 45_000)).toBe(true);
  });

  it('leaves a current primary alone and steps in once it is stale', () => {
    expect(backupSweepDue(now - 44_999, now, 45_000)).toBe(false);
    expect(backupSweepDue(now - 45_000, now, 45_000)).toBe(true);
    expect(backupSweepDue(now - 600_000, now, 45_000)).toBe(true);
  });
});
