import type { MediaPathUsage, MediaStorageSnapshot } from '@homelab/bus';
import type { LabConfig } from '@homelab/config';
import type { Logger } from '@homelab/logging';
import { MediaError } from './errors.ts';
import type { StatusBoard } from './status.ts';
import { measurePaths, type LowSpaceThresholds, type StatFs } from './storage.ts';
import { nowIso } from './targets/index.ts';
import type { ServiceAlerts, StorageAlerts } from './transitions/alerts.ts';

/*
 * The storage check: statfs on each of `media.paths` every `media.intervals.storage`, the low-space
 * alert, a path that cannot be read reported as the `storage` service's error, and the snapshot.
 */

export interface StorageCheckDeps {
  media: LabConfig['media'];
  statfs: StatFs;
  board: StatusBoard;
  storageAlerts: StorageAlerts;
  serviceAlerts: ServiceAlerts;
  publishSnapshot(snapshot: MediaStorageSnapshot): Promise<void>;
  log: Logger;
}

const STORAGE = { name: 'storage', kind: 'storage' } as const;

export class StorageCheck {
  readonly #deps: StorageCheckDeps;
  readonly #thresholds: LowSpaceThresholds;
  #timer: NodeJS.Timeout | undefined;
  #run: Promise<void> | undefined;
  #stopped = false;

  constructor(deps: StorageCheckDeps) {
    this.#deps = deps;
    const { lowSpace } = deps.media;
    this.#thresholds = { freePercent: lowSpace.freePercent, freeBytes: lowSpace.freeBytes, hysteresisPercent: lowSpace.hysteresisPercent };
  }

  start(): void {
    this.#schedule(0);
  }

  /** Lets a check under way finish before the connection drains. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#run;
  }

  /** The next check starts an interval after the previous one ended: statfs on a hung network mount may take minutes, and checks never pile up. */
  #schedule(delayMs: number): void {
    if (this.#stopped || this.#deps.media.paths.length === 0) return;
    this.#timer = setTimeout(() => {
      this.#run = this.#check()
        .catch((err: unknown) => this.#deps.log.warn({ err: (err as Error).message }, 'storage check not applied (bus unavailable?)'))
        .finally(() => { this.#run = undefined; this.#schedule(this.#deps.media.intervals.storage); });
    }, delayMs);
  }

  async #check(): Promise<void> {
    const { media, statfs, board, storageAlerts, serviceAlerts } = this.#deps;
    const usages = await storageAlerts.observe(await measurePaths(media.paths, statfs), this.#thresholds);
    const snapshot = storageSnapshot(usages, this.#thresholds, nowIso());
    board.storage(snapshot);
    const unreadable = unreadablePaths(usages);
    if (unreadable) await serviceAlerts.error(STORAGE, unreadable);
    else await serviceAlerts.ok(STORAGE);
    await this.#deps.publishSnapshot(snapshot);
  }
}

export function storageSnapshot(paths: MediaPathUsage[], t: LowSpaceThresholds, at: string): MediaStorageSnapshot {
  return {
    at, thresholds: { freePercent: t.freePercent, ...(t.freeBytes !== undefined && { freeBytes: t.freeBytes }), hysteresisPercent: t.hysteresisPercent },
    paths,
  };
}

/** Paths that could not be read, as one error of the storage check (a missing mount, a permission). */
export function unreadablePaths(usages: MediaPathUsage[]): MediaError | undefined {
  const unreadable = usages.filter((u) => !u.ok);
  if (unreadable.length === 0) return undefined;
  return new MediaError('missing_path', unreadable.map((u) => `${u.path}: ${u.error}`).join('; '));
}
