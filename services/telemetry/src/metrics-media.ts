import type { Attributes, Counter, Gauge, Histogram, Meter } from '@opentelemetry/api';
import type {
  EventKey, EventPayload, MediaLibrarySnapshot, MediaQueueSnapshot, MediaSessionsSnapshot, MediaStatus, MediaStorageSnapshot, MediaTransferSnapshot,
} from '@homelab/bus';
import { LabelBudget } from './labels.ts';
import { MediaAttr, MediaMetric, StreamDurationBuckets } from './semconv.ts';

export type MediaEventKey = Extract<EventKey, `media${string}`>;

/**
 * A gauge whose series come in sets (one snapshot of one source): a series the previous snapshot
 * of that source had and this one lacks is set to 0, so a queue status that emptied reads 0
 * rather than its last count forever.
 */
class SnapshotGauge {
  readonly #gauge: Gauge;
  readonly #previous = new Map<string, Map<string, Attributes>>();

  constructor(gauge: Gauge) {
    this.#gauge = gauge;
  }

  set(scope: string, series: Iterable<[Attributes, number]>): void {
    const now = new Map<string, Attributes>();
    for (const [attrs, value] of series) {
      now.set(seriesKey(attrs), attrs);
      this.#gauge.record(value, attrs);
    }
    for (const [key, attrs] of this.#previous.get(scope) ?? []) if (!now.has(key)) this.#gauge.record(0, attrs);
    this.#previous.set(scope, now);
  }
}

function seriesKey(attrs: Attributes): string {
  let key = '';
  for (const k in attrs) key += `${k}=${String(attrs[k])}\u0000`;
  return key;
}

/**
 * The media node, fed with the MEDIA stream (snapshots and transitions) and, at start, the
 * `media.status` reply. Label values are config names (sources, paths) or small enumerations
 * from the services' APIs (queue status, play method), each kept under a budget; titles, user
 * names, devices and paths of files never become labels.
 */
export class MediaMetrics {
  readonly #queueItems: SnapshotGauge;
  readonly #queueRecords: Gauge;
  readonly #downloadsActive: Gauge;
  readonly #downloads: Counter;
  readonly #torrents: SnapshotGauge;
  readonly #transferSpeed: Gauge;
  readonly #sessions: Gauge;
  readonly #streamsActive: SnapshotGauge;
  readonly #streams: Counter;
  readonly #streamDuration: Histogram;
  readonly #libraryItems: SnapshotGauge;
  readonly #librarySize: Gauge;
  readonly #libraryMissing: Gauge;
  readonly #libraryCutoffUnmet: Gauge;
  readonly #healthIssues: Gauge;
  readonly #indexers: SnapshotGauge;
  readonly #rootFolderFree: SnapshotGauge;
  readonly #storageSize: Gauge;
  readonly #storageUsed: Gauge;
  readonly #storageFree: Gauge;
  readonly #storageUsedRatio: Gauge;
  readonly #storageLow: Gauge;
  readonly #storageAlerts: Counter;
  readonly #serviceUp: Gauge;
  readonly #serviceErrors: Counter;
  readonly #webhooks: Counter;
  /** Sources whose last word was `media.service.error` (not yet recovered). */
  readonly #failing = new Set<string>();
  readonly #sources = new LabelBudget(64);
  readonly #paths = new LabelBudget(64);
  readonly #statuses = new LabelBudget(64);
  readonly #playMethods = new LabelBudget(8);
  readonly #types = new LabelBudget(32);
  readonly #eventTypes = new LabelBudget(64);
  readonly #reasons = new LabelBudget(32);
  /** Time of the newest snapshot applied per kind and source: an older one (a replay) is ignored. */
  readonly #snapshotAt = new Map<string, number>();
  readonly #handlers: { [K in MediaEventKey]: (payload: EventPayload<K>) => void };

