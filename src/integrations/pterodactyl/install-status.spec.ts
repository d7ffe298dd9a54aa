import { describe, expect, it } from 'vitest';
import { readInstallState, type InstallSignals } from './install-status.js';

describe('readInstallState — status key present (1.3+, Pelican): status is the authority', () => {
  const cases: [status: string | null, installed: number, state: string, detail: string][] = [
    [null, 1, 'installed', 'status:null'],
    ['installing', 0, 'pending', 'status:installing'],
    ['install_failed', 0, 'failed', 'status:install_failed'],
    // 1.11 reports installed=1 for a failed reinstall; status still wins.
    ['reinstall_failed', 1, 'failed', 'status:reinstall_failed'],
    ['reinstall_failed', 0, 'failed', 'status:reinstall_failed'],
    ['restoring_backup', 1, 'installed', 'status:restoring_backup'],
    // container.installed reads 1 for suspended servers: it must not be trusted.
    ['suspended', 1, 'indeterminate', 'status:suspended'],
    ['transferring', 1, 'pending', 'status:unknown'],
    ['', 1, 'pending', 'status:unknown'],
  ];
  it.each(cases)('status=%j installed=%j → %s (%s)', (status, installed, state, detail) => {
    const v = readInstallState({ status, container: { installed } });
    expect(v).toMatchObject({ state, status, detail });
  });

  it('ignores container.installed entirely when status is present', () => {
    expect(readInstallState({ status: null, container: { installed: 0 } }).state).toBe('installed');
    expect(readInstallState({ status: 'installing', container: { installed: true } }).state).toBe('pending');
    expect(readInstallState({ status: 'install_failed' }).state).toBe('failed');
    expect(readInstallState({ status: null, container: null }).state).toBe('installed');
  });

  it('marks restoring_backup as installed but busy, and nothing else as busy', () => {
    expect(readInstallState({ status: 'restoring_backup' }).busy).toBe(true);
    for (const status of [null, 'installing', 'install_failed', 'reinstall_failed', 'suspended', 'weird']) {
      expect(readInstallState({ status }).busy).toBe(false);
    }
  });

  it('treats a non-string, non-null status as unknown → pending', () => {
    expect(readInstallState({ status: 3 } as InstallSignals)).toMatchObject({ state: 'pending', status: '3', detail: 'status:unknown' });
    expect(readInstallState({ status: false } as InstallSignals).detail).toBe('status:unknown');
  });

  it('a status key holding undefined counts as present (never a legacy fallback)', () => {
    expect(readInstallState({ status: undefined, container: { installed: 1 } })).toMatchObject({
      state: 'pending',
      detail: 'status:unknown',
    });
  });

  it('does not read status from the prototype chain', () => {
    const attributes = Object.create({ status: null }) as InstallSignals;
    attributes.container = { installed: false };
    expect(readInstallState(attributes).detail).toBe('legacy:not_installed');
  });
});

describe('readInstallState — status key absent (≤1.2): container.installed', () => {
  const cases: [installed: unknown, state: string, detail: string][] = [
    [true, 'installed', 'legacy:installed'],
    [false, 'pending', 'legacy:not_installed'],
    [1, 'installed', 'legacy:installed'],
    [0, 'pending', 'legacy:not_installed'],
    [2, 'installed', 'legacy:installed'],
    ['1', 'installed', 'legacy:installed'],
    ['true', 'installed', 'legacy:installed'],
    ['0', 'pending', 'legacy:not_installed'],
    ['false', 'pending', 'legacy:not_installed'],
    ['', 'pending', 'legacy:not_installed'],
    [null, 'pending', 'no_signal'],
    [undefined, 'pending', 'no_signal'],
  ];
  it.each(cases)('installed=%j → %s (%s)', (installed, state, detail) => {
    const v = readInstallState({ container: { installed } });
    expect(v).toEqual({ state, status: undefined, detail, busy: false });
  });

  it('with no container at all there is no signal: pending until the deadline', () => {
    expect(readInstallState({})).toEqual({ state: 'pending', status: undefined, detail: 'no_signal', busy: false });
    expect(readInstallState({ container: null }).detail).toBe('no_signal');
  });

  it('legacy failure is indistinguishable from installing (never "failed")', () => {
    expect(readInstallState({ container: { installed: false } }).state).toBe('pending');
  });
});

describe('readInstallState — the spec examples (§1.4)', () => {
  it('reads whole attribute objects with extra fields', () => {
    const base = {
      id: 57,
      external_id: 'match-0007',
      uuid: '9f2c4e1a-7b3d-4c8e-a1f0-5d6e7b8c9a01',
      suspended: false,
      container: { startup_command: 'java', image: 'img', installed: 0, environment: {} },
    };
    expect(readInstallState({ ...base, status: 'installing' }).state).toBe('pending');
    expect(readInstallState({ ...base, status: null, container: { ...base.container, installed: 1 } }).state).toBe('installed');
    expect(readInstallState({ ...base, status: 'install_failed' }).state).toBe('failed');
    expect(readInstallState({ ...base, status: 'suspended', suspended: true }).state).toBe('indeterminate');
    expect(readInstallState({ ...base, container: { ...base.container, installed: false } }).state).toBe('pending');
    expect(readInstallState({ ...base, container: { ...base.container, installed: true } }).state).toBe('installed');
  });
});
