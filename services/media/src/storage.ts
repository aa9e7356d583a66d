import { statfs as fsStatfs } from 'node:fs/promises';
import type { MediaPathUsage } from '@homelab/bus';

/** What statfs gives (Node's StatsFs, numbers). */
export interface FsStats { bsize: number; blocks: number; bfree: number; bavail: number }
export type StatFs = (path: string) => Promise<FsStats>;

export interface LowSpaceThresholds {
  freePercent: number;
  freeBytes?: number | undefined;
  hysteresisPercent: number;
}

export const defaultStatfs: StatFs = (path) => fsStatfs(path);

const round2 = (n: number): number => Math.round(n * 100) / 100;

/**
 * Usage of each path, as `df` reports it: used = blocks − bfree, free = bavail (what a
 * non-root writer can still use), percentages of used + bavail. A path that cannot be read is
 * reported with its error (`missing`, `permission`, or the system code), never thrown.
 */
export async function measurePaths(paths: readonly string[], statfs: StatFs = defaultStatfs): Promise<MediaPathUsage[]> {
  return Promise.all(paths.map(async (path): Promise<MediaPathUsage> => {
    try {
      const s = await statfs(path);
      const total = s.blocks * s.bsize;
      const used = (s.blocks - s.bfree) * s.bsize;
      const free = s.bavail * s.bsize;
      const usable = used + free;
      return {
        path, ok: true, totalBytes: total, usedBytes: used, freeBytes: free,
        usedPercent: usable > 0 ? round2((used / usable) * 100) : 0, freePercent: usable > 0 ? round2((free / usable) * 100) : 0, low: false,
      };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return { path, ok: false, error: code === 'ENOENT' ? 'missing' : code === 'EACCES' || code === 'EPERM' ? 'permission' : (code ?? 'unreadable'), low: false };
    }
  }));
}

/**
 * Whether a path is low on space now. Entering low: free share below `freePercent` or free bytes
 * below `freeBytes`. Leaving it needs `hysteresisPercent` points more (and as much more of the
 * size for `freeBytes`), so a disk hovering at the threshold does not flap.
 */
export function isLow(usage: MediaPathUsage, t: LowSpaceThresholds, wasLow: boolean): boolean {
  if (!usage.ok || usage.freePercent === undefined || usage.freeBytes === undefined) return wasLow;
  const margin = wasLow ? t.hysteresisPercent : 0;
  if (usage.freePercent < t.freePercent + margin) return true;
  if (t.freeBytes !== undefined) {
    const marginBytes = wasLow ? ((usage.totalBytes ?? 0) * t.hysteresisPercent) / 100 : 0;
    if (usage.freeBytes < t.freeBytes + marginBytes) return true;
  }
  return false;
}