  constructor(meter: Meter) {
    const gauge = (name: string, unit: string, description: string): Gauge => meter.createGauge(name, { unit, description });
    const counter = (name: string, unit: string, description: string): Counter => meter.createCounter(name, { unit, description });
    this.#queueItems = new SnapshotGauge(gauge(MediaMetric.queueItems, '{download}', 'Downloads in each Sonarr/Radarr queue by status, tracked download status and state, and the gateway\'s phase (waiting, downloading, completed, imported, failed).'));
    this.#queueRecords = gauge(MediaMetric.queueRecords, '{record}', 'Records in each Sonarr/Radarr queue (one per episode of a season pack).');
    this.#downloadsActive = gauge(MediaMetric.downloadsActive, '{download}', 'Downloads in progress: queue items downloading (Sonarr/Radarr), torrents downloading (qBittorrent).');
    this.#downloads = counter(MediaMetric.downloads, '{download}', 'Download transitions: grabbed, completed, imported, failed.');
    this.#torrents = new SnapshotGauge(gauge(MediaMetric.torrents, '{torrent}', 'qBittorrent\'s torrents by status (downloading, seeding, paused, checking, errored).'));
    this.#transferSpeed = gauge(MediaMetric.transferSpeed, 'By/s', 'qBittorrent\'s current download and upload speed.');
    this.#sessions = gauge(MediaMetric.sessions, '{session}', 'Jellyfin sessions active in the last minutes, playing or not.');
    this.#streamsActive = new SnapshotGauge(gauge(MediaMetric.streamsActive, '{stream}', 'Jellyfin playbacks now, by play method (DirectPlay, DirectStream, Transcode).'));
    this.#streams = counter(MediaMetric.streams, '{stream}', 'Playbacks started, by play method.');
    this.#streamDuration = meter.createHistogram(MediaMetric.streamDuration, {
      unit: 's', description: 'How long each playback lasted, measured when it stopped.', advice: { explicitBucketBoundaries: StreamDurationBuckets },
    });
    this.#libraryItems = new SnapshotGauge(gauge(MediaMetric.libraryItems, '{item}', 'Library counts by type: Jellyfin\'s movies, series, episodes, songs…; Immich\'s photos and videos.'));
    this.#librarySize = gauge(MediaMetric.librarySize, 'By', 'Storage the library uses (Immich).');
    this.#libraryMissing = gauge(MediaMetric.libraryMissing, '{item}', 'Monitored episodes or movies without a file (Sonarr/Radarr wanted/missing).');
    this.#libraryCutoffUnmet = gauge(MediaMetric.libraryCutoffUnmet, '{item}', 'Files below the quality cutoff (Sonarr/Radarr wanted/cutoff).');
    this.#healthIssues = gauge(MediaMetric.healthIssues, '{issue}', 'Health issues each *arr reports about itself.');
    this.#indexers = new SnapshotGauge(gauge(MediaMetric.indexers, '{indexer}', 'Prowlarr\'s indexers: enabled, disabled, unavailable (disabled by Prowlarr after failures).'));
    this.#rootFolderFree = new SnapshotGauge(gauge(MediaMetric.rootFolderFree, 'By', 'Free space of each root folder as Sonarr/Radarr see it.'));
    this.#storageSize = gauge(MediaMetric.storageSize, 'By', 'Size of each watched storage path.');
    this.#storageUsed = gauge(MediaMetric.storageUsed, 'By', 'Used space of each watched storage path.');
    this.#storageFree = gauge(MediaMetric.storageFree, 'By', 'Free space of each watched storage path (available to unprivileged users, as df reports).');
    this.#storageUsedRatio = gauge(MediaMetric.storageUsedRatio, '1', 'Used share of each watched storage path as df reports it: used / (used + available).');
    this.#storageLow = gauge(MediaMetric.storageLow, '1', '1 while a storage path is below its low-space threshold, else 0.');
    this.#storageAlerts = counter(MediaMetric.storageAlerts, '{alert}', 'Low-space alerts and recoveries per path.');
    this.#serviceUp = gauge(MediaMetric.serviceUp, '1', '1 while the media service can poll a target, 0 while it fails.');
    this.#serviceErrors = counter(MediaMetric.serviceErrors, '{error}', 'Failures polling a media target, by reason (auth, unreachable, timeout, http, …).');
    this.#webhooks = counter(MediaMetric.webhooks, '{webhook}', 'Webhooks accepted, by sender and event type.');

