import { mkdtempSync, rmSync } from 'node:fs';
import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isLow, measurePaths } from './storage.ts';

describe('measurePaths', () => {
  const dir = mkdtempSync(join(tmpdir(), 'media-storage-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reports a real path as df does, and a missing one without throwing', async () => {
    const [real, missing] = await measurePaths([dir, join(dir, 'nope')]);
    const s = statfsSync(dir);
    expect(real).toMatchObject({ path: dir, ok: true, low: false, totalBytes: s.blocks * s.bsize, freeBytes: expect.any(Number) });
    expect(real!.usedPercent! + real!.freePercent!).toBeCloseTo(100, 1);
    expect(missing).toEqual({ path: join(dir, 'nope'), ok: false, error: 'missing', low: false });
  });

  it('names other failures by their code', async () => {
    const [denied] = await measurePaths(['/x'], async () => { throw Object.assign(new Error('denied'), { code: 'EACCES' }); });
    expect(denied).toMatchObject({ ok: false, error: 'permission' });
  });
});

describe('isLow', () => {
  const u = (freePercent: number, freeBytes = 1e12) => ({ path: '/p', ok: true, totalBytes: 2e12, freeBytes, freePercent, low: false });
  const t = { freePercent: 10, hysteresisPercent: 2 };

  it('enters below the threshold and leaves above threshold + hysteresis', () => {
    expect(isLow(u(10), t, false)).toBe(false);
    expect(isLow(u(9.99), t, false)).toBe(true);
    expect(isLow(u(11.9), t, true)).toBe(true);
    expect(isLow(u(12), t, true)).toBe(false);
  });

  it('also counts free bytes, and keeps the last state for an unreadable path', () => {
    expect(isLow(u(50, 40e9), { ...t, freeBytes: 50e9 }, false)).toBe(true);
    expect(isLow(u(50, 60e9), { ...t, freeBytes: 50e9 }, true)).toBe(true); // 50 GB + 2 % of 2 TB
    expect(isLow(u(50, 100e9), { ...t, freeBytes: 50e9 }, true)).toBe(false);
    expect(isLow({ path: '/p', ok: false, error: 'missing', low: false }, t, true)).toBe(true);
  });
});
