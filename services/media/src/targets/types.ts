import type {
  MediaDownloadEvent, MediaKind, MediaLibrarySnapshot, MediaQueueSnapshot, MediaSessionsSnapshot, MediaStream, MediaTransferSnapshot,
} from '@homelab/bus';
import type { MediaError } from '../errors.ts';

/** One service of the media node, as the media service polls it. */
export interface TargetSpec {
  /** The service's name in `nodes` (`sonarr`, `radarr-4k`, …): the `source` of its events. */
  name: string;
  kind: MediaKind;
  url: string;
  apiKey?: string;
  username?: string;
  password?: string;
  intervalMs: number;
  timeoutMs: number;
  maxResponseBytes: number;
}

export interface TargetLimits {
  maxQueueRecords: number;
  queuePageSize: number;
  snapshotMaxItems: number;
}

export type SnapshotMessage =
  | { key: 'mediaQueue'; payload: MediaQueueSnapshot }
  | { key: 'mediaTransfer'; payload: MediaTransferSnapshot }
  | { key: 'mediaLibrary'; payload: MediaLibrarySnapshot }
  | { key: 'mediaSessions'; payload: MediaSessionsSnapshot };

/** The facts of a download an event carries besides its id and phase. */
export type DownloadInfo = Omit<MediaDownloadEvent, 'downloadId' | 'phase' | 'source' | 'kind' | 'via' | 'at'>;

/** Where a download stands, as one target sees it. `waiting` items are not tracked. */
export type DownloadState = 'downloading' | 'completed' | 'imported' | 'failed';

export interface DownloadObservation {
  /** Normalized id (`downloadKey()`): a torrent's info hash in lower case, so Sonarr/Radarr and qBittorrent agree. */
  id: string;
  /** The id as the target spells it (Sonarr's history lookup is case-sensitive). */
  rawId: string;
  state: DownloadState;
  info: DownloadInfo;
}

/** What became of a download that left a queue: imported, failed, or just removed. */
export type GoneOutcome = 'imported' | 'failed' | 'removed';

export interface PollResult {
  snapshots: SnapshotMessage[];
  downloads?: {
    observations: DownloadObservation[];
    /** Every item of the target was read (not truncated): items not seen have left. */
    complete: boolean;
    /** Looks up what became of a download that left the queue (Sonarr/Radarr history). */
    resolveGone?: (rawId: string, signal: AbortSignal) => Promise<GoneOutcome>;
  };
  /** Active playbacks (Jellyfin). */
  streams?: MediaStream[];
  /** Problems that did not stop the poll (a queue larger than `media.maxQueueRecords`). */
  problems?: MediaError[];
}

export interface MediaTarget {
  readonly spec: TargetSpec;
  poll(signal: AbortSignal): Promise<PollResult>;
}

/** `ABCDEF…` (40 hex, Sonarr's spelling of a qBittorrent hash) → lower case; other ids unchanged. */
export function downloadKey(id: string): string {
  return /^[0-9a-f]{40}$|^[0-9a-f]{64}$/i.test(id) ? id.toLowerCase() : id;
}

export function nowIso(): string {
  return new Date().toISOString();
}