    this.#handlers = {
      mediaQueue: (e) => this.#queue(e),
      mediaTransfer: (e) => this.#transfer(e),
      mediaLibrary: (e) => this.#library(e),
      mediaSessions: (e) => this.#sessionsSnapshot(e),
      mediaStorage: (e) => this.#storage(e),
      mediaDownloadGrabbed: (e) => this.#download(e),
      mediaDownloadCompleted: (e) => this.#download(e),
      mediaDownloadImported: (e) => this.#download(e),
      mediaDownloadFailed: (e) => this.#download(e),
      mediaStreamStarted: (e) => this.#streams.add(1, { [MediaAttr.source]: this.#sources.value(e.source), [MediaAttr.playMethod]: this.#playMethods.value(e.playMethod ?? 'unknown') }),
      mediaStreamStopped: (e) => {
        if (e.durationMs !== undefined) this.#streamDuration.record(e.durationMs / 1000, { [MediaAttr.source]: this.#sources.value(e.source), [MediaAttr.playMethod]: this.#playMethods.value(e.playMethod ?? 'unknown') });
      },
      mediaStorageLow: (e) => this.#storageAlert(e),
      mediaStorageRecovered: (e) => this.#storageAlert(e),
      mediaServiceError: (e) => {
        this.#failing.add(e.source);
        const attrs = { [MediaAttr.source]: this.#sources.value(e.source), [MediaAttr.kind]: e.kind };
        this.#serviceErrors.add(1, { ...attrs, [MediaAttr.reason]: this.#reasons.value(e.reason) });
        this.#serviceUp.record(0, attrs);
      },
      mediaServiceRecovered: (e) => {
        this.#failing.delete(e.source);
        this.#serviceUp.record(1, { [MediaAttr.source]: this.#sources.value(e.source), [MediaAttr.kind]: e.kind });
      },
      mediaWebhook: (e) => this.#webhooks.add(1, { [MediaAttr.source]: this.#sources.value(e.source), [MediaAttr.kind]: e.kind, [MediaAttr.eventType]: this.#eventTypes.value(e.eventType) }),
    };
  }

  /**
   * A snapshot from a target means its poll worked: it is up, unless a failure was reported since
   * (then its recovery says so). Without this a target that never failed had no `service_up` series
   * until telemetry happened to start after the media service (and read media.status).
   */
  #polled(source: string, kind: string): void {
    if (!this.#failing.has(source)) this.#serviceUp.record(1, { [MediaAttr.source]: this.#sources.value(source), [MediaAttr.kind]: kind });
  }

  /** Applies one event of the MEDIA stream. */
  apply<K extends MediaEventKey>(key: K, payload: EventPayload<K>): void {
    (this.#handlers[key] as (p: EventPayload<K>) => void)(payload);
  }

  /** The `media.status` reply: every target's state and the latest snapshots, read once at start. */
  applyStatus(status: MediaStatus): void {
    for (const t of status.targets) {
      if (t.ok) this.#failing.delete(t.name); else this.#failing.add(t.name);
      this.#serviceUp.record(t.ok ? 1 : 0, { [MediaAttr.source]: this.#sources.value(t.name), [MediaAttr.kind]: t.kind });
    }
    for (const q of status.queue) this.#queue(q);
    for (const t of status.transfer) this.#transfer(t);
    for (const s of status.sessions) this.#sessionsSnapshot(s);
    for (const l of status.library) this.#library(l);
    if (status.storage) this.#storage(status.storage);
  }

  /** Whether this snapshot is newer than the last one applied for the same kind and source (and records it). */
  #fresh(kind: string, source: string, at: string): boolean {
    const key = `${kind}\u0000${source}`;
    const t = Date.parse(at) || 0;
    if ((this.#snapshotAt.get(key) ?? -Infinity) > t) return false;
    this.#snapshotAt.set(key, t);
    return true;
  }

  #queue(s: MediaQueueSnapshot): void {
    if (!this.#fresh(s.kind, s.source, s.at)) return;
    this.#polled(s.source, s.kind);
    const source = this.#sources.value(s.source);
    const base = { [MediaAttr.source]: source, [MediaAttr.kind]: s.kind };
    const counts = new Map<string, [Attributes, number]>();
    let downloading = 0;
    for (const item of s.items) {
      if (item.phase === 'downloading') downloading++;
      const status = this.#statuses.value(item.status);
      const downloadStatus = this.#statuses.value(item.trackedDownloadStatus ?? 'unknown');
      const downloadState = this.#statuses.value(item.trackedDownloadState ?? 'unknown');
      const key = `${status}\u0000${downloadStatus}\u0000${downloadState}\u0000${item.phase}`;
      const entry = counts.get(key);
      if (entry) entry[1]++;
      else {
        counts.set(key, [{
          ...base, [MediaAttr.status]: status, [MediaAttr.downloadStatus]: downloadStatus, [MediaAttr.downloadState]: downloadState, [MediaAttr.phase]: item.phase,
        }, 1]);
      }
    }
    this.#queueItems.set(`${s.kind}:${source}`, counts.values());
    this.#queueRecords.record(s.totalRecords, base);
    this.#downloadsActive.record(downloading, base);
  }

  #transfer(s: MediaTransferSnapshot): void {
    if (!this.#fresh(s.kind, s.source, s.at)) return;
    this.#polled(s.source, s.kind);
    const source = this.#sources.value(s.source);
    this.#transferSpeed.record(s.dlSpeed, { [MediaAttr.source]: source, [MediaAttr.direction]: 'download' });
    this.#transferSpeed.record(s.upSpeed, { [MediaAttr.source]: source, [MediaAttr.direction]: 'upload' });
    const { downloading, seeding, paused, checking, errored } = s.counts;
    const states = { downloading, seeding, paused, checking, errored };
    this.#torrents.set(source, Object.entries(states).map(([state, n]) => [{ [MediaAttr.source]: source, [MediaAttr.status]: state }, n]));
    this.#downloadsActive.record(downloading, { [MediaAttr.source]: source, [MediaAttr.kind]: s.kind });
  }

  #sessionsSnapshot(s: MediaSessionsSnapshot): void {
    if (!this.#fresh(s.kind, s.source, s.at)) return;
    this.#polled(s.source, s.kind);
    const source = this.#sources.value(s.source);
    this.#sessions.record(s.sessions, { [MediaAttr.source]: source });
    const byMethod = new Map<string, number>();
    for (const stream of s.streams) {
      const method = this.#playMethods.value(stream.playMethod ?? 'unknown');
      byMethod.set(method, (byMethod.get(method) ?? 0) + 1);
    }
    // DirectPlay is always reported (0 when idle), so an idle server still has a streams series.
    if (!byMethod.has('DirectPlay')) byMethod.set('DirectPlay', 0);
    this.#streamsActive.set(source, [...byMethod].map(([method, n]) => [{ [MediaAttr.source]: source, [MediaAttr.playMethod]: method }, n]));
  }

  #library(s: MediaLibrarySnapshot): void {
    if (!this.#fresh(s.kind, s.source, s.at)) return;
    this.#polled(s.source, s.kind);
    const source = this.#sources.value(s.source);
    const base = { [MediaAttr.source]: source, [MediaAttr.kind]: s.kind };
    switch (s.kind) {
      case 'sonarr':
      case 'radarr':
        if (s.missing !== null) this.#libraryMissing.record(s.missing, base);
        if (s.cutoffUnmet !== null) this.#libraryCutoffUnmet.record(s.cutoffUnmet, base);
        this.#healthIssues.record(s.health.length, base);
        this.#rootFolderFree.set(`${s.kind}:${source}`, s.diskSpace.map((d) => [{ ...base, [MediaAttr.path]: this.#paths.value(d.path) }, d.freeBytes]));
        break;
      case 'prowlarr': {
        const { total, enabled, failing } = s.indexers;
        this.#healthIssues.record(s.health.length, base);
        this.#indexers.set(source, [
          [{ ...base, [MediaAttr.state]: 'enabled' }, enabled],
          [{ ...base, [MediaAttr.state]: 'disabled' }, Math.max(0, total - enabled)],
          [{ ...base, [MediaAttr.state]: 'unavailable' }, failing.length],
        ]);
        break;
      }
      case 'jellyfin': {
        const series: [Attributes, number][] = [];
        for (const [key, n] of Object.entries(s.counts)) {
          // `movieCount` → movie; `itemCount` is the sum of the others.
          if (!key.endsWith('Count') || key === 'itemCount') continue;
          series.push([{ ...base, [MediaAttr.type]: this.#types.value(key.slice(0, -5)) }, n]);
        }
        this.#libraryItems.set(`${s.kind}:${source}`, series);
        break;
      }
      case 'immich':
        this.#libraryItems.set(`${s.kind}:${source}`, [[{ ...base, [MediaAttr.type]: 'photo' }, s.photos], [{ ...base, [MediaAttr.type]: 'video' }, s.videos]]);
        this.#librarySize.record(s.usageBytes, base);
        break;
    }
  }

  #storage(s: MediaStorageSnapshot): void {
    if (!this.#fresh('storage', '', s.at)) return;
    for (const p of s.paths) {
      const attrs = { [MediaAttr.path]: this.#paths.value(p.path) };
      this.#storageLow.record(p.low ? 1 : 0, attrs);
      if (!p.ok) continue;
      if (p.totalBytes !== undefined) this.#storageSize.record(p.totalBytes, attrs);
      if (p.usedBytes !== undefined) this.#storageUsed.record(p.usedBytes, attrs);
      if (p.freeBytes !== undefined) this.#storageFree.record(p.freeBytes, attrs);
      // The one definition of used share (df's, as `homelab media` prints it): reserved blocks are neither used nor available.
      if (p.usedBytes !== undefined && p.freeBytes !== undefined && p.usedBytes + p.freeBytes > 0) this.#storageUsedRatio.record(p.usedBytes / (p.usedBytes + p.freeBytes), attrs);
    }
  }

  #download(e: EventPayload<'mediaDownloadGrabbed'>): void {
    this.#downloads.add(1, { [MediaAttr.source]: this.#sources.value(e.source), [MediaAttr.kind]: e.kind, [MediaAttr.phase]: e.phase });
  }

  #storageAlert(e: EventPayload<'mediaStorageLow'>): void {
    const attrs = { [MediaAttr.path]: this.#paths.value(e.path) };
    this.#storageAlerts.add(1, { ...attrs, [MediaAttr.state]: e.state });
    this.#storageLow.record(e.state === 'low' ? 1 : 0, attrs);
  }
}
