import type {
  MediaLibrarySnapshot, MediaQueueSnapshot, MediaSessionsSnapshot, MediaStatus, MediaStorageSnapshot, MediaTargetStatus, MediaTransferSnapshot,
} from '@homelab/bus';
import type { MediaError } from './errors.ts';
import { safeOrigin } from './http.ts';
import type { SnapshotMessage, TargetSpec } from './targets/types.ts';

/**
 * The latest of everything, in memory, for `media.status`: each target's health and last
 * snapshots, and the storage snapshot. Targets are listed in config order.
 */
export class StatusBoard {
  readonly #targets = new Map<string, MediaTargetStatus>();
  readonly #queue = new Map<string, MediaQueueSnapshot>();
  readonly #transfer = new Map<string, MediaTransferSnapshot>();
  readonly #sessions = new Map<string, MediaSessionsSnapshot>();
  readonly #library = new Map<string, MediaLibrarySnapshot>();
  #storage: MediaStorageSnapshot | null = null;
  #webhooks: MediaStatus['webhooks'] = { enabled: false };

  addTarget(spec: TargetSpec): void {
    const url = safeOrigin(spec.url);
    this.#targets.set(spec.name, { name: spec.name, kind: spec.kind, ...(url && { url }), intervalMs: spec.intervalMs, ok: false });
  }

  polled(name: string, at: string, error?: MediaError): void {
    const t = this.#targets.get(name);
    if (!t) return;
    t.lastPollAt = at;
    if (error) {
      t.ok = false;
      t.error = { reason: error.reason, message: error.message, since: t.error?.reason === error.reason ? t.error.since : at };
    } else {
      t.ok = true;
      t.lastSuccessAt = at;
      delete t.error;
    }
  }

  snapshot(message: SnapshotMessage): void {
    switch (message.key) {
      case 'mediaQueue': this.#queue.set(message.payload.source, message.payload); break;
      case 'mediaTransfer': this.#transfer.set(message.payload.source, message.payload); break;
      case 'mediaSessions': this.#sessions.set(message.payload.source, message.payload); break;
      case 'mediaLibrary': this.#library.set(message.payload.source, message.payload); break;
    }
  }

  storage(snapshot: MediaStorageSnapshot): void {
    this.#storage = snapshot;
  }

  webhooks(value: MediaStatus['webhooks']): void {
    this.#webhooks = value;
  }

  status(): MediaStatus {
    return {
      at: new Date().toISOString(),
      targets: [...this.#targets.values()].map((t) => structuredClone(t)),
      queue: [...this.#queue.values()],
      transfer: [...this.#transfer.values()],
      sessions: [...this.#sessions.values()],
      library: [...this.#library.values()],
      storage: this.#storage,
      webhooks: this.#webhooks,
    };
  }
}

/**
 * What makes a snapshot worth publishing again: its substance, leaving out what moves every poll
 * (progress, speeds, positions, timestamps). A snapshot whose substance did not change is published
 * only every `snapshotHeartbeatMs`; `media.status` always has the latest.
 */
export function substance(message: SnapshotMessage | { key: 'mediaStorage'; payload: MediaStorageSnapshot }): string {
  switch (message.key) {
    case 'mediaQueue': {
      const p = message.payload;
      return JSON.stringify([p.totalRecords, p.truncated, p.status?.errors, p.status?.warnings, p.items.map((i) => [i.downloadId ?? i.title, i.status, i.trackedDownloadState, i.phase, i.records])]);
    }
    case 'mediaTransfer': {
      const p = message.payload;
      return JSON.stringify([p.version, p.connectionStatus, p.counts, p.torrents.map((t) => [t.hash, t.state, t.phase])]);
    }
    case 'mediaSessions': {
      const p = message.payload;
      return JSON.stringify([p.sessions, p.streams.map((s) => [s.key, s.isPaused, s.playMethod])]);
    }
    case 'mediaLibrary': {
      const { at: _at, ...rest } = message.payload;
      return JSON.stringify(rest);
    }
    case 'mediaStorage': {
      const p = message.payload;
      return JSON.stringify(p.paths.map((u) => [u.path, u.ok, u.error, u.low, Math.round(u.usedPercent ?? 0)]));
    }
  }
}
