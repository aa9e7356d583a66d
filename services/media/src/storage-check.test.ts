import { describe, expect, it } from 'vitest';
import { storageSnapshot, unreadablePaths } from './storage-check.ts';

describe('the storage check\'s snapshot and error', () => {
  const ok = { path: '/data', ok: true, low: false, totalBytes: 100, usedBytes: 40, freeBytes: 60, usedPercent: 40, freePercent: 60 };

  it('the snapshot carries the thresholds, freeBytes only when one is set', () => {
    expect(storageSnapshot([ok], { freePercent: 10, hysteresisPercent: 2 }, 'now')).toEqual({ at: 'now', thresholds: { freePercent: 10, hysteresisPercent: 2 }, paths: [ok] });
    expect(storageSnapshot([], { freePercent: 10, freeBytes: 5e9, hysteresisPercent: 2 }, 'now').thresholds).toEqual({ freePercent: 10, freeBytes: 5e9, hysteresisPercent: 2 });
  });

  it('paths that cannot be read make one missing_path error naming each; none, no error', () => {
    expect(unreadablePaths([ok])).toBeUndefined();
    const error = unreadablePaths([ok, { path: '/mnt/nas', ok: false, error: 'missing', low: false }, { path: '/srv', ok: false, error: 'permission', low: false }]);
    expect(error).toMatchObject({ reason: 'missing_path', message: '/mnt/nas: missing; /srv: permission' });
  });
});
